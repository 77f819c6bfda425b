package resource

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestTeleportImport: what Teleport's tctl get prints for role (v5, v6, v7), user,
// trusted_cluster and token is accepted; the fields Tether has no use for are reported in
// one warning, each with its line, and change nothing Tether decides on.
func TestTeleportImport(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/teleport-tctl-get.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs, warn, err := ParseWithWarnings(data, "tctl.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(rs) != 6 {
		t.Fatalf("got %d resources, want 6", len(rs))
	}
	if warn == nil {
		t.Fatal("no warning for the ignored Teleport fields")
	}
	lines := strings.Split(string(data), "\n")
	got := map[string]bool{}
	for _, f := range warn.Fields {
		got[f.Resource+" "+f.Field] = true
		// The line named is the field's own line.
		last := f.Field[strings.LastIndex(f.Field, ".")+1:]
		if f.Line < 1 || f.Line > len(lines) || !strings.HasPrefix(strings.TrimSpace(lines[f.Line-1]), last+":") {
			t.Errorf("ignored field %s %s: line %d is %q", f.Resource, f.Field, f.Line, lines[max(0, f.Line-1)])
		}
	}
	for _, want := range []string{
		`role "dev" metadata.id`, `role "dev" metadata.revision`, `role "dev" metadata.namespace`, `role "dev" sub_kind`,
		`role "dev" spec.allow.rules`, `role "dev" spec.allow.kubernetes_resources`, `role "dev" spec.allow.request`,
		`role "dev" spec.options.record_session`,
		`role "dev" spec.options.cert_format`, `role "dev" spec.options.desktop_clipboard`, `role "dev" spec.options.idp`,
		`role "auditor" spec.options.client_idle_timeout`, `role "auditor" spec.options.disconnect_expired_cert`,
		`user "alice" spec.created_by`, `user "alice" spec.status`, `user "alice" spec.expires`, `user "alice" status`,
		`user "alice" spec.saml_identities`, `trusted_cluster "root.example.com" metadata.revision`, `token metadata.id`, `role "ops-v5" spec.allow.rules`,
	} {
		if !got[want] {
			t.Errorf("warning does not list %s", want)
		}
	}
	msg := warn.String()
	if strings.Count(msg, "\n") != len(warn.Fields) || !strings.HasPrefix(msg, "tctl.yaml: Tether ignores") {
		t.Errorf("warning is not one message with a line per field:\n%s", msg)
	}

	dev := rs[0].(*Role)
	if !reflect.DeepEqual(dev.Spec.Allow.Logins, []string{"{{internal.logins}}", "ubuntu"}) ||
		!reflect.DeepEqual(dev.Spec.Allow.NodeLabels, Labels{"env": {"staging"}, "team": {"dev", "^platform-.*$"}}) ||
		!reflect.DeepEqual(dev.Spec.Deny.Logins, []string{"root"}) || dev.Spec.Options.MaxSessionTTL.String() != "8h0m0s" ||
		dev.Metadata.Description != "Developers, SSH to staging" || dev.Metadata.Labels["team"] != "dev" {
		t.Errorf("role dev decoded as %+v", dev)
	}
	if u := rs[2].(*User); !reflect.DeepEqual(u.Spec.Roles, []string{"dev"}) || !reflect.DeepEqual(u.Spec.Traits["logins"], []string{"alice", "ubuntu"}) {
		t.Errorf("user decoded as %+v", u)
	}
	if tok := rs[4].(*Token); tok.Spec.Roles[0] != TokenRoleTrustedCluster {
		t.Errorf("token decoded as %+v", tok)
	}
	if ops := rs[5].(*Role); ops.Version != "v5" || !ops.Spec.Options.RequireSessionMFA ||
		!reflect.DeepEqual(ops.Spec.Deny.NodeLabels, Labels{"env": {"prod"}}) {
		t.Errorf("role ops-v5 decoded as %+v", ops)
	}
	// port_forwarding and forward_agent are imported, not ignored: Tether decides by them.
	for _, f := range warn.Fields {
		if strings.HasSuffix(f.Field, ".port_forwarding") || strings.HasSuffix(f.Field, ".forward_agent") {
			t.Errorf("%s %s is listed as ignored; Tether decides by it", f.Resource, f.Field)
		}
	}
	if o := dev.Spec.Options; o.PortForwarding != OptionTrue || o.ForwardAgent != OptionFalse {
		t.Errorf("role dev options: port_forwarding %v forward_agent %v, want true and false", o.PortForwarding, o.ForwardAgent)
	}
	if o := rs[1].(*Role).Spec.Options; o.PortForwarding != OptionFalse || o.ForwardAgent != OptionTrue {
		t.Errorf("role %s options: port_forwarding %v forward_agent %v, want false and true", rs[1].GetMetadata().Name, o.PortForwarding, o.ForwardAgent)
	}
	// What Tether stores carries none of them: the marshaled form parses with no warning.
	for _, r := range rs {
		out, err := Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, w, err := ParseWithWarnings(out, "stored"); err != nil || w != nil {
			t.Errorf("stored %s: %v, warning %v", r.GetKind(), err, w)
		}
	}
}

// TestTeleportImportRefusesWhatWouldWidenAccess is the attacker's side: a Teleport field
// whose absence would let through what Teleport denies is refused with the reason and its
// line, never ignored.
func TestTeleportImportRefusesWhatWouldWidenAccess(t *testing.T) {
	t.Parallel()
	role := "kind: role\nversion: v7\nmetadata: {name: r}\nspec:\n"
	user := "kind: user\nversion: v2\nmetadata: {name: u}\nspec:\n  roles: [r]\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"allow_node_labels_expression_narrows_node_labels", role + "  allow:\n    node_labels: {'*': '*'}\n    node_labels_expression: 'labels.env == \"staging\"'\n",
			`tctl.yaml:7:5: role "r": spec.allow.node_labels_expression: Teleport field that Tether cannot honour: it narrows node_labels`},
		{"allow_cluster_labels_expression", role + "  allow:\n    cluster_labels_expression: 'labels.env == \"dev\"'\n",
			"spec.allow.cluster_labels_expression: Teleport field that Tether cannot honour"},
		{"deny_node_labels_expression", role + "  deny:\n    node_labels_expression: 'labels.env == \"prod\"'\n",
			"tctl.yaml:6:5: role \"r\": spec.deny.node_labels_expression: Teleport field that Tether cannot honour: Tether does not model deny.node_labels_expression"},
		{"deny_rules", role + "  deny:\n    rules:\n    - resources: [session]\n      verbs: [read]\n",
			"spec.deny.rules: Teleport field that Tether cannot honour"},
		{"deny_db_labels_set", role + "  deny:\n    db_labels: {env: prod}\n", "spec.deny.db_labels"},
		{"where_in_deny_rules", role + "  deny:\n    rules:\n    - resources: [session]\n      verbs: [read, list]\n      where: contains(session.participants, user.metadata.name)\n",
			"tctl.yaml:9:14: role \"r\": spec.deny.rules[0].where: Teleport field that Tether cannot honour: a where clause"},
		{"require_session_join", role + "  allow:\n    require_session_join:\n    - name: auditor\n      filter: contains(user.spec.roles, \"auditor\")\n      kinds: [ssh]\n      modes: [moderator]\n",
			"spec.allow.require_session_join: Teleport field that Tether cannot honour: it makes sessions wait for moderators"},
		{"record_session_ssh_strict", role + "  options:\n    record_session: {default: best_effort, ssh: strict}\n", "record_session ssh: strict"},
		{"pin_source_ip", role + "  options:\n    pin_source_ip: true\n", "pin_source_ip: true"},
		{"client_idle_timeout", role + "  options:\n    client_idle_timeout: 15m\n", "client_idle_timeout ends idle sessions"},
		{"disconnect_expired_cert", role + "  options:\n    disconnect_expired_cert: true\n", "disconnect_expired_cert"},
		{"ssh_port_forwarding_local_disabled", role + "  options:\n    ssh_port_forwarding:\n      local: {enabled: false}\n      remote: {enabled: true}\n",
			"ssh_port_forwarding local.enabled: false"},
		{"ssh_port_forwarding_remote_disabled", role + "  options:\n    ssh_port_forwarding: {remote: {enabled: false}}\n", "write port_forwarding: false instead"},
		{"port_forwarding_not_a_bool", role + "  options:\n    port_forwarding: maybe\n", "expected true or false"},
		{"ssh_file_copy_false", role + "  options:\n    ssh_file_copy: false\n", "ssh_file_copy: false"},
		{"device_trust_required", role + "  options:\n    device_trust_mode: required\n", "device_trust_mode: required"},
		{"max_sessions", role + "  options:\n    max_sessions: 2\n", "max_sessions"},
		{"lock_strict", role + "  options:\n    lock: strict\n", "lock: strict"},
		{"locked_user", user + "  status:\n    is_locked: true\n    locked_message: too many failed logins\n", "the user is locked in Teleport"},
		{"expiring_user", user + "  expires: \"2030-01-01T00:00:00Z\"\n", "the user expires at 2030-01-01T00:00:00Z"},
		{"user_bound_to_devices", user + "  trusted_device_ids: [d1]\n", "trusted_device_ids"},
		{"token_allow_rules", "kind: token\nversion: v2\nmetadata: {name: 0e5b1c9a7f3d2b8e6c4a1f0d9b7e5c3a}\nspec:\n  roles: [node]\n  allow:\n  - aws_account: \"123456789012\"\n",
			"spec.allow: Teleport field that Tether cannot honour"},
		{"truly_unknown_field_stays_an_error", role + "  allow:\n    logins: [a]\n    node_lables: {'*': '*'}\n",
			`tctl.yaml:7:5: role "r": unknown field "node_lables" in spec.allow (did you mean "node_labels"?)`},
		{"teleport_field_in_the_wrong_place_is_unknown", role + "  options:\n    rules: []\n", `unknown field "rules" in spec.options`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs, _, err := ParseWithWarnings([]byte(tc.yaml), "tctl.yaml")
			if err == nil {
				t.Fatalf("accepted (%d resources), want %q", len(rs), tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain %q", err, tc.want)
			}
		})
	}

	// Empty deny fields deny nothing: ignoring them widens nothing.
	for _, ok := range []string{
		role + "  deny:\n    db_labels: {}\n    rules: []\n    node_labels_expression: \"\"\n",
		role + "  options:\n    client_idle_timeout: 0s\n    max_sessions: 0\n    lock: best_effort\n    device_trust_mode: \"off\"\n    record_session: {default: best_effort, desktop: false}\n",
		role + "  allow:\n    rules:\n    - resources: [role]\n      verbs: [list]\n      where: \"\"\n",
		// Teleport's preset access role: the where narrows an API rule Tether never grants.
		role + "  allow:\n    rules:\n    - resources: [session]\n      verbs: [read, list]\n      where: contains(session.participants, user.metadata.name)\n",
		role + "  allow:\n    impersonate:\n      users: ['*']\n      where: equals(impersonate_user.metadata.labels[\"team\"], \"dev\")\n",
	} {
		if _, w, err := ParseWithWarnings([]byte(ok), "ok.yaml"); err != nil || w == nil {
			t.Errorf("refused or unreported:\n%s\n%v", ok, err)
		}
	}
}

// TestParseReportsEveryProblemOfAFile: one run names every bad field of every document
// (and each document's validation error), not just the first.
func TestParseReportsEveryProblemOfAFile(t *testing.T) {
	t.Parallel()
	in := "kind: role\nversion: v7\nmetadata: {name: a}\nspec:\n  allow:\n    logins: [a]\n    lgins: [b]\n" +
		"    node_labels_expression: 'x'\n  options:\n    max_session_ttl: 8\n" +
		"---\nkind: user\nversion: v2\nmetadata: {name: u}\nspec:\n  roles: ['']\n" +
		"---\nkind: role\nversion: v5\nmetadata: {name: ok}\n" +
		"---\nkind: token\nversion: v2\nmetadata: {name: x}\nspce: {}\n"
	rs, err := Parse([]byte(in), "many.yaml")
	if err == nil || rs != nil {
		t.Fatalf("Parse: %v, %d resources", err, len(rs))
	}
	var pes ParseErrors
	if !errors.As(err, &pes) {
		t.Fatalf("error %T is not ParseErrors: %v", err, err)
	}
	want := []string{
		`many.yaml:7:5: role "a": unknown field "lgins" in spec.allow`,
		`many.yaml:8:5: role "a": spec.allow.node_labels_expression: Teleport field that Tether cannot honour`,
		`many.yaml:10:22: role "a": spec.options.max_session_ttl: duration 8 has no unit`,
		`many.yaml:16:11: user "u": spec.roles[0]: role names must not be empty`,
		`many.yaml:25:1: token: unknown field "spce"`,
	}
	if len(pes) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(pes), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(pes[i].Error(), w) {
			t.Errorf("problem %d:\n got %s\nwant %s…", i, pes[i].Error(), w)
		}
	}
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 7 {
		t.Errorf("errors.As(*ParseError) gives %v", pe)
	}
}

// TestForwardingOptionsRoundTrip: unset, false and true survive Marshal and Parse (false
// is not dropped as a zero value: it forbids what unset allows).
func TestForwardingOptionsRoundTrip(t *testing.T) {
	t.Parallel()
	for _, opts := range []string{"{}", "{port_forwarding: false, forward_agent: false}", "{port_forwarding: true, forward_agent: true}", "{port_forwarding: false, forward_agent: true}"} {
		rs, err := Parse([]byte("kind: role\nversion: v7\nmetadata: {name: r}\nspec:\n  options: "+opts+"\n"), "r.yaml")
		if err != nil {
			t.Fatalf("%s: %v", opts, err)
		}
		want := rs[0].(*Role).Spec.Options
		out, err := Marshal(rs[0])
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(out, "stored")
		if err != nil {
			t.Fatalf("%s: stored form %q: %v", opts, out, err)
		}
		if got := again[0].(*Role).Spec.Options; got.PortForwarding != want.PortForwarding || got.ForwardAgent != want.ForwardAgent {
			t.Errorf("%s: round trip gave %+v, want %+v\n%s", opts, got, want, out)
		}
	}
}
