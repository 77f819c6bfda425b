package bundles_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tetherproject/tether/bundles"
)

func opBuild(mods ...string) (*bundles.Bundle, error) {
	var ms []bundles.Module
	for i, src := range mods {
		ms = append(ms, bundles.Module{Path: "m" + string(rune('a'+i)) + ".rego", Raw: []byte(src)})
	}
	return bundles.ForCluster(bundles.ClusterOptions{
		ShapeOptions:    bundles.ShapeOptions{ClusterName: "leaf.example.com"},
		OperatorModules: ms,
	})
}

// TestOperatorRulesRefused: what an operator module may not do is refused when the
// bundle is built, with the file, the line and what to use instead.
func TestOperatorRulesRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mods []string
		want []string // substrings of the error
	}{
		// A grant cached in the identity must not read the clock: it would keep allowing.
		{"grant_calls_time_now_ns", []string{"package tether.custom\n\ngrants contains \"admin\" if time.now_ns() < 1\n"},
			[]string{"custom/ma.rego:3", "time.now_ns is not allowed", "input.now"}},
		{"deny_calls_http_send", []string{"package tether.custom\n\ndeny contains \"x\" if http.send({\"method\": \"get\", \"url\": \"http://127.0.0.1:1/\"}).status_code == 200\n"},
			[]string{"custom/ma.rego:3", "http.send is not allowed", "in the bundle"}},
		{"deny_calls_rand_intn", []string{"package tether.custom\n\ndeny contains \"x\" if rand.intn(\"k\", 2) == 0\n"},
			[]string{"rand.intn is not allowed"}},
		{"deny_calls_uuid_rfc4122", []string{"package tether.custom\n\ndeny contains uuid.rfc4122(\"k\") if input.login == \"x\"\n"},
			[]string{"uuid.rfc4122 is not allowed"}},
		{"deny_calls_net_lookup", []string{"package tether.custom\n\ndeny contains \"x\" if count(net.lookup_ip_addr(\"example.com\")) > 0\n"},
			[]string{"net.lookup_ip_addr is not allowed"}},
		{"deny_calls_opa_runtime", []string{"package tether.custom\n\ndeny contains \"x\" if opa.runtime().env.STAGE == \"1\"\n"},
			[]string{"opa.runtime is not allowed"}},
		{"deny_calls_jwt_decode_verify", []string{"package tether.custom\n\ndeny contains \"x\" if {\n\t[ok, _, _] := io.jwt.decode_verify(input.cert.username, {\"secret\": \"s\"})\n\tnot ok\n}\n"},
			[]string{"custom/ma.rego:4", "io.jwt.decode_verify is not allowed"}},
		{"clock_behind_a_with_replacement", []string{"package tether.custom\n\npick(s, n) := 0\n\ndeny contains \"x\" if {\n\tn := pick(\"s\", 10) with pick as rand.intn\n\tn == 1\n}\n"},
			[]string{"custom/ma.rego:6", "rand.intn is not allowed"}},
		{"clock_in_a_function_of_another_module", []string{
			"package tether.custom\n\nimport data.tether.custom.clock\n\ndeny contains \"late\" if clock.hour > 17\n",
			"package tether.custom.clock\n\nhour := (time.now_ns() / 3600000000000) % 24\n"},
			[]string{"custom/mb.rego:3", "time.now_ns is not allowed"}},
		// Grants see only cert and cluster; anything else of input is refused.
		{"grant_reads_input_now", []string{"package tether.custom\n\ngrants contains \"admin\" if input.now < \"2027\"\n"},
			[]string{"custom/ma.rego:3", "grants may read only input.cert and input.cluster", "input.now"}},
		{"grant_reads_input_by_variable_key", []string{"package tether.custom\n\ngrants contains \"admin\" if {\n\tsome k\n\tinput[k] == \"x\"\n}\n"},
			[]string{"custom/ma.rego:5", "grants may read only"}},
		{"grant_reads_object_get_input", []string{"package tether.custom\n\ngrants contains \"admin\" if object.get(input, \"now\", \"\") < \"2027\"\n"},
			[]string{"custom/ma.rego:3", "grants may read only"}},
		{"grant_iterates_input", []string{"package tether.custom\n\ngrants contains \"admin\" if {\n\tsome k, v in input\n\tk == \"now\"\n\tv < \"2027\"\n}\n"},
			[]string{"custom/ma.rego:4", "grants may read only"}},
		{"grant_passes_input_to_a_function", []string{"package tether.custom\n\nearly(i) if i.now < \"2027\"\n\ngrants contains \"admin\" if early(input)\n"},
			[]string{"custom/ma.rego:5", "grants may read only"}},
		{"grant_reads_login_through_a_helper_rule", []string{
			"package tether.custom\n\nimport data.tether.custom.h\n\ngrants contains \"admin\" if h.breakglass\n",
			"package tether.custom.h\n\nbreakglass if input.login == \"breakglass\"\n"},
			[]string{"custom/mb.rego:3", "grants may read only", "input.login"}},
		// Rules the engine would never read are refused, not ignored.
		{"subpackage_deny_not_a_set", []string{"package tether.custom.teama\n\ndeny := true\n"},
			[]string{"custom/ma.rego:3", "data.tether.custom.teama.deny must be a partial set rule"}},
		{"set_named_by_a_variable", []string{"package tether.custom.teama\n\nsets[k] contains \"closed\" if some k in [\"deny\"]\n"},
			[]string{"custom/ma.rego:3", "names its set with a variable"}},
		{"subpackage_grants_function", []string{"package tether.custom.teama\n\ngrants(x) := {x}\n"},
			[]string{"custom/ma.rego:3", "must be a partial set rule"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := opBuild(tc.mods...)
			if err == nil {
				t.Fatal("ForCluster accepted the modules")
			}
			if !errors.Is(err, bundles.ErrOperatorPolicy) {
				t.Fatalf("error %v is not ErrOperatorPolicy", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestOperatorTimeDependence: a deny that may read input.now by any path makes the bundle
// time-dependent; one that reads only literal paths elsewhere does not.
func TestOperatorTimeDependence(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mods []string
		want bool
	}{
		{"deny_reads_input_now", []string{"package tether.custom\n\ndeny contains \"late\" if input.now > \"2026-11-23T20:00:00Z\"\n"}, true},
		{"deny_reads_object_get_input_now", []string{"package tether.custom\n\ndeny contains \"late\" if object.get(input, \"now\", \"\") > \"2026-11-23T20:00:00Z\"\n"}, true},
		{"deny_iterates_input", []string{"package tether.custom\n\ndeny contains \"late\" if {\n\tsome k, v in input\n\tk == \"now\"\n\tv > \"2026\"\n}\n"}, true},
		{"deny_reads_input_by_variable_key", []string{"package tether.custom\n\ndeny contains \"late\" if {\n\tk := concat(\"\", [\"n\", \"ow\"])\n\tinput[k] > \"2026\"\n}\n"}, true},
		{"deny_passes_input_to_a_function", []string{"package tether.custom\n\nlate(i) if i.now > \"2026\"\n\ndeny contains \"late\" if late(input)\n"}, true},
		{"deny_walks_input", []string{"package tether.custom\n\ndeny contains \"late\" if {\n\twalk(input, [p, v])\n\tp == [\"now\"]\n\tv > \"2026\"\n}\n"}, true},
		{"deny_marshals_input", []string{"package tether.custom\n\ndeny contains \"late\" if contains(json.marshal(input), \"2027\")\n"}, true},
		{"deny_reads_now_in_a_helper_subpackage", []string{
			"package tether.custom\n\nimport data.tether.custom.clock\n\ndeny contains \"late\" if clock.late\n",
			"package tether.custom.clock\n\nlate if input.now > \"2026\"\n"}, true},
		{"deny_in_a_subpackage_reads_now", []string{"package tether.custom.teama\n\ndeny contains \"late\" if input.now > \"2026\"\n"}, true},
		{"deny_reads_literal_paths", []string{"package tether.custom\n\ndeny contains \"no root\" if {\n\tinput.login == \"root\"\n\tinput.node.labels.env == \"prod\"\n}\n"}, false},
		{"grants_read_cert_and_cluster", []string{"package tether.custom\n\ngrants contains \"auditor\" if {\n\tinput.cert.username == \"bob\"\n\tinput.cluster == \"leaf.example.com\"\n}\n"}, false},
		{"no_operator_modules", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := opBuild(tc.mods...)
			if err != nil {
				t.Fatalf("ForCluster: %v", err)
			}
			rep, err := bundles.CheckOperator(b)
			if err != nil {
				t.Fatalf("CheckOperator: %v", err)
			}
			if rep.TimeDependent != tc.want {
				t.Fatalf("TimeDependent = %v, want %v (reads %q)", rep.TimeDependent, tc.want, rep.TimeReads)
			}
			if tc.want && (len(rep.TimeReads) == 0 || !strings.Contains(rep.TimeReads[0], "custom/")) {
				t.Errorf("TimeReads %q name no operator file", rep.TimeReads)
			}
		})
	}
}

// TestSubpackageRulesCollected: deny and grants rules below package tether.custom are
// added to the sets the engine reads, so none is ignored.
func TestSubpackageRulesCollected(t *testing.T) {
	t.Parallel()
	b, err := opBuild(
		"package tether.custom.teama\n\ndeny contains \"team A denies everything\" if true\n",
		"package tether.custom\n\nteamb.grants contains \"auditor\" if input.cert.username == \"bob\"\n",
	)
	if err != nil {
		t.Fatalf("ForCluster: %v", err)
	}
	i := slices.IndexFunc(b.Modules, func(m bundles.Module) bool { return m.Path == bundles.SubpackagePath })
	if i < 0 {
		t.Fatalf("no %s in the bundle", bundles.SubpackagePath)
	}
	src := string(b.Modules[i].Raw)
	for _, w := range []string{"deny contains x if some x in data.tether.custom.teama.deny", "grants contains x if some x in data.tether.custom.teamb.grants"} {
		if !strings.Contains(src, w) {
			t.Errorf("generated module lacks %q:\n%s", w, src)
		}
	}
}

// TestForbiddenBuiltinsCoverOPAsNondeterministic: every builtin OPA marks
// non-deterministic is refused, plus the clock readers it does not mark.
func TestForbiddenBuiltinsCoverOPAsNondeterministic(t *testing.T) {
	t.Parallel()
	got := bundles.ForbiddenBuiltins()
	for _, name := range []string{"time.now_ns", "http.send", "rand.intn", "uuid.rfc4122", "net.lookup_ip_addr", "opa.runtime",
		"io.jwt.encode_sign", "io.jwt.decode_verify", "crypto.x509.parse_and_verify_certificates"} {
		if !slices.Contains(got, name) {
			t.Errorf("%s is not refused", name)
		}
	}
	for _, name := range []string{"time.parse_rfc3339_ns", "regex.match", "sprintf", "object.get"} {
		if slices.Contains(got, name) {
			t.Errorf("%s is refused", name)
		}
	}
}

// TestOperatorDenyIgnoresNodeName: a node list may ask the operator denies once per
// distinct (login, labels) only when no deny can read the node's name, by any path.
func TestOperatorDenyIgnoresNodeName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mods []string
		want bool
	}{
		{"deny_reads_node_name", []string{"package tether.custom\n\ndeny contains \"db\" if startswith(input.node.name, \"db-\")\n"}, false},
		{"deny_reads_the_node", []string{"package tether.custom\n\ndeny contains \"db\" if input.node == {}\n"}, false},
		{"deny_reads_node_by_variable_key", []string{"package tether.custom\n\ndeny contains \"db\" if {\n\tk := \"name\"\n\tinput.node[k] == \"db\"\n}\n"}, false},
		{"deny_passes_input_to_a_function", []string{"package tether.custom\n\nbad(i) if i.node.name == \"db\"\n\ndeny contains \"db\" if bad(input)\n"}, false},
		{"deny_in_a_subpackage_reads_node_name", []string{"package tether.custom.teama\n\ndeny contains \"db\" if input.node.name == \"db\"\n"}, false},
		{"deny_reads_labels_and_login", []string{"package tether.custom\n\ndeny contains \"no root\" if {\n\tinput.login == \"root\"\n\tinput.node.labels.env == \"prod\"\n}\n"}, true},
		{"no_operator_modules", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := opBuild(tc.mods...)
			if err != nil {
				t.Fatalf("ForCluster: %v", err)
			}
			rep, err := bundles.CheckOperator(b)
			if err != nil {
				t.Fatalf("CheckOperator: %v", err)
			}
			if rep.DenyIgnoresNodeName != tc.want {
				t.Fatalf("DenyIgnoresNodeName = %v, want %v", rep.DenyIgnoresNodeName, tc.want)
			}
		})
	}
}
