package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tetherproject/tether/bundles"
	"github.com/tetherproject/tether/internal/testenv"
)

// run executes tetherctl in-process with args and returns its output.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := rootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// seedCase is one of the trusted-clusters guide's decisions on the leaf.
type seedCase struct {
	input  string
	allow  bool
	roles  []string
	reason string
}

var seedCases = []seedCase{
	{"myuser-access-visitor.json", true, []string{"visitor"}, `role "visitor" allows login "visitor" on node "ip-172-3-2-205"`},
	{"alice-stage.json", true, []string{"stage-access"}, `role "stage-access" allows login "visitor" on node "mongodb-stage"`},
	{"alice-prod.json", false, []string{"stage-access"},
		`user alice@rootcluster.example.com is not authorized to login as visitor@leafcluster.example.com: no role's node_labels match node "mongodb-prod"`},
}

// TestPolicyEvalSeedGuide: `tetherctl policy eval` answers the guide's questions offline,
// with the mapped roles and readable reasons.
func TestPolicyEvalSeedGuide(t *testing.T) {
	seed := filepath.Join(testenv.Root(t), "examples", "seed-guide")
	for _, c := range seedCases {
		t.Run(c.input, func(t *testing.T) {
			out, err := run(t, "policy", "eval", "-r", filepath.Join(seed, "leaf.yaml"), "-i", filepath.Join(seed, "inputs", c.input))
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			var d decisionJSON
			if err := json.Unmarshal([]byte(out), &d); err != nil {
				t.Fatalf("output is not a decision: %v\n%s", err, out)
			}
			if d.Allow != c.allow || !reflect.DeepEqual(d.Roles, c.roles) {
				t.Fatalf("got allow=%v roles=%v, want %v %v\n%s", d.Allow, d.Roles, c.allow, c.roles, out)
			}
			if len(d.Reasons) == 0 || d.Reasons[0] != c.reason {
				t.Fatalf("reasons %q, want first %q", d.Reasons, c.reason)
			}
		})
	}
}

// TestBuiltBundleEvaluatesIdenticallyUnderOPA: a bundle written by `tetherctl policy build`
// gives, under the real `opa eval -b`, exactly the decision Tether makes in-process.
func TestBuiltBundleEvaluatesIdenticallyUnderOPA(t *testing.T) {
	opa := testenv.OPA(t)
	root := testenv.Root(t)
	seed := filepath.Join(root, "examples", "seed-guide")
	dir := t.TempDir()
	for _, layout := range []string{"tar", "dir"} {
		t.Run(layout, func(t *testing.T) {
			target := filepath.Join(dir, "leaf."+layout)
			args := []string{"policy", "build", "--cluster", "leafcluster.example.com", "-r", filepath.Join(seed, "leaf.yaml")}
			if layout == "tar" {
				target += ".tar.gz"
				args = append(args, "-o", target)
			} else {
				args = append(args, "--dir", target)
			}
			if out, err := run(t, args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			inputs, _ := filepath.Glob(filepath.Join(seed, "inputs", "*.json"))
			if len(inputs) < 3 {
				t.Fatalf("seed inputs missing: %v", inputs)
			}
			for _, in := range inputs {
				tether, err := run(t, "policy", "eval", "-b", target, "-i", in)
				if err != nil {
					t.Fatalf("%v\n%s", err, tether)
				}
				var td decisionJSON
				if err := json.Unmarshal([]byte(tether), &td); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(opa, "eval", "-b", target, "-i", in, "--format=json", "data.tether.authz.decision")
				raw, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("opa eval: %v\n%s", err, raw)
				}
				var res struct {
					Result []struct {
						Expressions []struct {
							Value decisionJSON `json:"value"`
						} `json:"expressions"`
					} `json:"result"`
				}
				if err := json.Unmarshal(raw, &res); err != nil || len(res.Result) != 1 {
					t.Fatalf("opa output: %v\n%s", err, raw)
				}
				od := res.Result[0].Expressions[0].Value
				od.Revision = td.Revision // opa's result carries no revision
				if !reflect.DeepEqual(td, od) {
					t.Fatalf("%s: tether and opa disagree\ntether: %+v\nopa:    %+v", filepath.Base(in), td, od)
				}
			}
		})
	}
}

func TestPolicyExplainSeedGuide(t *testing.T) {
	seed := filepath.Join(testenv.Root(t), "examples", "seed-guide")
	out, err := run(t, "policy", "explain", "-r", filepath.Join(seed, "leaf.yaml"), "-i", filepath.Join(seed, "inputs", "alice-prod.json"))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"DENIED: ssh.session as visitor@mongodb-prod",
		`"full-access" → ["stage-access"]`,
		`no role's node_labels match node "mongodb-prod"`,
		"signed by a certificate authority this cluster trusts",
		"Engine (as tetherd decides: identity planned, fast planned, access planned, nodes planned)",
		"✓ the same decision, roles, reasons and expiry as data.tether.authz.decision",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
}

func TestPolicyTestRunsLibraryAndOperatorTests(t *testing.T) {
	mods := t.TempDir()
	os.WriteFile(filepath.Join(mods, "fridays.rego"), []byte(`package tether.custom

deny contains "no prod logins on fridays" if {
	input.node.labels.env == "prod"
	time.weekday(time.parse_rfc3339_ns(input.now)) == "Friday"
}
`), 0o644)
	os.WriteFile(filepath.Join(mods, "fridays_test.rego"), []byte(`package tether.custom_test

import data.tether.custom

test_friday_prod_denied if {
	"no prod logins on fridays" in custom.deny with input as {"now": "2026-11-27T10:00:00Z", "node": {"labels": {"env": "prod"}}}
}

test_thursday_prod_allowed if {
	count(custom.deny) == 0 with input as {"now": "2026-11-26T10:00:00Z", "node": {"labels": {"env": "prod"}}}
}
`), 0o644)
	out, err := run(t, "policy", "test", "--modules", mods)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "PASS:") {
		t.Fatalf("no summary: %s", out)
	}
	// A failing operator test fails the command.
	os.WriteFile(filepath.Join(mods, "broken_test.rego"), []byte("package tether.custom_test\n\ntest_wrong if {\n\tfalse\n}\n"), 0o644)
	if out, err := run(t, "policy", "test", "--modules", mods); err == nil {
		t.Fatalf("a failing operator test must fail the command:\n%s", out)
	}
}

func TestPolicyBadInput(t *testing.T) {
	root := testenv.Root(t)
	seed := filepath.Join(root, "examples", "seed-guide")
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("kind: role\nversion: v5\nmetadata:\n  name: x\nspec:\n  allwo:\n    logins: [a]\n"), 0o644)
	outsider := filepath.Join(dir, "mods")
	os.MkdirAll(outsider, 0o755)
	os.WriteFile(filepath.Join(outsider, "evil.rego"), []byte("package tether.access\n\nallowed := true\n"), 0o644)
	badInput := filepath.Join(dir, "in.json")
	os.WriteFile(badInput, []byte(`{"action": "ssh.session", "now": "yesterday"}`), 0o644)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown field", []string{"policy", "eval", "--cluster", "c", "-r", bad, "-i", filepath.Join(seed, "inputs", "alice-prod.json")}, `unknown field "allwo"`},
		{"operator module outside tether.custom", []string{"policy", "build", "--cluster", "c", "-r", filepath.Join(seed, "leaf.yaml"), "--modules", outsider, "-o", filepath.Join(dir, "b.tar.gz")}, "outside tether.custom"},
		{"bad input time", []string{"policy", "eval", "-r", filepath.Join(seed, "leaf.yaml"), "-i", badInput}, "not an RFC 3339 time"},
		{"missing cluster", []string{"policy", "build", "-r", filepath.Join(seed, "leaf.yaml"), "-o", filepath.Join(dir, "b.tar.gz")}, "--cluster is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q\n%s", err, tt.want, out)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "b.tar.gz")); err == nil {
		t.Fatal("a failed build left a bundle behind")
	}
}

// TestPolicyEvalVerifiesBundleSignature: with --verification-key, eval and explain refuse
// an unsigned bundle, a tampered one, one signed with another key and one whose scope
// differs, and accept the bundle `policy build --signing-key` wrote.
func TestPolicyEvalVerifiesBundleSignature(t *testing.T) {
	seed := filepath.Join(testenv.Root(t), "examples", "seed-guide")
	input := filepath.Join(seed, "inputs", "alice-stage.json")
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	other := filepath.Join(dir, "other")
	os.WriteFile(secret, []byte("tether test secret"), 0o600)
	os.WriteFile(other, []byte("another secret"), 0o600)
	build := func(name string, extra ...string) string {
		t.Helper()
		target := filepath.Join(dir, name)
		args := append([]string{"policy", "build", "--cluster", "leafcluster.example.com", "-r", filepath.Join(seed, "leaf.yaml"), "-o", target}, extra...)
		if out, err := run(t, args...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return target
	}
	signed := build("signed.tar.gz", "--signing-key", secret, "--signing-alg", "HS256")
	scoped := build("scoped.tar.gz", "--signing-key", secret, "--signing-alg", "HS256", "--scope", "leaf-east")
	unsigned := build("unsigned.tar.gz")
	// Tampered: the signed bundle with a label value changed after signing.
	tampered := filepath.Join(dir, "tampered.tar.gz")
	{
		raw, err := os.ReadFile(signed)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		var out bytes.Buffer
		zw := gzip.NewWriter(&out)
		tw := tar.NewWriter(zw)
		changed := false
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			body, _ := io.ReadAll(tr)
			if strings.HasSuffix(h.Name, "data.json") {
				orig := body
				body = bytes.Replace(body, []byte(`"stage"`), []byte(`"prod"`), 1)
				changed = !bytes.Equal(orig, body)
			}
			h.Size = int64(len(body))
			tw.WriteHeader(h)
			tw.Write(body)
		}
		tw.Close()
		zw.Close()
		if !changed {
			t.Fatal("tampering changed nothing in data.json")
		}
		os.WriteFile(tampered, out.Bytes(), 0o644)
	}
	hs := []string{"--signing-alg", "HS256"}
	for _, cmd := range []string{"eval", "explain"} {
		for _, tc := range []struct {
			name   string
			bundle string
			args   []string
			want   string // "" for success
		}{
			{"unsigned_refused", unsigned, append([]string{"--verification-key", secret}, hs...), "not signed"},
			{"tampered_refused", tampered, append([]string{"--verification-key", secret}, hs...), "signature is invalid"},
			{"other_key_refused", signed, append([]string{"--verification-key", other}, hs...), "signature is invalid"},
			{"scope_mismatch_refused", scoped, append([]string{"--verification-key", secret, "--scope", "leaf-west"}, hs...), "signature is invalid"},
			{"scoped_signature_needs_scope", scoped, append([]string{"--verification-key", secret}, hs...), "signature is invalid"},
			{"scope_without_key_refused", signed, []string{"--scope", "leaf-east"}, "--scope needs --verification-key"},
			{"signed_accepted", signed, append([]string{"--verification-key", secret}, hs...), ""},
			{"scoped_accepted", scoped, append([]string{"--verification-key", secret, "--scope", "leaf-east"}, hs...), ""},
		} {
			t.Run(cmd+"/"+tc.name, func(t *testing.T) {
				args := append([]string{"policy", cmd, "-b", tc.bundle, "-i", input}, tc.args...)
				out, err := run(t, args...)
				if tc.want == "" {
					if err != nil {
						t.Fatalf("%v\n%s", err, out)
					}
					if !strings.Contains(out, "stage-access") {
						t.Fatalf("no decision in output:\n%s", out)
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want %q\n%s", err, tc.want, out)
				}
			})
		}
	}
	if out, err := run(t, "policy", "eval", "-r", filepath.Join(seed, "leaf.yaml"), "-i", input, "--verification-key", secret); err == nil {
		t.Fatalf("--verification-key without --bundle accepted:\n%s", out)
	}
}

// TestPolicyEvalBrokenBundleIsAnError: a bundle whose decision lacks allow, or has the
// wrong types, makes `policy eval -b` fail with an error rather than crash.
func TestPolicyEvalBrokenBundleIsAnError(t *testing.T) {
	seed := filepath.Join(testenv.Root(t), "examples", "seed-guide")
	input := filepath.Join(seed, "inputs", "alice-stage.json")
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tar.gz")
	if out, err := run(t, "policy", "build", "--cluster", "leafcluster.example.com", "-r", filepath.Join(seed, "leaf.yaml"), "-o", good); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b, err := bundles.Read(good)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, authz, want string }{
		{"no_allow", "package tether.authz\n\ndecision := {\"roles\": [], \"reasons\": []}\n", "no allow"},
		{"allow_not_boolean", "package tether.authz\n\ndecision := {\"allow\": \"yes\", \"roles\": [], \"reasons\": []}\n", "want a boolean"},
		{"roles_not_array", "package tether.authz\n\ndecision := {\"allow\": true, \"roles\": {}, \"reasons\": []}\n", "roles is not an array"},
		{"decision_a_string", "package tether.authz\n\ndecision := \"allow\"\n", "want an object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mods []bundles.Module
			for _, m := range b.Modules {
				if m.Path == "lib/authz.rego" {
					m.Raw = []byte(tc.authz)
				}
				mods = append(mods, m)
			}
			broken, err := bundles.Build(bundles.BuildOptions{Data: b.Data, Roots: b.Roots, Modules: mods})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "broken")
			if err := bundles.WriteDir(path, broken); err != nil {
				t.Fatal(err)
			}
			out, err := run(t, "policy", "eval", "-b", path, "-i", input)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q\n%s", err, tc.want, out)
			}
		})
	}
}
