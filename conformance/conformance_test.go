package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/resource"
)

// The vector files DESIGN §3a's rules are spread over, one per concern.
var wantFiles = []string{
	"certs", "clock_skew", "cluster_labels", "labels", "locks", "logins", "operator", "rolemap", "route_to_cluster", "seed_guide",
	"template_rules", "templates", "trait_literals",
}

func loadFiles(t *testing.T) []*File {
	t.Helper()
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestVectors runs every vector through the Go engine, on both the staged and cached path
// (Decide) and the public query in one evaluation (DecidePlain).
func TestVectors(t *testing.T) {
	for _, f := range loadFiles(t) {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			b, err := f.Bundle()
			if err != nil {
				t.Fatal(err)
			}
			e, err := policy.New(policy.Options{})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := e.Load(ctx, b); err != nil {
				t.Fatal(err)
			}
			for i := range f.Vectors {
				v := &f.Vectors[i]
				t.Run(v.Name, func(t *testing.T) {
					if v.KnownBug != "" {
						t.Skipf("known bug: %s", v.KnownBug)
					}
					in := v.ParsedInput()
					plain, err := e.DecidePlain(ctx, in)
					if err != nil {
						t.Fatalf("DecidePlain: %v", err)
					}
					staged, err := e.Decide(ctx, in)
					if err == nil {
						// An allow's reasons are made when asked (the decision log asks).
						staged, err = staged.Explained(ctx)
					}
					if err != nil {
						t.Fatalf("Decide: %v", err)
					}
					for _, p := range v.Want.check(plain) {
						t.Errorf("DecidePlain: %s", p)
					}
					for _, p := range v.Want.check(staged) {
						t.Errorf("Decide: %s", p)
					}
					staged.Cached = false
					if !reflect.DeepEqual(plain, staged) {
						t.Errorf("Decide and DecidePlain differ:\nplain:  %+v\nstaged: %+v", plain, staged)
					}
					if t.Failed() {
						js, _ := in.JSON()
						bs, _ := json.Marshal(js)
						t.Logf("input: %s\ndecision: allow=%t roles=%q expires_at=%v\nreasons:\n  %s",
							bs, plain.Allow, plain.Roles, plain.ExpiresAt, strings.Join(plain.Reasons, "\n  "))
					}
				})
			}
		})
	}
}

// check lists how d departs from w.
func (w *Want) check(d policy.Decision) []string {
	var problems []string
	if d.Allow != *w.Allow {
		problems = append(problems, fmt.Sprintf("allow = %t, want %t (reasons %q)", d.Allow, *w.Allow, d.Reasons))
	}
	if w.Roles != nil && !slices.Equal(nonNil(d.Roles), nonNil(*w.Roles)) {
		problems = append(problems, fmt.Sprintf("roles = %q, want %q", d.Roles, *w.Roles))
	}
	for _, s := range w.ReasonsContain {
		if !slices.ContainsFunc(d.Reasons, func(r string) bool { return strings.Contains(r, s) }) {
			problems = append(problems, fmt.Sprintf("no reason contains %q; reasons %q", s, d.Reasons))
		}
	}
	for _, s := range w.ReasonsPrefix {
		if !slices.ContainsFunc(d.Reasons, func(r string) bool { return strings.HasPrefix(r, s) }) {
			problems = append(problems, fmt.Sprintf("no reason starts with %q; reasons %q", s, d.Reasons))
		}
	}
	switch w.ExpiresAt {
	case "":
	case ExpiresNone:
		if !d.ExpiresAt.IsZero() {
			problems = append(problems, fmt.Sprintf("expires_at = %s, want none", d.ExpiresAt.Format(time.RFC3339Nano)))
		}
	default:
		want, _ := time.Parse(time.RFC3339Nano, w.ExpiresAt)
		if !d.ExpiresAt.Equal(want) {
			problems = append(problems, fmt.Sprintf("expires_at = %s, want %s", d.ExpiresAt.Format(time.RFC3339Nano), w.ExpiresAt))
		}
	}
	return problems
}

// TestRejectedResources: the resources each file lists under rejected do not load, with
// the error the rule gives.
func TestRejectedResources(t *testing.T) {
	t.Parallel()
	for _, f := range loadFiles(t) {
		for _, r := range f.Rejected {
			t.Run(f.Name+"/"+r.Name, func(t *testing.T) {
				t.Parallel()
				rs, err := resource.Parse([]byte(r.Resources), f.Name+"#rejected/"+r.Name)
				if err == nil {
					t.Fatalf("loaded %d resources, want an error containing %q", len(rs), r.Error)
				}
				if !strings.Contains(err.Error(), r.Error) {
					t.Fatalf("error %q, want it to contain %q", err, r.Error)
				}
			})
		}
	}
}

// TestVectorFiles checks the set of files and the size of the suite.
func TestVectorFiles(t *testing.T) {
	files := loadFiles(t)
	var names []string
	total := 0
	for _, f := range files {
		names = append(names, f.Name)
		total += len(f.Vectors)
		t.Logf("%-15s %3d vectors", f.Name, len(f.Vectors))
	}
	if !slices.Equal(names, wantFiles) {
		t.Errorf("vector files %q, want %q", names, wantFiles)
	}
	if total < 60 {
		t.Errorf("%d vectors in all, want at least 60", total)
	}
}

// TestVectorFingerprints checks that every signing CA fingerprint an input names is the
// SHA256 fingerprint of a CA key of its file's resources, or of one of its foreign_keys
// (keys the cluster deliberately does not know).
func TestVectorFingerprints(t *testing.T) {
	for _, f := range loadFiles(t) {
		t.Run(f.Name, func(t *testing.T) {
			rs, err := f.ParseResources()
			if err != nil {
				t.Fatal(err)
			}
			known := map[string]string{} // fingerprint -> where
			for _, r := range rs {
				ca, ok := r.(*resource.CertAuthority)
				if !ok {
					continue
				}
				for _, k := range slices.Concat(ca.Spec.ActiveKeys.SSH, ca.Spec.AdditionalTrustedKeys.SSH) {
					known[fingerprint(t, k.PublicKey)] = fmt.Sprintf("cert_authority %s/%s", ca.Metadata.Name, ca.Spec.Type)
				}
			}
			for i, k := range f.ForeignKeys {
				fp := fingerprint(t, k)
				if where, dup := known[fp]; dup {
					t.Errorf("foreign_keys[%d] is a key of %s; foreign keys must be unknown to the cluster", i, where)
				}
				known[fp] = "foreign_keys"
			}
			for _, v := range f.Vectors {
				fp := v.ParsedInput().Cert.SigningCA.Fingerprint
				if fp == "" {
					continue
				}
				if _, ok := known[fp]; !ok {
					t.Errorf("vector %s: signing_ca.fingerprint %s is not the fingerprint of any CA key or foreign key of the file", v.Name, fp)
				}
			}
		})
	}
}

func fingerprint(t *testing.T, authorized string) string {
	t.Helper()
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorized))
	if err != nil {
		t.Fatalf("parsing %q: %v", authorized, err)
	}
	return ssh.FingerprintSHA256(pub)
}

// TestSeedGuideMatchesExamples keeps the seed guide's vectors on the same resources and
// inputs as examples/seed-guide, which the documentation runs by hand.
func TestSeedGuideMatchesExamples(t *testing.T) {
	root := testenv.Root(t)
	var seed *File
	for _, f := range loadFiles(t) {
		if f.Name == "seed_guide" {
			seed = f
		}
	}
	if seed == nil {
		t.Fatal("no seed_guide vectors")
	}
	got, err := seed.ParseResources()
	if err != nil {
		t.Fatal(err)
	}
	want, err := resource.ParseFile(filepath.Join(root, "examples", "seed-guide", "leaf.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("vectors/seed_guide.yaml resources differ from examples/seed-guide/leaf.yaml; keep them in step")
	}
	inputs, err := filepath.Glob(filepath.Join(root, "examples", "seed-guide", "inputs", "*.json"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no example inputs (%v)", err)
	}
	for _, p := range inputs {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		in, err := policy.ParseInputJSON(raw)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		found := slices.ContainsFunc(seed.Vectors, func(v Vector) bool {
			return reflect.DeepEqual(v.ParsedInput().Value(), in.Value())
		})
		if !found {
			t.Errorf("%s is not the input of any seed_guide vector", filepath.Base(p))
		}
	}
}

// TestParseFileIsStrict checks that mistakes in a vector file are errors, not silently
// ignored fields.
func TestParseFileIsStrict(t *testing.T) {
	const base = `cluster: leaf.example.com
resources: |
  kind: role
  version: v5
  metadata: {name: visitor}
  spec: {allow: {logins: [visitor]}}
vectors:
  - name: one
    input: {action: node.list, cluster: leaf.example.com, now: "2026-11-23T19:45:35Z"}
    want: {allow: false}
`
	if _, err := ParseFile("ok", []byte(base)); err != nil {
		t.Fatalf("the base file must parse: %v", err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"unknown top-level field", "cluster:", "clustr: x\ncluster:", "clustr"},
		{"unknown want field", "want: {allow: false}", "want: {allow: false, reason: x}", "reason"},
		{"missing allow", "want: {allow: false}", "want: {roles: []}", "want.allow is required"},
		{"unknown input field", "action: node.list,", "action: node.list, actor: x,", "actor"},
		{"bad input time", `now: "2026-11-23T19:45:35Z"`, `now: "yesterday"`, "RFC 3339"},
		{"bad vector name", "name: one", "name: One Two", "snake_case"},
		{"bad expiry", "want: {allow: false}", "want: {allow: false, expires_at: soon}", "expires_at"},
		{"bad resources", "logins: [visitor]", "logins: [visitor], lgins: [x]", "lgins"},
		{"no cluster", "cluster: leaf.example.com\n", "", "cluster is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(base, tc.from, tc.to, 1)
			if src == base {
				t.Fatalf("replacement %q not found", tc.from)
			}
			_, err := ParseFile("bad", []byte(src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseFile error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// opaResult is one entry of `opa test --format=json`.
type opaResult struct {
	Package string `json:"package"`
	Name    string `json:"name"`
	Fail    bool   `json:"fail"`
	Skip    bool   `json:"skip"`
	Error   any    `json:"error"`
	Output  string `json:"output"`
}

// TestEmittedRegoPassesWithRealOPA emits every vector as a Rego test and runs them with
// the real opa binary next to the library's own tests.
func TestEmittedRegoPassesWithRealOPA(t *testing.T) {
	root := testenv.Root(t)
	opa := testenv.OPA(t)
	dir := t.TempDir()
	if err := EmitRego(dir); err != nil {
		t.Fatal(err)
	}
	files := loadFiles(t)
	want := map[string]bool{} // data.tether.conformance.<file>.test_<name> -> known bug
	for _, f := range files {
		for _, v := range f.Vectors {
			want[fmt.Sprintf("data.%s.%s.test_%s", EmittedPackagePrefix, f.Name, v.Name)] = v.KnownBug != ""
		}
	}

	cmd := exec.Command(opa, "test", "--format=json", filepath.Join(root, "rego"), dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var exit *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exit) {
		t.Fatalf("running %s: %v", opa, runErr)
	}
	var results []opaResult
	if err := json.Unmarshal(stdout.Bytes(), &results); err != nil {
		t.Fatalf("opa test did not report JSON (%v; exit %v)\nstderr: %s\nstdout: %s", err, runErr, stderr.String(), stdout.String())
	}

	seen := map[string]bool{}
	passed, skipped := 0, 0
	for _, r := range results {
		name := r.Package + "." + strings.TrimPrefix(r.Name, "todo_")
		if !strings.HasPrefix(r.Package, "data."+EmittedPackagePrefix+".") {
			if r.Fail || r.Error != nil {
				t.Logf("note: library test %s.%s does not pass (not a conformance vector)", r.Package, r.Name)
			}
			continue
		}
		knownBug, ok := want[name]
		switch {
		case !ok:
			t.Errorf("opa ran %s.%s, which is not a vector", r.Package, r.Name)
			continue
		case seen[name]:
			t.Errorf("opa ran %s twice", name)
		}
		seen[name] = true
		switch {
		case r.Skip && knownBug:
			skipped++
		case r.Skip:
			t.Errorf("%s was skipped but has no known_bug", name)
		case r.Fail || r.Error != nil:
			t.Errorf("%s: fail=%t error=%v\n%s", name, r.Fail, r.Error, r.Output)
		default:
			passed++
		}
	}
	if len(seen) != len(want) {
		for n := range want {
			if !seen[n] {
				t.Errorf("opa did not run %s", n)
			}
		}
	}
	if passed+skipped != len(want) {
		t.Errorf("opa test: %d emitted tests passed and %d known bugs were skipped, want %d vectors in all", passed, skipped, len(want))
		return
	}
	t.Logf("opa test: %d emitted tests passed, %d known bugs skipped, %d vectors", passed, skipped, len(want))
}
