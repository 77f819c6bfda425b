package resource

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func mustParseFile(t *testing.T, path string) []Resource {
	t.Helper()
	rs, err := ParseFile(path)
	if err != nil {
		t.Fatalf("ParseFile(%s): %v", path, err)
	}
	return rs
}

func mustParse(t *testing.T, in string) []Resource {
	t.Helper()
	rs, err := Parse([]byte(in), "test.yaml")
	if err != nil {
		t.Fatalf("Parse: %v\ninput:\n%s", err, in)
	}
	return rs
}

func TestParseSeedGuide(t *testing.T) {
	t.Parallel()
	rs := mustParseFile(t, "testdata/guide.yaml")
	if len(rs) != 4 {
		t.Fatalf("got %d resources, want 4", len(rs))
	}

	visitor := rs[0].(*Role)
	wantVisitor := &Role{
		Kind: "role", Version: "v5",
		Metadata: Metadata{Name: "visitor"},
		Spec: RoleSpec{
			Allow: RoleConditions{
				Logins:     []string{"visitor", "{{internal.logins}}"},
				NodeLabels: Labels{"*": {"*"}},
			},
			Deny:    RoleConditions{Logins: []string{"root"}},
			Options: RoleOptions{MaxSessionTTL: Duration(8 * time.Hour)},
		},
	}
	if !reflect.DeepEqual(visitor, wantVisitor) {
		t.Errorf("visitor role:\n got %#v\nwant %#v", visitor, wantVisitor)
	}
	if !visitor.Spec.Allow.NodeLabels.IsWildcard() {
		t.Error("visitor node_labels {'*': '*'} is not a wildcard")
	}

	tc := rs[1].(*TrustedCluster)
	if tc.Metadata.Name != "rootcluster.example.com" || !tc.Spec.Enabled ||
		tc.Spec.TunnelAddr != "rootcluster.example.com:443" || tc.Spec.WebProxyAddr != "rootcluster.example.com:443" {
		t.Errorf("trusted cluster: %+v", tc)
	}
	if want := []RoleMapping{{Remote: "access", Local: []string{"visitor"}}}; !reflect.DeepEqual(tc.Spec.RoleMap, want) {
		t.Errorf("role_map = %#v, want %#v", tc.Spec.RoleMap, want)
	}

	demo := rs[2].(*Role)
	if want := (Labels{"env": {"demo"}}); demo.Metadata.Name != "demo-cluster-access" || !reflect.DeepEqual(demo.Spec.Allow.ClusterLabels, want) {
		t.Errorf("demo-cluster-access: %+v", demo)
	}

	alice := rs[3].(*User)
	wantAlice := UserSpec{Roles: []string{"access", "demo-cluster-access"}, Traits: map[string][]string{"logins": {"visitor", "ubuntu"}}}
	if alice.Metadata.Name != "alice" || !reflect.DeepEqual(alice.Spec, wantAlice) {
		t.Errorf("alice: %+v", alice)
	}
}

func TestParseAllKinds(t *testing.T) {
	t.Parallel()
	rs := mustParseFile(t, "testdata/all-kinds.yaml")
	var got []string
	for _, r := range rs {
		got = append(got, r.GetKind()+"/"+r.GetVersion()+"/"+r.GetMetadata().Name)
	}
	want := []string{
		"role/v7/stage-access", "remote_cluster/v3/leafcluster.example.com", "oidc/v2/okta",
		"token/v2/4f1c9b2e7d3a", "cert_authority/v2/rootcluster.example.com", "node/v2/ip-172-3-2-205",
		"lock/v2/lock-alice",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("kinds:\n got %v\nwant %v", got, want)
	}

	role := rs[0].(*Role)
	if got, want := role.Spec.Allow.NodeLabels, (Labels{"env": {"stage", "qa-*"}, "region": {"^eu-(west|central)-[0-9]$"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("node_labels = %v, want %v", got, want)
	}
	if role.Spec.Allow.Logins[1] != `ops-{{external["team-name"]}}` {
		t.Errorf("logins[1] = %q", role.Spec.Allow.Logins[1])
	}
	if got, want := role.Spec.Deny.NodeLabels, (Labels{"pci": {"true"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("deny node_labels = %v, want %v", got, want)
	}
	if o := role.Spec.Options; o.MaxSessionTTL != Duration(30*time.Hour) || o.MaxCertAge != Duration(90*time.Minute) ||
		!o.RequireSessionMFA || !reflect.DeepEqual(o.RequireConnectors, []string{"oidc/okta"}) {
		t.Errorf("options = %+v", o)
	}
	if e := role.Metadata.Expires; e == nil || !e.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("expires = %v", e)
	}

	rc := rs[1].(*RemoteCluster)
	if rc.Status.Connection != "online" || !rc.Status.LastHeartbeat.Equal(time.Date(2026, 11, 23, 19, 45, 35, 0, time.UTC)) ||
		rc.Metadata.Labels["env"] != "demo" {
		t.Errorf("remote cluster = %+v", rc)
	}

	tok := rs[3].(*Token)
	if !reflect.DeepEqual(tok.Spec.Roles, []string{"trusted_cluster"}) {
		t.Errorf("token roles = %v, want normalised [trusted_cluster]", tok.Spec.Roles)
	}

	ca := rs[4].(*CertAuthority)
	if len(ca.Spec.ActiveKeys.SSH) != 1 || !strings.HasPrefix(ca.Spec.ActiveKeys.TLS[0].Cert, "-----BEGIN CERTIFICATE-----\n") {
		t.Errorf("cert authority = %+v", ca.Spec)
	}

	lock := rs[6].(*Lock)
	if lock.Spec.Target != (LockTarget{User: "alice"}) || lock.Spec.Expires == nil {
		t.Errorf("lock = %+v", lock.Spec)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"testdata/guide.yaml", "testdata/all-kinds.yaml"} {
		for _, r := range mustParseFile(t, file) {
			t.Run(r.GetKind()+"/"+r.GetMetadata().Name, func(t *testing.T) {
				out, err := Marshal(r)
				if err != nil {
					t.Fatal(err)
				}
				back := mustParse(t, string(out))
				if len(back) != 1 || !reflect.DeepEqual(back[0], r) {
					t.Errorf("round trip changed the resource\nYAML:\n%s\n got %#v\nwant %#v", out, back, r)
				}
			})
		}
	}
}

func TestMarshalShape(t *testing.T) {
	t.Parallel()
	r := &Role{
		Metadata: Metadata{Name: "visitor"},
		Spec: RoleSpec{
			Allow:   RoleConditions{Logins: []string{"visitor"}, NodeLabels: Labels{"*": {"*"}, "env": {"a", "b"}}},
			Options: RoleOptions{MaxSessionTTL: Duration(8 * time.Hour)},
		},
	}
	out, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `kind: role
version: v5
metadata:
  name: visitor
spec:
  allow:
    logins:
      - visitor
    node_labels:
      '*': '*'
      env:
        - a
        - b
  options:
    max_session_ttl: 8h0m0s
`
	if string(out) != want {
		t.Errorf("Marshal:\n%s\nwant:\n%s", out, want)
	}
	if r.Kind != "" {
		t.Error("Marshal changed its argument")
	}
}

func TestMarshalErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		r    Resource
		want string
	}{
		{"nil_resource", (*Role)(nil), "nil resource"},
		{"kind_mismatch", &Role{Kind: "user", Metadata: Metadata{Name: "x"}}, `kind is "user", want "role"`},
		{"invalid_utf8", &User{Metadata: Metadata{Name: "x"}, Spec: UserSpec{Roles: []string{"\xff"}}}, `spec.roles[0] is not valid UTF-8`},
		{"invalid_utf8_map_key", &Node{Metadata: Metadata{Name: "x", Labels: map[string]string{"\xff": "v"}}}, `metadata.labels is not valid UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Marshal(tt.r)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Marshal error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseMultipleDocuments(t *testing.T) {
	t.Parallel()
	in := `---
# nothing here
---
kind: node
version: v2
metadata: {name: a}
---
---
~
---
kind: node
version: v2
metadata: {name: b}
...
`
	rs := mustParse(t, in)
	if len(rs) != 2 || rs[0].GetMetadata().Name != "a" || rs[1].GetMetadata().Name != "b" {
		t.Fatalf("got %v", rs)
	}
	for _, empty := range []string{"", "# only a comment\n", "---\n", "---\n---\n"} {
		if rs, err := Parse([]byte(empty), "e.yaml"); err != nil || len(rs) != 0 {
			t.Errorf("Parse(%q) = %v, %v; want nothing", empty, rs, err)
		}
	}
}

func TestParseIsAllOrNothing(t *testing.T) {
	t.Parallel()
	in := `kind: node
version: v2
metadata: {name: a}
---
kind: node
version: v2
metadata: {name: b}
spec: {adr: "x:1"}
`
	rs, err := Parse([]byte(in), "nodes.yaml")
	if rs != nil {
		t.Errorf("Parse returned %d resources with an error", len(rs))
	}
	const want = `nodes.yaml:8:8: node "b": unknown field "adr" in spec (did you mean "addr"?)`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
}

// TestParseErrors pins the messages of decoding errors: unknown fields at every depth, wrong
// types, duplicate keys and the document envelope, each with file:line:column.
func TestParseErrors(t *testing.T) {
	t.Parallel()
	const role = "kind: role\nversion: v5\nmetadata: {name: visitor}\n"
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"unknown_field_in_spec", role + "spec:\n  allwo: {}\n",
			`roles.yaml:5:3: role "visitor": unknown field "allwo" in spec (did you mean "allow"?)`},
		{"unknown_field_at_top", role + "stauts: {}\n",
			`roles.yaml:4:1: role "visitor": unknown field "stauts" (known fields: kind, version, metadata, spec)`},
		{"unknown_field_in_metadata", "kind: role\nversion: v5\nmetadata:\n  name: visitor\n  namspace: default\n",
			`roles.yaml:5:3: role "visitor": unknown field "namspace" in metadata (known fields: name, description, labels, expires)`},
		{"unknown_field_in_allow", role + "spec:\n  allow:\n    login: [a]\n",
			`roles.yaml:6:5: role "visitor": unknown field "login" in spec.allow (did you mean "logins"?)`},
		{"unknown_field_in_options", role + "spec:\n  options:\n    forward_agnet: true\n",
			`roles.yaml:6:5: role "visitor": unknown field "forward_agnet" in spec.options (did you mean "forward_agent"?)`},
		{"unknown_field_in_role_map_rule", "kind: trusted_cluster\nversion: v2\nmetadata: {name: root}\nspec:\n  role_map:\n    - {remote: a, local: [b]}\n    - {remote: c, locals: [d]}\n",
			`roles.yaml:7:19: trusted_cluster "root": unknown field "locals" in spec.role_map[1] (did you mean "local"?)`},
		{"unknown_field_depth_five", "kind: cert_authority\nversion: v2\nmetadata: {name: c}\nspec:\n  active_keys:\n    ssh:\n      - private_key_type: raw\n",
			`roles.yaml:7:9: cert_authority "c": unknown field "private_key_type" in spec.active_keys.ssh[0] (known fields: public_key, private_key)`},
		{"spec_on_remote_cluster", "kind: remote_cluster\nversion: v3\nmetadata: {name: leaf}\nspec: {}\n",
			`roles.yaml:4:1: remote_cluster "leaf": unknown field "spec" (known fields: kind, version, metadata, status)`},
		{"status_on_role", role + "status: {}\n",
			`roles.yaml:4:1: role "visitor": unknown field "status" (known fields: kind, version, metadata, spec)`},

		{"logins_not_a_list", role + "spec:\n  allow:\n    logins: visitor\n",
			`roles.yaml:6:13: role "visitor": spec.allow.logins: expected a list, got the string "visitor"`},
		{"login_is_boolean", role + "spec:\n  allow:\n    logins: [true]\n",
			`roles.yaml:6:14: role "visitor": spec.allow.logins[0]: expected a string, got the boolean true: quote it ("true") if you mean the text`},
		{"bool_is_string", "kind: trusted_cluster\nversion: v2\nmetadata: {name: root}\nspec: {enabled: \"yes\"}\n",
			`roles.yaml:4:17: trusted_cluster "root": spec.enabled: expected true or false, got the string "yes"`},
		{"duration_without_unit", role + "spec:\n  options: {max_session_ttl: 8}\n",
			`roles.yaml:5:30: role "visitor": spec.options.max_session_ttl: duration 8 has no unit: write for example 8h or 90m`},
		{"duration_invalid", role + "spec:\n  options: {max_session_ttl: 8 hours}\n",
			`roles.yaml:5:30: role "visitor": spec.options.max_session_ttl: invalid duration "8 hours": write a Go duration such as 8h, 90m or 30h0m0s`},
		{"label_value_mapping", role + "spec:\n  allow:\n    node_labels: {env: {a: b}}\n",
			`roles.yaml:6:24: role "visitor": spec.allow.node_labels.env: expected a label value or a list of values, got a mapping`},
		{"label_list_item_list", role + "spec:\n  allow:\n    node_labels: {env: [[a]]}\n",
			`roles.yaml:6:25: role "visitor": spec.allow.node_labels.env[0]: expected a string, got a list`},
		{"metadata_is_list", "kind: role\nversion: v5\nmetadata: [visitor]\n",
			`roles.yaml:3:11: role: metadata: expected a mapping of name, description, labels, expires, got a list`},
		{"time_invalid", "kind: lock\nversion: v2\nmetadata: {name: l}\nspec: {target: {user: a}, expires: tomorrow}\n",
			`roles.yaml:4:36: lock "l": spec.expires: invalid time "tomorrow": write an RFC 3339 time such as 2026-11-23T19:45:35Z`},
		{"time_date_only", "kind: lock\nversion: v2\nmetadata: {name: l}\nspec: {target: {user: a}, expires: 2026-01-01}\n",
			`spec.expires: invalid time "2026-01-01"`},
		{"time_is_number", "kind: lock\nversion: v2\nmetadata: {name: l}\nspec: {target: {user: a}, expires: 5}\n",
			`spec.expires: expected an RFC 3339 time such as 2026-11-23T19:45:35Z, got the number 5`},
		{"traits_not_lists", "kind: user\nversion: v2\nmetadata: {name: alice}\nspec: {traits: {logins: visitor}}\n",
			`roles.yaml:4:25: user "alice": spec.traits.logins: expected a list, got the string "visitor"`},
		{"custom_tag", role + "spec:\n  allow:\n    logins: [!secret x]\n",
			`spec.allow.logins[0]: expected a string, got a !secret value`},
		{"binary_tag", role + "spec:\n  allow:\n    logins: [!!binary aGk=]\n",
			`spec.allow.logins[0]: expected a string, got a !!binary value`},

		{"duplicate_key_top", role + "kind: user\n",
			`roles.yaml:4:1: role "visitor": kind: duplicate key "kind" (first at line 1): keep one`},
		{"duplicate_key_nested", role + "spec:\n  allow:\n    logins: [a]\n    logins: [b]\n",
			`roles.yaml:7:5: role "visitor": spec.allow.logins: duplicate key "logins" (first at line 6): keep one`},
		{"duplicate_label_key", role + "spec:\n  allow:\n    node_labels: {env: a, env: b}\n",
			`roles.yaml:6:27: role "visitor": spec.allow.node_labels.env: duplicate key "env" (first at line 6): keep one`},
		{"duplicate_quoted_key", "kind: user\nversion: v2\nmetadata: {name: alice}\nspec: {traits: {a: [x], \"a\": [y]}}\n",
			`duplicate key "a" (first at line 4)`},
		{"merge_key", role + "x: &x {logins: [a]}\n",
			`unknown field "x"`},
		{"merge_key_in_spec", "kind: role\nversion: v5\nmetadata: &m {name: visitor}\nspec:\n  allow:\n    <<: {logins: [a]}\n",
			`roles.yaml:6:5: role "visitor": spec.allow: YAML merge keys (<<) are not supported: write the fields out`},
		{"non_string_key", "kind: user\nversion: v2\nmetadata: {name: alice}\nspec: {traits: {[a]: [x]}}\n",
			`spec.traits: mapping keys must be strings, got a list`},

		{"unknown_kind", "kind: rolee\nversion: v5\nmetadata: {name: x}\n",
			`roles.yaml:1:7: unknown kind "rolee" (did you mean "role"?); supported kinds: role, user, trusted_cluster, remote_cluster, token, cert_authority, node, lock, oidc`},
		{"missing_kind", "version: v5\nmetadata: {name: x}\n",
			`roles.yaml:1:1: kind is required (one of: role, user, trusted_cluster, remote_cluster, token, cert_authority, node, lock, oidc)`},
		{"kind_not_string", "kind: [role]\n", `roles.yaml:1:7: expected kind to be one of role, user`},
		{"missing_version", "kind: role\nmetadata: {name: x}\n",
			`roles.yaml:1:1: role "x": version is required (supported for role: v5, v6, v7)`},
		{"unsupported_role_version", "kind: role\nversion: v4\nmetadata: {name: x}\n",
			`roles.yaml:2:10: role "x": unsupported version "v4" for role (supported: v5, v6, v7)`},
		{"unsupported_user_version", "kind: user\nversion: v3\nmetadata: {name: x}\n",
			`roles.yaml:2:10: user "x": unsupported version "v3" for user (supported: v2)`},
		{"version_not_string", "kind: role\nversion: 5\nmetadata: {name: x}\n",
			`roles.yaml:2:10: role "x": expected version to be one of v5, v6, v7, got the number 5`},
		{"document_is_scalar", "hello\n",
			`roles.yaml:1:1: expected a resource (a mapping with kind, version, metadata and spec), got the string "hello"`},
		{"document_is_list", "- kind: role\n",
			`roles.yaml:1:1: expected a resource (a mapping with kind, version, metadata and spec), got a list`},
		{"error_in_second_document", role + "---\n" + role + "spec:\n  deny: {logins: [a], nodes: []}\n",
			`roles.yaml:9:23: role "visitor": unknown field "nodes" in spec.deny (known fields: logins, node_labels, cluster_labels)`},
		{"token_name_hidden", "kind: token\nversion: v2\nmetadata: {name: supersecret}\nspec: {rolez: [node]}\n",
			`roles.yaml:4:8: token: unknown field "rolez" in spec (did you mean "roles"?)`},

		{"yaml_syntax", "kind: role\nmetadata: [\n", `roles.yaml:3: invalid YAML: did not find expected node content`},
		{"yaml_tab_indent", "kind: role\n\tversion: v5\n", `roles.yaml:2: invalid YAML: found a tab character that violates indentation`},
		{"yaml_unknown_anchor", "kind: role\nversion: *v\n", `roles.yaml: invalid YAML: unknown anchor 'v' referenced`},
		{"not_utf8", "kind: role\nversion: v5\nmetadata: {name: caf\xe9}\n",
			`roles.yaml:3:21: input is not valid UTF-8: save the file as UTF-8`},
		{"utf16", "\xff\xfek\x00i\x00", `roles.yaml:1:1: input is not valid UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rs, err := Parse([]byte(tt.in), "roles.yaml")
			if err == nil {
				t.Fatalf("Parse succeeded (%d resources), want error %q", len(rs), tt.want)
			}
			if rs != nil {
				t.Errorf("Parse returned resources with an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Source != "roles.yaml" {
				t.Errorf("error is %T, want *ParseError naming roles.yaml", err)
			}
			if tt.name == "token_name_hidden" && strings.Contains(err.Error(), "supersecret") {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}

func TestParseErrorFields(t *testing.T) {
	t.Parallel()
	in := "kind: role\nversion: v5\nmetadata: {name: visitor}\nspec:\n  allow:\n    logins: [ok, 'Not OK']\n"
	_, err := Parse([]byte(in), "r.yaml")
	var pe *ParseError
	var fe *FieldError
	if !errors.As(err, &pe) || !errors.As(err, &fe) {
		t.Fatalf("error %v is not a *ParseError wrapping a *FieldError", err)
	}
	if pe.Line != 6 || pe.Column != 18 || fe.Resource != `role "visitor"` || fe.Field != "spec.allow.logins[1]" {
		t.Errorf("got line %d col %d resource %s field %s", pe.Line, pe.Column, fe.Resource, fe.Field)
	}
}

func TestParseLimits(t *testing.T) {
	t.Parallel()
	t.Run("oversize_input", func(t *testing.T) {
		big := make([]byte, MaxInputSize+1)
		for i := range big {
			big[i] = '#'
		}
		_, err := Parse(big, "big.yaml")
		if err == nil || !strings.Contains(err.Error(), "big.yaml: input is 4194305 bytes, more than the limit of 4194304 (4 MiB)") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("oversize_file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "big.yaml")
		if err := os.WriteFile(path, make([]byte, MaxInputSize+10), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := ParseFile(path)
		if err == nil || !strings.Contains(err.Error(), "more than the limit") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("missing_file", func(t *testing.T) {
		if _, err := ParseFile(filepath.Join(t.TempDir(), "nope.yaml")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("error = %v, want not exist", err)
		}
	})
	t.Run("alias_expansion_is_bounded", func(t *testing.T) {
		// One anchored list of 10,000 logins referenced 2,000 times is 20 million strings
		// from a file of a few dozen kilobytes.
		var b strings.Builder
		b.WriteString("kind: user\nversion: v2\nmetadata: {name: bomb}\nspec:\n  traits:\n    t0: &a [")
		b.WriteString(strings.Repeat("x,", 9999) + "x]\n")
		for i := 1; i <= 2000; i++ {
			fmt.Fprintf(&b, "    t%d: *a\n", i)
		}
		start := time.Now()
		_, err := Parse([]byte(b.String()), "bomb.yaml")
		if err == nil || !strings.Contains(err.Error(), "document too complex") {
			t.Errorf("error = %v, want document too complex", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("alias bomb took %v", d)
		}
	})
	t.Run("aliases_are_followed", func(t *testing.T) {
		in := "kind: user\nversion: v2\nmetadata: {name: &n alice}\nspec: {roles: [*n], traits: {logins: &l [a, b], more: *l}}\n"
		u := mustParse(t, in)[0].(*User)
		if !reflect.DeepEqual(u.Spec.Roles, []string{"alice"}) || !reflect.DeepEqual(u.Spec.Traits["more"], []string{"a", "b"}) {
			t.Errorf("user = %+v", u.Spec)
		}
	})
}

func TestDecodeNormalises(t *testing.T) {
	t.Parallel()
	in := `kind: role
version: v6
metadata:
  name: n
  labels: {}
  expires: 2026-11-23T21:45:35+02:00
spec:
  allow:
    logins: []
    node_labels: {tier: 1, env: [a], other: ~, when: 2026-01-01}
  deny: ~
  options: {max_session_ttl: 0}
`
	r := mustParse(t, in)[0].(*Role)
	want := &Role{
		Kind: "role", Version: "v6",
		Metadata: Metadata{Name: "n", Expires: ptr(time.Date(2026, 11, 23, 19, 45, 35, 0, time.UTC))},
		Spec: RoleSpec{Allow: RoleConditions{
			NodeLabels: Labels{"tier": {"1"}, "env": {"a"}, "other": nil, "when": {"2026-01-01"}},
		}},
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got  %#v\nwant %#v", r, want)
	}
	zero := mustParse(t, "kind: lock\nversion: v2\nmetadata: {name: l}\nspec: {target: {user: a}, expires: 0001-01-01T00:00:00Z}\n")[0].(*Lock)
	if zero.Spec.Expires != nil {
		t.Errorf("zero expires = %v, want nil", zero.Spec.Expires)
	}
}

func ptr[T any](v T) *T { return &v }

// TestValidationRules pins each validation rule and its message, with the line it points at.
func TestValidationRules(t *testing.T) {
	t.Parallel()
	role := func(spec string) string {
		return "kind: role\nversion: v5\nmetadata: {name: r}\nspec:\n" + spec
	}
	tc := func(spec string) string {
		return "kind: trusted_cluster\nversion: v2\nmetadata: {name: root.example.com}\nspec:\n" + spec
	}
	const tcOK = "  token: abc\n  tunnel_addr: root.example.com:3024\n  web_proxy_addr: root.example.com:443\n"
	oidc := func(spec string) string {
		return "kind: oidc\nversion: v2\nmetadata: {name: okta}\nspec:\n" + spec
	}
	tests := []struct {
		name string
		in   string
		want string // "" means valid
	}{
		{"metadata_name_required", "kind: node\nversion: v2\nmetadata: {description: x}\n",
			`t.yaml:3:11: node: metadata.name: required`},
		{"metadata_missing", "kind: node\nversion: v2\n", `t.yaml:1:1: node: metadata.name: required`},
		{"metadata_name_whitespace", "kind: node\nversion: v2\nmetadata: {name: 'a b'}\n",
			`t.yaml:3:18: node "a b": metadata.name: must not contain whitespace`},
		{"metadata_name_newline", "kind: node\nversion: v2\nmetadata: {name: \"a\\nb\"}\n", `metadata.name: must not contain whitespace`},
		{"metadata_name_control", "kind: node\nversion: v2\nmetadata: {name: \"a\\x01b\"}\n",
			`node "a\x01b": metadata.name: must not contain control or invisible format characters`},
		{"metadata_name_bidi", "kind: node\nversion: v2\nmetadata: {name: \"a\\u202eb\"}\n", `must not contain control or invisible format characters`},
		{"metadata_name_nbsp", "kind: node\nversion: v2\nmetadata: {name: \"a\\u00a0b\"}\n", `must not contain whitespace`},
		{"metadata_name_253_bytes", "kind: node\nversion: v2\nmetadata: {name: " + strings.Repeat("a", 253) + "}\n", ""},
		{"metadata_name_254_bytes", "kind: node\nversion: v2\nmetadata: {name: " + strings.Repeat("a", 254) + "}\n", `metadata.name: longer than 253 bytes`},
		{"metadata_label_key_empty", "kind: node\nversion: v2\nmetadata: {name: n, labels: {'': x}}\n", `metadata.labels: label keys must not be empty`},

		{"role_login_valid", role("  allow: {logins: [root, ec2-user, _svc, a.b, Admin, host$, x1234567890123456789012345678901]}\n"), ""},
		{"role_login_invalid", role("  allow:\n    logins: [ok, 'bad login']\n"),
			`t.yaml:6:18: role "r": spec.allow.logins[1]: "bad login" is not a valid Unix login name`},
		{"role_login_too_long", role("  allow: {logins: [" + strings.Repeat("a", 33) + "]}\n"), `is not a valid Unix login name`},
		{"role_login_leading_digit", role("  deny: {logins: [1root]}\n"), `spec.deny.logins[0]: "1root" is not a valid Unix login name`},
		{"role_login_empty", role("  allow: {logins: ['']}\n"), `spec.allow.logins[0]: "" is not a valid Unix login name`},
		{"role_login_template", role("  allow: {logins: ['{{internal.logins}}', 'ad-{{external[\"x y\"]}}', '{{email.local(external.email)}}']}\n"), ""},
		{"role_login_template_affixes", role("  allow: {logins: ['ops-{{external.team}}.x$']}\n"), ""},
		{"role_login_template_bad_prefix", role("  allow: {logins: ['a b-{{external.team}}']}\n"),
			`spec.allow.logins[0]: template "a b-{{external.team}}": the text around {{...}} may only contain letters, digits, '_', '.' and '-'`},
		{"role_login_template_bad_suffix", role("  allow: {logins: ['{{external.team}}@corp']}\n"),
			`spec.allow.logins[0]: template "{{external.team}}@corp": the text around`},
		{"role_login_bad_template", role("  allow: {logins: ['{{internal.logins}']}\n"),
			`spec.allow.logins[0]: template "{{internal.logins}": unbalanced braces`},
		{"role_login_unknown_namespace", role("  allow: {logins: ['{{traits.logins}}']}\n"),
			`spec.allow.logins[0]: template "{{traits.logins}}": unknown namespace "traits": use internal or external`},
		// Issue 7, point 6: internal.NAME only for Teleport's internal traits, refused at create with the list.
		{"role_login_internal_unknown_trait", role("  allow: {logins: ['{{internal.team}}']}\n"),
			`spec.allow.logins[0]: template "{{internal.team}}": "team" is not an internal trait: internal.NAME takes one of logins, windows_logins, kubernetes_users, kubernetes_groups, db_users, db_names, db_roles, aws_role_arns, azure_identities, gcp_service_accounts, host_user_uid, host_user_gid, github_orgs, jwt`},
		{"role_label_internal_unknown_trait", role("  deny: {node_labels: {env: '{{internal.env}}'}}\n"),
			`spec.deny.node_labels.env[0]: template "{{internal.env}}": "env" is not an internal trait`},
		{"role_login_internal_teleport_traits", role("  allow: {logins: ['{{internal.logins}}', '{{internal.windows_logins}}', '{{internal.db_users}}', 'u{{internal.host_user_uid}}']}\n"), ""},
		{"role_login_unknown_namespace_foo", role("  allow: {logins: ['{{foo.bar}}']}\n"), `unknown namespace "foo": use internal or external`},
		// Literal expressions are the author's own values.
		{"role_login_string_literal", role("  allow: {logins: ['{{\"ubuntu\"}}', 'x-{{\"y\"}}']}\n"), ""},
		{"role_login_string_literal_invalid_login", role("  allow: {logins: ['{{\"bad login\"}}']}\n"),
			`spec.allow.logins[0]: template "{{\"bad login\"}}" gives "bad login", which is not a valid Unix login name`},
		{"role_login_regexp_replace_literal", role("  allow: {logins: ['{{regexp.replace(\"team-db\", \"^team-(.*)$\", \"$1\")}}']}\n"), ""},
		{"role_login_email_local_literal", role("  allow: {logins: ['{{email.local(\"Alice <alice@example.com>\")}}']}\n"), ""},
		{"role_label_string_literal_regex_checked", role("  allow: {node_labels: {env: '{{\"^(prod$\"}}'}}\n"),
			`template "{{\"^(prod$\"}}" gives "^(prod$": "^(prod$" is not a valid regular expression`},
		{"role_label_string_literal_glob", role("  allow: {node_labels: {env: '{{\"prod-*\"}}'}}\n"), ""},
		// Tether: the text around a trait is literal too; a pattern there would silently be text.
		{"role_label_template_glob_suffix_refused", role("  deny: {node_labels: {team: '{{external.team}}-*'}}\n"),
			`spec.deny.node_labels.team[0]: template "{{external.team}}-*": a value that comes from a trait is matched as literal text`},
		{"role_label_template_regex_affixes_refused", role("  allow: {cluster_labels: {team: '^{{external.team}}$'}}\n"),
			`a value that comes from a trait is matched as literal text`},
		{"role_label_template_literal_affixes", role("  allow: {node_labels: {team: 'team-{{external.team}}'}}\n"), ""},
		{"role_label_key_empty", role("  allow: {node_labels: {'': x}}\n"), `spec.allow.node_labels: label keys must not be empty`},
		{"role_label_wildcard_key_needs_wildcard_value", role("  allow:\n    node_labels: {'*': prod}\n"),
			`t.yaml:6:24: role "r": spec.allow.node_labels["*"]: the key '*' may only have the value '*'`},
		{"role_label_wildcard_key_two_values", role("  deny: {cluster_labels: {'*': ['*', x]}}\n"),
			`spec.deny.cluster_labels["*"]: the key '*' may only have the value '*'`},
		{"role_label_wildcard_value_any_key", role("  allow: {node_labels: {env: '*'}}\n"), ""},
		{"role_label_regex_invalid", role("  allow:\n    node_labels:\n      env: [ok, '^(prod$']\n"),
			`t.yaml:7:17: role "r": spec.allow.node_labels.env[1]: "^(prod$" is not a valid regular expression: missing closing )`},
		{"role_label_regex_valid", role("  allow: {node_labels: {env: '^(prod|stage)-[0-9]+$'}}\n"), ""},
		{"role_label_glob_not_regex", role("  allow: {node_labels: {env: '(prod*'}}\n"), ""},
		{"role_label_template", role("  allow: {node_labels: {team: '{{external.team}}'}}\n"), ""},
		{"role_label_template_invalid", role("  allow: {cluster_labels: {team: '{{external.team}}{{external.x}}'}}\n"),
			`spec.allow.cluster_labels.team[0]: template "{{external.team}}{{external.x}}": only one {{...}} expression is allowed`},
		{"role_label_template_in_key", role("  deny: {node_labels: {'{{external.k}}': x}}\n"),
			`spec.deny.node_labels["{{external.k}}"]: templates are only supported in label values, not in keys`},
		{"role_negative_session_ttl", role("  options: {max_session_ttl: -1h}\n"),
			`t.yaml:5:30: role "r": spec.options.max_session_ttl: must not be negative, got -1h0m0s`},
		{"role_negative_cert_age", role("  options: {max_cert_age: -5m}\n"), `spec.options.max_cert_age: must not be negative, got -5m0s`},
		{"role_max_connections", role("  options: {max_connections: 3}\n"), ""},
		{"role_negative_max_connections", role("  options: {max_connections: -1}\n"),
			`spec.options.max_connections: must not be negative (0 or unset: no limit), got -1`},
		{"role_max_connections_not_a_number", role("  options: {max_connections: two}\n"),
			`spec.options.max_connections: expected a whole number, got the string "two"`},
		{"role_max_connections_fraction", role("  options: {max_connections: 1.5}\n"),
			`spec.options.max_connections: expected a whole number, got the number 1.5`},
		{"role_max_connections_too_big", role("  options: {max_connections: 99999999999999999999}\n"),
			`spec.options.max_connections: expected a whole number`},
		{"role_empty_connector", role("  options: {require_connectors: [oidc/okta, ' ']}\n"),
			`spec.options.require_connectors[1]: must not be empty`},

		{"user_roles_ok", "kind: user\nversion: v2\nmetadata: {name: alice}\nspec: {roles: [access]}\n", ""},
		{"user_role_empty", "kind: user\nversion: v2\nmetadata: {name: alice}\nspec: {roles: [access, '']}\n",
			`t.yaml:4:24: user "alice": spec.roles[1]: role names must not be empty`},

		{"trusted_cluster_ok", tc(tcOK), ""},
		// A leaf stores its trust without the token once the handshake succeeded; the auth
		// service requires a token where a handshake has to run.
		{"trusted_cluster_token_may_be_empty", tc("  tunnel_addr: a:1\n  web_proxy_addr: a:2\n"), ""},
		{"trusted_cluster_token_blank", tc("  token: ' '\n  tunnel_addr: a:1\n  web_proxy_addr: a:2\n"), `spec.token: is blank`},
		{"trusted_cluster_tunnel_addr_required", tc("  token: abc\n  web_proxy_addr: a:2\n"), `spec.tunnel_addr: required (host:port)`},
		{"trusted_cluster_tunnel_addr_no_port", tc("  token: abc\n  tunnel_addr: root.example.com\n  web_proxy_addr: a:2\n"),
			`t.yaml:6:16: trusted_cluster "root.example.com": spec.tunnel_addr: want host:port, for example root.example.com:443, got "root.example.com"`},
		{"trusted_cluster_web_proxy_addr_bad_port", tc("  token: abc\n  tunnel_addr: a:1\n  web_proxy_addr: a:99999\n"),
			`spec.web_proxy_addr: port must be a number from 1 to 65535, got "a:99999"`},
		{"trusted_cluster_web_proxy_addr_no_host", tc("  token: abc\n  tunnel_addr: a:1\n  web_proxy_addr: ':443'\n"),
			`spec.web_proxy_addr: want host:port with a host name or IP address`},
		{"trusted_cluster_ipv6", tc("  token: abc\n  tunnel_addr: '[::1]:3024'\n  web_proxy_addr: 10.0.0.1:443\n"), ""},
		{"trusted_cluster_token_not_echoed", tc("  token: s3cr3t-token\n  tunnel_addr: bad\n  web_proxy_addr: a:1\n"), `spec.tunnel_addr`},
		{"trusted_cluster_role_map_rule", tc(tcOK + "  role_map:\n    - {remote: access, local: [visitor]}\n    - {remote: '', local: [visitor]}\n"),
			`t.yaml:10:7: trusted_cluster "root.example.com": spec: role_map[1]: remote must not be empty (rule {remote: "", local: ["visitor"]})`},
		{"trusted_cluster_role_map_regex", tc(tcOK + "  role_map:\n    - {remote: '^dev(-.*$', local: [x]}\n"),
			`t.yaml:9:7: trusted_cluster "root.example.com": spec: role_map[0]: remote "^dev(-.*$" is not a valid regular expression: missing closing ) (rule {remote: "^dev(-.*$", local: ["x"]})`},

		{"token_roles", "kind: token\nversion: v2\nmetadata: {name: t}\nspec: {roles: [node, TRUSTED_CLUSTER]}\n", ""},
		{"token_role_unknown", "kind: token\nversion: v2\nmetadata: {name: t0ps3cret}\nspec: {roles: [node, proxy]}\n",
			`t.yaml:4:22: token: spec.roles[1]: unsupported token role "proxy": use trusted_cluster or node`},
		{"token_roles_required", "kind: token\nversion: v2\nmetadata: {name: t}\nspec: {roles: []}\n", `token: spec.roles: required: trusted_cluster or node`},
		{"token_join_method", "kind: token\nversion: v2\nmetadata: {name: t}\nspec: {roles: [node], join_method: iam}\n",
			`spec.join_method: unsupported join method "iam": Tether only supports token`},
		{"token_name_required", "kind: token\nversion: v2\nmetadata: {}\nspec: {roles: [node]}\n", `token: metadata.name: required`},

		{"cert_authority_type", "kind: cert_authority\nversion: v2\nmetadata: {name: c}\nspec: {type: db, cluster_name: c}\n",
			`t.yaml:4:14: cert_authority "c": spec.type: must be user, host, tls or openssh, got "db"`},
		{"cert_authority_cluster_name", "kind: cert_authority\nversion: v2\nmetadata: {name: c}\nspec: {type: host}\n",
			`cert_authority "c": spec.cluster_name: required`},
		{"cert_authority_public_key", "kind: cert_authority\nversion: v2\nmetadata: {name: c}\nspec: {type: tls, cluster_name: c, additional_trusted_keys: {ssh: [{private_key: k}]}}\n",
			`spec.additional_trusted_keys.ssh[0].public_key: required`},
		{"cert_authority_tls_cert", "kind: cert_authority\nversion: v2\nmetadata: {name: c}\nspec: {type: tls, cluster_name: c, active_keys: {tls: [{key: k}]}}\n",
			`spec.active_keys.tls[0].cert: required`},

		{"lock_target_required", "kind: lock\nversion: v2\nmetadata: {name: l}\nspec: {message: hi}\n",
			`t.yaml:4:7: lock "l": spec.target: at least one of user, role, login, node or remote_cluster is required`},
		{"lock_empty_target", "kind: lock\nversion: v2\nmetadata: {name: l}\nspec: {target: {}}\n", `spec.target: at least one of`},
		{"lock_remote_cluster", "kind: lock\nversion: v2\nmetadata: {name: l}\nspec: {target: {remote_cluster: leaf}}\n", ""},

		{"oidc_ok", oidc("  issuer_url: https://idp.example.com\n  client_id: c\n  redirect_url: https://root/cb\n"), ""},
		{"oidc_issuer_http", oidc("  issuer_url: http://idp.example.com\n  client_id: c\n  redirect_url: https://root/cb\n"),
			`t.yaml:5:15: oidc "okta": spec.issuer_url: must be an https URL, got "http://idp.example.com"`},
		{"oidc_issuer_required", oidc("  client_id: c\n  redirect_url: https://root/cb\n"), `spec.issuer_url: required`},
		{"oidc_issuer_no_host", oidc("  issuer_url: 'https:///x'\n  client_id: c\n  redirect_url: https://root/cb\n"), `spec.issuer_url: URL must name a host`},
		{"oidc_client_id", oidc("  issuer_url: https://idp\n  redirect_url: https://root/cb\n"), `oidc "okta": spec.client_id: required`},
		{"oidc_redirect_not_url", oidc("  issuer_url: https://idp\n  client_id: c\n  redirect_url: root/cb\n"),
			`spec.redirect_url: must be an https or http URL, got "root/cb"`},
		{"oidc_claim_roles", oidc("  issuer_url: https://idp\n  client_id: c\n  redirect_url: https://root/cb\n  claims_to_roles: [{claim: g, value: v}]\n"),
			`spec.claims_to_roles[0].roles: required`},
		{"oidc_client_secret_not_echoed", oidc("  issuer_url: http://idp\n  client_id: c\n  client_secret: hunter2\n  redirect_url: x\n"), `spec.issuer_url`},

		{"node_addr", "kind: node\nversion: v2\nmetadata: {name: n}\nspec: {addr: 'host'}\n", `node "n": spec.addr: want host:port`},
		{"node_no_addr", "kind: node\nversion: v2\nmetadata: {name: n}\nspec: {hostname: n}\n", ""},
		{"remote_cluster_connection", "kind: remote_cluster\nversion: v3\nmetadata: {name: leaf}\nstatus: {connection: up}\n",
			`remote_cluster "leaf": status.connection: must be online or offline, got "up"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rs, err := Parse([]byte(tt.in), "t.yaml")
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if len(rs) != 1 {
					t.Fatalf("got %d resources", len(rs))
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded, want error %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
			for _, secret := range []string{"s3cr3t-token", "hunter2", "t0ps3cret"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks a secret: %v", err)
				}
			}
		})
	}
}

func TestValidateDirect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		r    Resource
		want string
	}{
		{"empty_kind_and_version_are_defaults", &Node{Metadata: Metadata{Name: "n"}}, ""},
		{"wrong_kind", &Node{Kind: "role", Metadata: Metadata{Name: "n"}}, `node "n": kind: is "role", want "node"`},
		{"wrong_version", &Role{Version: "v4", Metadata: Metadata{Name: "r"}}, `role "r": version: unsupported version "v4" for role (supported: v5, v6, v7)`},
		{"invalid_utf8_name", &User{Metadata: Metadata{Name: "a\xffb"}}, `user "a\xffb": metadata.name: not valid UTF-8`},
		{"role_map_error_is_typed", &TrustedCluster{Metadata: Metadata{Name: "root"},
			Spec: TrustedClusterSpec{Token: "t", TunnelAddr: "a:1", WebProxyAddr: "a:2", RoleMap: []RoleMapping{{Remote: "a", Local: []string{"*"}}}}},
			`trusted_cluster "root": spec: role_map[0]: local[0] must not be "*": name the local roles to grant (rule {remote: "a", local: ["*"]})`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.r.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Validate() = %v\nwant          %s", err, tt.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error is %T, want *FieldError", err)
			}
		})
	}
	var rme *RoleMapError
	tc := &TrustedCluster{Metadata: Metadata{Name: "root"}, Spec: TrustedClusterSpec{Token: "t", TunnelAddr: "a:1", WebProxyAddr: "a:2",
		RoleMap: []RoleMapping{{Remote: "a", Local: []string{"b"}}, {Remote: "a", Local: []string{"c"}}}}}
	if err := tc.Validate(); !errors.As(err, &rme) || rme.Index != 1 || rme.Code != RoleMapDuplicateRemote {
		t.Errorf("Validate() = %v, want a *RoleMapError for rule 1", err)
	}
}

func TestTokenValidateNormalisesRoles(t *testing.T) {
	t.Parallel()
	tok := &Token{Metadata: Metadata{Name: "x"}, Spec: TokenSpec{Roles: []string{"Trusted_cluster", "NODE"}}}
	if err := tok.Validate(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"trusted_cluster", "node"}; !reflect.DeepEqual(tok.Spec.Roles, want) {
		t.Errorf("roles = %v, want %v", tok.Spec.Roles, want)
	}
}

func TestIsValidLogin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		login string
		want  bool
	}{
		{"root", true}, {"ec2-user", true}, {"_apt", true}, {"a.b", true}, {"Administrator", true},
		{"host$", true}, {"a", true}, {strings.Repeat("a", 32), true},
		{"", false}, {strings.Repeat("a", 33), false}, {"1abc", false}, {"-abc", false}, {".abc", false},
		{"$", false}, {"a$b", false}, {"a b", false}, {"a:b", false}, {"a@b", false}, {"é", false},
		{"a/b", false}, {"{{internal.logins}}", false},
	}
	for _, tt := range tests {
		if got := IsValidLogin(tt.login); got != tt.want {
			t.Errorf("IsValidLogin(%q) = %v, want %v", tt.login, got, tt.want)
		}
	}
}

func TestLabels(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		l    Labels
		want bool
	}{
		{Labels{"*": {"*"}}, true},
		{Labels{"*": {"*"}, "env": {"a"}}, false},
		{Labels{"env": {"*"}}, false},
		{nil, false},
	} {
		if got := tt.l.IsWildcard(); got != tt.want {
			t.Errorf("%v.IsWildcard() = %v", tt.l, got)
		}
	}
	for _, tt := range []struct {
		v    string
		want bool
	}{{"^a$", true}, {"^$", true}, {"^a", false}, {"a$", false}, {"^", false}, {"$", false}} {
		if got := IsLabelRegex(tt.v); got != tt.want {
			t.Errorf("IsLabelRegex(%q) = %v", tt.v, got)
		}
	}
}

// TestRoundTripAwkwardStrings checks strings YAML emitters get wrong: ones that look like
// other types, hold line breaks, spaces at the ends, or are long enough to be folded.
func TestRoundTripAwkwardStrings(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("word ", 40)
	awkward := []string{
		"true", "False", "yes", "no", "on", "null", "~", "", " ", "0", "0x1F", "1e3", "1_000", ".inf", "-.5",
		"2026-11-23", "2026-11-23T19:45:35Z", "- item", "key: value", "#comment", "a #b", "'quoted'", `"dq"`,
		"&anchor", "*alias", "!tag", "%dir", "@at", "`tick", "|", ">", "? q", "[a]", "{a: b}", "a,b",
		"line1\nline2", "trailing\n", "\n", "\n\nx", "x\n\n", " lead", "trail ", "tab\tin", "\r", "a\r\nb",
		"\u0085", "\u2028", "\u2029", "\ufeff", "x\ufeffy", "\x7f", "\x00", "\x1b[31m", "é", "日本語", "🙂",
		long, long + "\n" + long, strings.Repeat("a", 200), "a  " + long + "  b", "--- ", "...", "---",
		"multi  spaces  inside", "ends with colon:", "<<",
	}
	for _, s := range awkward {
		n := &Node{
			Metadata: Metadata{Name: "n", Description: s, Labels: map[string]string{"k": s}},
			Spec:     NodeSpec{Hostname: s},
		}
		if s != "" {
			n.Metadata.Labels[s] = "v"
		}
		out, err := Marshal(n)
		if err != nil {
			t.Errorf("Marshal(%q): %v", s, err)
			continue
		}
		back, err := Parse(out, "rt.yaml")
		if err != nil {
			t.Errorf("Parse(Marshal(%q)): %v\n%s", s, err, out)
			continue
		}
		got := back[0].(*Node)
		if got.Metadata.Description != s || got.Spec.Hostname != s || got.Metadata.Labels["k"] != s || (s != "" && got.Metadata.Labels[s] != "v") {
			t.Errorf("round trip of %q gave %q\n%s", s, got.Metadata.Description, out)
		}
	}
}

// TestRoundTripExhaustiveShortStrings marshals every string of up to four characters from an
// alphabet of YAML's troublemakers.
func TestRoundTripExhaustiveShortStrings(t *testing.T) {
	t.Parallel()
	alphabet := []string{"a", " ", "\n", "\t", "#", ":", "-", "'"}
	var all []string
	var gen func(prefix string, n int)
	gen = func(prefix string, n int) {
		all = append(all, prefix)
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			gen(prefix+c, n-1)
		}
	}
	gen("", 4)
	for _, s := range all {
		n := &Node{Metadata: Metadata{Name: "n", Description: s}}
		out, err := Marshal(n)
		if err != nil {
			t.Fatalf("Marshal(%q): %v", s, err)
		}
		back, err := Parse(out, "rt.yaml")
		if err != nil {
			t.Errorf("Parse(Marshal(%q)): %v\n%s", s, err, out)
			continue
		}
		if got := back[0].GetMetadata().Description; got != s {
			t.Errorf("round trip of %q gave %q\n%s", s, got, out)
		}
	}
}

func TestYAMLUnmarshalers(t *testing.T) {
	t.Parallel()
	var v struct {
		TTL    Duration `yaml:"ttl"`
		Labels Labels   `yaml:"labels"`
	}
	if err := yaml.Unmarshal([]byte("ttl: 90m\nlabels: {a: x, b: [y, z]}\n"), &v); err != nil {
		t.Fatal(err)
	}
	if v.TTL != Duration(90*time.Minute) || !reflect.DeepEqual(v.Labels, Labels{"a": {"x"}, "b": {"y", "z"}}) {
		t.Errorf("got %+v", v)
	}
	out, err := yaml.Marshal(v)
	if err != nil || string(out) != "ttl: 1h30m0s\nlabels:\n    a: x\n    b:\n        - \"y\"\n        - z\n" {
		t.Errorf("yaml.Marshal = %q, %v", out, err)
	}
	if err := yaml.Unmarshal([]byte("ttl: 8\n"), &v); err == nil || !strings.Contains(err.Error(), "line 1: duration 8 has no unit") {
		t.Errorf("error = %v", err)
	}
}

func TestParseSyntaxErrorLineInLaterDocument(t *testing.T) {
	t.Parallel()
	in := "kind: node\nversion: v2\nmetadata: {name: a}\n---\nkind: node\nversion: v2\nmetadata: {name: [b}\n"
	_, err := Parse([]byte(in), "n.yaml")
	if err == nil || !strings.HasPrefix(err.Error(), "n.yaml:7: invalid YAML:") {
		t.Errorf("error = %v, want it at line 7", err)
	}
}

// TestParseYAMLSyntaxErrorLines checks the line of yaml.v3's syntax errors, which it
// reports 0-based for parser errors and 1-based for scanner errors.
func TestParseYAMLSyntaxErrorLines(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"parser_error_flow_sequence", "a: 1\nb: 2\nc: [x\n", "s.yaml:3: invalid YAML: did not find expected ',' or ']'"},
		{"parser_error_block_mapping", "a: 1\nb:\n  c: 1\n d: 2\n", "s.yaml:4: invalid YAML: did not find expected key"},
		{"scanner_error_tab", "a: 1\n\tb: 2\n", "s.yaml:2: invalid YAML: found a tab character that violates indentation"},
		{"scanner_error_mapping_values", "a: 1\nb: c: d\n", "s.yaml:2: invalid YAML: mapping values are not allowed in this context"},
		{"control_character", "a: 1\nb: x\x01y\n", "s.yaml:2:5: invalid YAML: control characters are not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.in), "s.yaml")
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %v\nwant      %s", err, tt.want)
			}
		})
	}
}
