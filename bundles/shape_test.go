package bundles

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/resource"
)

// TestShapeClockSkew: a certificate is not valid before its valid_after unless the cluster
// sets an explicit max_clock_skew; the bundle carries exactly what was configured.
func TestShapeClockSkew(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		skew time.Duration
		want int64
	}{
		{"default_is_no_skew", 0, 0},
		{"explicit_skew_is_shipped", 90 * time.Second, int64(90 * time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data, err := Shape(ShapeOptions{ClusterName: "leaf.example.com", MaxClockSkew: tc.skew})
			if err != nil {
				t.Fatal(err)
			}
			cluster := data["tether"].(map[string]any)["cluster"].(map[string]any)
			if got := cluster["max_clock_skew_ns"]; got != tc.want {
				t.Fatalf("max_clock_skew_ns = %v, want %d", got, tc.want)
			}
		})
	}
	if _, err := Shape(ShapeOptions{ClusterName: "leaf.example.com", MaxClockSkew: -time.Second}); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Fatalf("negative skew: got %v", err)
	}
}

// TestShapeFoldsLiteralExpressions: a template of a string literal does not depend on the
// user, so it ships as the literals it gives (the role author's own values).
func TestShapeFoldsLiteralExpressions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, value string
		want        []any
	}{
		{"string_literal", `{{"ubuntu"}}`, []any{map[string]any{"lit": "ubuntu"}}},
		{"string_literal_affixes", `a-{{"b"}}-c`, []any{map[string]any{"lit": "a-b-c"}}},
		{"regexp_replace_of_a_literal", `{{regexp.replace("team-db", "^team-(.*)$", "$1")}}`, []any{map[string]any{"lit": "db"}}},
		{"regexp_replace_of_a_literal_that_does_not_match", `{{regexp.replace("db", "^team-(.*)$", "$1")}}`, []any{}},
		{"email_local_of_a_literal", `{{email.local("Alice <alice@example.com>")}}`, []any{map[string]any{"lit": "alice"}}},
		{"trait_expression_is_not_folded", `{{external.team}}`, []any{map[string]any{
			"prefix": "", "suffix": "", "ns": "external", "trait": "team", "fn": "", "re": "", "repl": ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := shapeTemplates([]string{tc.value})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("shapeTemplates(%q) = %#v, want %#v", tc.value, got, tc.want)
			}
		})
	}
}

// TestShapeForwardingOptions: port_forwarding and forward_agent ship only when the role
// sets them, so rego/forwarding.rego can apply Teleport's defaults to unset ones.
func TestShapeForwardingOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		pf, agent resource.BoolOption
		want      map[string]any
	}{
		{"unset_ships_nothing", resource.OptionUnset, resource.OptionUnset, map[string]any{}},
		{"false_ships_false", resource.OptionFalse, resource.OptionFalse, map[string]any{"port_forwarding": false, "forward_agent": false}},
		{"true_ships_true", resource.OptionTrue, resource.OptionTrue, map[string]any{"port_forwarding": true, "forward_agent": true}},
	} {
		r := &resource.Role{Kind: resource.KindRole, Version: "v7", Metadata: resource.Metadata{Name: "r"}}
		r.Spec.Options.PortForwarding, r.Spec.Options.ForwardAgent = tc.pf, tc.agent
		shaped, err := shapeRole(r)
		if err != nil {
			t.Fatal(err)
		}
		opts := shaped["options"].(map[string]any)
		got := map[string]any{}
		for _, k := range []string{"port_forwarding", "forward_agent"} {
			if v, ok := opts[k]; ok {
				got[k] = v
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestShapeStoresDerivedDataAsJSONTypes: the derived values Shape stores (evaluated by the
// library) hold the same Go types as the rest of the document: numbers as int64.
func TestShapeStoresDerivedDataAsJSONTypes(t *testing.T) {
	res, err := resource.Parse([]byte(`kind: role
version: v5
metadata: {name: short}
spec:
  options: {max_cert_age: 2h, max_session_ttl: 1h}
  allow:
    logins: [visitor, "{{internal.logins}}"]
    node_labels: {env: [stage], team: ["{{external.team}}"]}
`), "roles.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Shape(ShapeOptions{ClusterName: "leaf.example.com", Resources: res})
	if err != nil {
		t.Fatal(err)
	}
	d := doc["tether"].(map[string]any)["roles"].(map[string]any)["short"].(map[string]any)["derived"].(map[string]any)
	req := d["requirements"].(map[string]any)
	if req["max_age_ns"] != int64(2*time.Hour) || req["ttl_ns"] != int64(time.Hour) {
		t.Fatalf("derived requirements %#v, want int64 nanoseconds", req)
	}
	allow := d["allow"].(map[string]any)
	if _, ok := allow["logins"].(map[string]any)["visitor"]; !ok || len(allow["login_templates"].([]any)) != 1 {
		t.Fatalf("derived allow %#v: want the literal login apart from the template", allow)
	}
	node := allow["node"].(map[string]any)
	if _, ok := node["fixed_res"].(map[string]any)["env"]; !ok {
		t.Fatalf("derived node selector %#v: want env compiled", node)
	}
	if _, ok := node["templated"].(map[string]any)["team"]; !ok {
		t.Fatalf("derived node selector %#v: want team left for the traits", node)
	}
}

// testLock is a lock resource for the shaping tests.
func testLock(name string, labels map[string]string, target resource.LockTarget) *resource.Lock {
	return &resource.Lock{Kind: resource.KindLock, Version: "v2",
		Metadata: resource.Metadata{Name: name, Labels: labels}, Spec: resource.LockSpec{Target: target}}
}

// checkLockTargets shapes locks on leaf.example.com and compares each lock's target, by
// name, with want.
func checkLockTargets(t *testing.T, locks []resource.Resource, want map[string]map[string]any) {
	t.Helper()
	data, err := Shape(ShapeOptions{ClusterName: "leaf.example.com", Resources: locks})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]any{}
	for _, l := range data["tether"].(map[string]any)["locks"].([]any) {
		l := l.(map[string]any)
		got[l["name"].(string)] = l["target"].(map[string]any)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("lock targets:\n got %v\nwant %v", got, want)
	}
}

// TestShapeReplicatedRoleLocks: a lock a root replicated here targets one of the root's
// roles, which the root's users carry in their certificates; it ships as root_role so that
// it does not also lock a leaf role of the same name that other root roles map to. The
// leaf's own locks, and a lock whose label names another root than its target, keep role.
func TestShapeReplicatedRoleLocks(t *testing.T) {
	t.Parallel()
	from := map[string]string{resource.LabelReplicatedFrom: "root.example.com"}
	checkLockTargets(t, []resource.Resource{
		testLock("ops@root.example.com", from, resource.LockTarget{Role: "ops", RemoteCluster: "root.example.com"}),
		testLock("local", nil, resource.LockTarget{Role: "ops"}),
		testLock("local-for-root-users", nil, resource.LockTarget{Role: "ops", RemoteCluster: "root.example.com"}),
		testLock("mislabelled", from, resource.LockTarget{Role: "ops", RemoteCluster: "other.example.com"}),
	}, map[string]map[string]any{
		"ops@root.example.com": {"root_role": "ops", "remote_cluster": "root.example.com"},
		"local":                {"role": "ops"},
		"local-for-root-users": {"role": "ops", "remote_cluster": "root.example.com"},
		"mislabelled":          {"role": "ops", "remote_cluster": "other.example.com"},
	})
}

// TestShapeReplicatedNodeLocks: a root's node lock names the root's node; replicated to a
// leaf it locks the leaf's node of that name only when the name is written in full,
// NODE.LEAF, as users type it (ssh login@node1.leaf). A bare name is a node of the root:
// it ships as root_node, which no request at the leaf matches. Before, a root's lock on its
// own db1 also locked the root's users out of every leaf's db1.
func TestShapeReplicatedNodeLocks(t *testing.T) {
	t.Parallel()
	from := map[string]string{resource.LabelReplicatedFrom: "root.example.com"}
	checkLockTargets(t, []resource.Resource{
		testLock("roots-db1@root.example.com", from, resource.LockTarget{Node: "db1", RemoteCluster: "root.example.com"}),
		testLock("leaf-db1@root.example.com", from, resource.LockTarget{Node: "db1.leaf.example.com", RemoteCluster: "root.example.com"}),
		testLock("upper@root.example.com", from, resource.LockTarget{Node: "db1.LEAF.example.com", RemoteCluster: "root.example.com"}),
		testLock("other-leaf@root.example.com", from, resource.LockTarget{Node: "db1.other.example.com", RemoteCluster: "root.example.com"}),
		testLock("just-the-suffix@root.example.com", from, resource.LockTarget{Node: ".leaf.example.com", RemoteCluster: "root.example.com"}),
		testLock("local", nil, resource.LockTarget{Node: "db1"}),
	}, map[string]map[string]any{
		"roots-db1@root.example.com":       {"root_node": "db1", "remote_cluster": "root.example.com"},
		"leaf-db1@root.example.com":        {"node": "db1", "remote_cluster": "root.example.com"},
		"upper@root.example.com":           {"node": "db1", "remote_cluster": "root.example.com"},
		"other-leaf@root.example.com":      {"root_node": "db1.other.example.com", "remote_cluster": "root.example.com"},
		"just-the-suffix@root.example.com": {"root_node": ".leaf.example.com", "remote_cluster": "root.example.com"},
		"local":                            {"node": "db1"},
	})
}
