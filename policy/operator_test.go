package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetherproject/tether/bundles"
	"github.com/tetherproject/tether/resource"
)

// cutoff is the instant the time-reading operator modules below start denying.
var cutoff = time.Date(2026, 11, 23, 20, 0, 0, 0, time.UTC)

// timeReaders are every way an operator deny can read input.now that the issue lists; each
// denies from cutoff on.
var timeReaders = []struct{ name, body string }{
	{"input_now", `input.now >= "2026-11-23T20:00:00Z"`},
	{"parsed_input_now", `time.parse_rfc3339_ns(input.now) >= time.parse_rfc3339_ns("2026-11-23T20:00:00Z")`},
	{"object_get_input", `object.get(input, "now", "") >= "2026-11-23T20:00:00Z"`},
	{"some_k_v_in_input", "some k, v in input\n\tk == \"now\"\n\tv >= \"2026-11-23T20:00:00Z\""},
	{"input_variable_key", "k := concat(\"\", [\"n\", \"ow\"])\n\tinput[k] >= \"2026-11-23T20:00:00Z\""},
	{"function_called_with_input", `late(input)`},
	{"walk_input", "walk(input, [p, v])\n\tp == [\"now\"]\n\tv >= \"2026-11-23T20:00:00Z\""},
	{"json_marshal_input", `json.unmarshal(json.marshal(input)).now >= "2026-11-23T20:00:00Z"`},
	{"helper_rule_in_subpackage", `data.tether.custom.clock.late`},
}

func timeReaderModule(body string) string {
	return fmt.Sprintf(`package tether.custom

late(i) if i.now >= "2026-11-23T20:00:00Z"

deny contains "closed after 20:00" if {
	%s
}
`, body)
}

const clockHelperModule = `package tether.custom.clock

late if input.now >= "2026-11-23T20:00:00Z"
`

func operatorEngine(t testing.TB, f *fixture, modules ...string) *Engine {
	t.Helper()
	b, err := operatorBundle(f, modules...)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if err := e.Load(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return e
}

func operatorBundle(f *fixture, modules ...string) (*bundles.Bundle, error) {
	res, err := parseFixture(f)
	if err != nil {
		return nil, err
	}
	var ms []bundles.Module
	for i, m := range modules {
		ms = append(ms, bundles.Module{Path: fmt.Sprintf("op%d.rego", i), Raw: []byte(m)})
	}
	return bundles.ForCluster(bundles.ClusterOptions{
		ShapeOptions:    bundles.ShapeOptions{ClusterName: leafName, Resources: res},
		OperatorModules: ms,
	})
}

func sessionAt(f *fixture, now time.Time) *Input {
	c := f.rootCert("alice", []string{"access"}, []string{"visitor"})
	return &Input{Action: ActionSSHSession, Cluster: leafName, Now: now, Cert: c, Login: "visitor",
		Node: &Node{Name: "n1", Labels: map[string]string{"env": "stage"}}}
}

// TestOperatorDenyReadingTimeIsEvaluatedAgain: an allow cached before the cutoff is never
// served after it, whichever way the deny reads the time.
func TestOperatorDenyReadingTimeIsEvaluatedAgain(t *testing.T) {
	f := newFixture(t)
	for _, tc := range timeReaders {
		t.Run(tc.name, func(t *testing.T) {
			e := operatorEngine(t, f, timeReaderModule(tc.body), clockHelperModule)
			ctx := context.Background()
			for i, step := range []struct {
				now        time.Time
				allow      bool
				mayBeCache bool
			}{
				{cutoff.Add(-2 * time.Minute), true, false},
				{cutoff.Add(-time.Minute), true, true}, // served from the cache
				{cutoff, false, false},
				{cutoff.Add(time.Minute), false, false},
			} {
				d, err := e.Decide(ctx, sessionAt(f, step.now))
				if err != nil {
					t.Fatal(err)
				}
				if d.Allow != step.allow {
					t.Fatalf("step %d at %s: allow = %v, want %v: %+v", i, step.now.Format(time.RFC3339), d.Allow, step.allow, d)
				}
				if d.Cached && !step.mayBeCache {
					t.Fatalf("step %d: served from the cache: %+v", i, d)
				}
				if step.mayBeCache && !d.Cached {
					t.Fatalf("step %d: an allow with no operator deny in the way should come from the cache", i)
				}
				if !d.Allow && !containsSubstring(d.Reasons, "denied by operator policy: closed after 20:00") {
					t.Fatalf("step %d: reasons %q", i, d.Reasons)
				}
			}
		})
	}
}

// TestOperatorClockAndNetworkRefused: the ways of reading the clock or the world that
// cannot be keyed are refused when the bundle is built and when an engine loads it.
func TestOperatorClockAndNetworkRefused(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ name, module string }{
		{"deny_time_now_ns", "package tether.custom\n\ndeny contains \"late\" if time.now_ns() > 0\n"},
		{"grant_time_now_ns", "package tether.custom\n\ngrants contains \"role-001\" if time.now_ns() < 1800000000000000000\n"},
		{"deny_http_send", "package tether.custom\n\ndeny contains \"x\" if http.send({\"method\": \"get\", \"url\": \"http://127.0.0.1:1/\"}).status_code != 200\n"},
		{"grant_reads_input_now", "package tether.custom\n\ngrants contains \"role-001\" if input.now < \"2027\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := operatorBundle(f, tc.module)
			if !errors.Is(err, bundles.ErrOperatorPolicy) {
				t.Fatalf("ForCluster: %v, want ErrOperatorPolicy", err)
			}
			// A bundle from elsewhere (opa build, an older tetherctl) is refused on load.
			ok, err := operatorBundle(f)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := bundles.Build(bundles.BuildOptions{Data: ok.Data, Roots: ok.Roots,
				Modules: append(ok.Modules, bundles.Module{Path: "custom/x.rego", Raw: []byte(tc.module)})})
			if err != nil {
				t.Fatal(err)
			}
			e, err := New(Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if err := e.Load(context.Background(), raw); !errors.Is(err, bundles.ErrOperatorPolicy) {
				t.Fatalf("Load: %v, want ErrOperatorPolicy", err)
			}
		})
	}
}

// TestCachedEqualsFreshAcrossTimeCutoff is the differential test: generated operator
// modules that read now in different ways, requests swept across the cutoff, and the
// cached engine must say what a fresh plain evaluation says, every time.
func TestCachedEqualsFreshAcrossTimeCutoff(t *testing.T) {
	f := newFixture(t)
	r := rand.New(rand.NewPCG(7, 11))
	conds := []string{`input.login == "visitor"`, `input.node.labels.env == "stage"`, `input.action == "ssh.session"`, `input.cert.username == "alice"`}
	modules := 6
	if testing.Short() {
		modules = 3
	}
	for m := 0; m < modules; m++ {
		reader := timeReaders[r.IntN(len(timeReaders))]
		cut := cutoff.Add(time.Duration(r.IntN(120)-60) * time.Minute)
		body := strings.ReplaceAll(reader.body, "2026-11-23T20:00:00Z", cut.Format(time.RFC3339))
		before := r.IntN(2) == 0 // deny before or after the cutoff
		if before {
			body = strings.ReplaceAll(body, ">=", "<")
		}
		src := fmt.Sprintf("package tether.custom\n\nlate(i) if i.now %s %q\n\ndeny contains \"generated %d\" if {\n\t%s\n\t%s\n}\n",
			map[bool]string{true: "<", false: ">="}[before], cut.Format(time.RFC3339), m, conds[r.IntN(len(conds))], body)
		helper := strings.ReplaceAll(clockHelperModule, "2026-11-23T20:00:00Z", cut.Format(time.RFC3339))
		if before {
			helper = strings.ReplaceAll(helper, ">=", "<")
		}
		t.Run(fmt.Sprintf("%d_%s", m, reader.name), func(t *testing.T) {
			e := operatorEngine(t, f, src, helper)
			ctx := context.Background()
			flips := 0
			var last *bool
			for i := 0; i < 60; i++ {
				in := sessionAt(f, cut.Add(time.Duration(i-30)*time.Minute+time.Duration(r.IntN(50))*time.Second))
				if r.IntN(3) == 0 {
					in.Login = "root"
				}
				if r.IntN(4) == 0 {
					in.Node.Labels["env"] = "prod"
				}
				got, err := e.Decide(ctx, in)
				if err == nil {
					got, err = got.Explained(ctx)
				}
				if err != nil {
					t.Fatal(err)
				}
				want, err := e.DecidePlain(ctx, in)
				if err != nil {
					t.Fatal(err)
				}
				if got.Allow != want.Allow || !equalStrings(got.Reasons, want.Reasons) || !got.ExpiresAt.Equal(want.ExpiresAt) {
					t.Fatalf("at %s (login %s, env %s): cached engine %+v, fresh %+v\nmodule:\n%s",
						in.Now.Format(time.RFC3339), in.Login, in.Node.Labels["env"], got, want, src)
				}
				if in.Login == "visitor" && in.Node.Labels["env"] == "stage" {
					if last != nil && *last != got.Allow {
						flips++
					}
					a := got.Allow
					last = &a
				}
			}
			if e.Stats().CacheHits == 0 {
				t.Errorf("no decision came from the cache: the test proves nothing about it")
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSubpackageDenyAllDenies: a deny-all in package tether.custom.teama is not ignored.
func TestSubpackageDenyAllDenies(t *testing.T) {
	f := newFixture(t)
	e := operatorEngine(t, f, "package tether.custom.teama\n\ndeny contains \"team A closed everything\" if true\n")
	ctx := context.Background()
	in := sessionAt(f, fixtureNow)
	for _, decide := range []func(context.Context, *Input) (Decision, error){e.Decide, e.Decide, e.DecidePlain} {
		d, err := decide(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allow || !containsSubstring(d.Reasons, "denied by operator policy: team A closed everything") {
			t.Fatalf("a deny-all in tether.custom.teama allowed: %+v", d)
		}
	}
	// A grant in a sub-package counts too.
	e = operatorEngine(t, f, "package tether.custom.teamb\n\ngrants contains \"role-001\" if input.cert.username == \"alice\"\n")
	d, err := e.Decide(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if !containsSubstring(d.Roles, "role-001") {
		t.Fatalf("grant in tether.custom.teamb ignored: roles %q", d.Roles)
	}
}

// recordingLogger keeps every decision it is handed.
type recordingLogger struct {
	mu sync.Mutex
	ds []Decision
}

func (l *recordingLogger) LogDecision(_ *Input, d *Decision) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ds = append(l.ds, *d)
}

// TestBuiltinErrorDenies: a builtin or type error in any rule is a denial naming the
// module and line, logged, never cached, never an allow. Without strict builtin errors each
// of these denies would be undefined and the request allowed.
func TestBuiltinErrorDenies(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ name, module, where string }{
		{"deny_to_number", "package tether.custom\n\ndeny contains \"stage is frozen\" if to_number(input.node.labels.env) > 5\n", "op0.rego:3"},
		{"deny_type_error", "package tether.custom\n\ndeny contains \"odd\" if {\n\tn := input.node.labels.env\n\tn + 1 > 2\n}\n", "op0.rego:5"},
		{"deny_in_a_helper_function", "package tether.custom\n\nlevel(env) := to_number(env)\n\ndeny contains \"low\" if level(input.node.labels.env) < 3\n", "op0.rego:3"},
		{"grant_to_number", "package tether.custom\n\ngrants contains \"role-001\" if to_number(input.cert.username) > 1\n", "op0.rego:3"},
		{"subpackage_deny_error", "package tether.custom.teama\n\ndeny contains \"x\" if regex.match(\"(\", input.login)\n", "op0.rego:3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := operatorBundle(f, tc.module)
			if err != nil {
				t.Fatal(err)
			}
			log := &recordingLogger{}
			e, err := New(Options{Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if err := e.Load(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			in := sessionAt(f, fixtureNow)
			for i := 0; i < 2; i++ {
				d, err := e.Decide(context.Background(), in)
				if err != nil {
					t.Fatalf("Decide: %v (a policy error must be a denial, not an error)", err)
				}
				if d.Allow || d.Cached || !containsSubstring(d.Reasons, "policy error at custom/"+tc.where) {
					t.Fatalf("decision %d: %+v", i, d)
				}
			}
			pd, err := e.DecidePlain(context.Background(), in)
			if err != nil || pd.Allow || !containsSubstring(pd.Reasons, "policy error at custom/") {
				t.Fatalf("DecidePlain: %+v, %v", pd, err)
			}
			if len(log.ds) != 2 || log.ds[0].Allow {
				t.Fatalf("logged %+v, want both denials", log.ds)
			}
		})
	}
}

// TestBrokenBundleIsAnError: a bundle whose decision is missing or malformed makes the
// engine return an error, not panic and not allow.
func TestBrokenBundleIsAnError(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ name, module string }{
		{"no_allow", "package tether.authz\n\ndecision := {\"roles\": [], \"reasons\": []}\n"},
		{"allow_not_boolean", "package tether.authz\n\ndecision := {\"allow\": \"yes\", \"roles\": [], \"reasons\": []}\n"},
		{"roles_not_array", "package tether.authz\n\ndecision := {\"allow\": true, \"roles\": \"admin\", \"reasons\": []}\n"},
		{"reasons_not_strings", "package tether.authz\n\ndecision := {\"allow\": false, \"roles\": [], \"reasons\": [1]}\n"},
		{"expires_at_number", "package tether.authz\n\ndecision := {\"allow\": true, \"roles\": [], \"reasons\": [], \"expires_at\": 5}\n"},
		{"decision_not_object", "package tether.authz\n\ndecision := true\n"},
		{"no_decision", "package tether.authz\n\nsomething_else := true\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good, err := operatorBundle(f)
			if err != nil {
				t.Fatal(err)
			}
			var mods []bundles.Module
			for _, m := range good.Modules {
				if m.Path == "lib/authz.rego" {
					m.Raw = []byte(tc.module)
				}
				mods = append(mods, m)
			}
			b, err := bundles.Build(bundles.BuildOptions{Data: good.Data, Roots: good.Roots, Modules: mods})
			if err != nil {
				t.Fatal(err)
			}
			e, err := New(Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if err := e.Load(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			d, err := e.DecidePlain(context.Background(), sessionAt(f, fixtureNow))
			if err == nil || d.Allow {
				t.Fatalf("DecidePlain = %+v, %v; want an error", d, err)
			}
		})
	}
}

func parseFixture(f *fixture) ([]resource.Resource, error) {
	return resource.Parse([]byte(f.yaml), "fixture.yaml")
}

// TestStoredDerivedDataChecked: bundles.Shape stores each trusted cluster's role_map
// validation and each selector key's literal matcher so that certificates do not pay for
// them; a bundle whose stored values are not what the library gives for the data beside
// them (data.json edited: an invalid map made to look valid, a selector widened to '*') is
// refused, and one without them (built by opa build or an older tetherctl) decides the same.
func TestStoredDerivedDataChecked(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	good := f.bundle(t)
	tc := good.Data["tether"].(map[string]any)["trusted_clusters"].(map[string]any)[rootName].(map[string]any)
	if errs, ok := tc["role_map_errors"].([]any); !ok || len(errs) != 0 {
		t.Fatalf("Shape stored role_map_errors %#v, want []", tc["role_map_errors"])
	}
	rebuild := func(t *testing.T, edit func(tc map[string]any), editRoles ...func(roles map[string]any)) *bundles.Bundle {
		t.Helper()
		data, err := json.Marshal(good.Data)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		edit(doc["tether"].(map[string]any)["trusted_clusters"].(map[string]any)[rootName].(map[string]any))
		for _, er := range editRoles {
			er(doc["tether"].(map[string]any)["roles"].(map[string]any))
		}
		b, err := bundles.Build(bundles.BuildOptions{Data: doc, Roots: good.Roots, Modules: good.Modules})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Run("invalid_map_claimed_valid_refused", func(t *testing.T) {
		b := rebuild(t, func(tc map[string]any) {
			tc["role_map_rules"] = append(tc["role_map_rules"].([]any), map[string]any{"remote": "access", "local": []any{"*"}})
		})
		e, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		err = e.Load(ctx, b)
		if err == nil || !strings.Contains(err.Error(), "rebuild the bundle with tetherctl policy build") {
			t.Fatalf("Load = %v, want the stale role_map_errors refused", err)
		}
	})
	t.Run("selector_widened_refused", func(t *testing.T) {
		b := rebuild(t, func(map[string]any) {}, func(roles map[string]any) {
			env := roles["stage-access"].(map[string]any)["allow"].(map[string]any)["node_labels"].(map[string]any)["keys"].(map[string]any)["env"].(map[string]any)
			env["literal"].(map[string]any)["any"] = true
		})
		e, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		err = e.Load(ctx, b)
		if err == nil || !strings.Contains(err.Error(), "roles.stage-access.allow.node_labels.keys.env.literal") {
			t.Fatalf("Load = %v, want the edited literal refused", err)
		}
	})
	refused := func(t *testing.T, b *bundles.Bundle, what string) {
		t.Helper()
		e, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		err = e.Load(ctx, b)
		if err == nil || !strings.Contains(err.Error(), what) || !strings.Contains(err.Error(), "rebuild the bundle with tetherctl policy build") {
			t.Fatalf("Load = %v, want %s refused", err, what)
		}
	}
	// A role's derived part edited to grant a login the role does not name, to drop a deny
	// login, or to let a selector key match any value: each would decide differently.
	t.Run("role_derived_login_added_refused", func(t *testing.T) {
		b := rebuild(t, func(map[string]any) {}, func(roles map[string]any) {
			roles["visitor"].(map[string]any)["derived"].(map[string]any)["allow"].(map[string]any)["logins"].(map[string]any)["root"] = true
		})
		refused(t, b, "roles.visitor.derived")
	})
	t.Run("role_derived_deny_login_dropped_refused", func(t *testing.T) {
		b := rebuild(t, func(map[string]any) {}, func(roles map[string]any) {
			roles["stage-access"].(map[string]any)["derived"].(map[string]any)["deny"].(map[string]any)["logins"] = map[string]any{}
		})
		refused(t, b, "roles.stage-access.derived")
	})
	t.Run("role_derived_selector_widened_refused", func(t *testing.T) {
		b := rebuild(t, func(map[string]any) {}, func(roles map[string]any) {
			node := roles["stage-access"].(map[string]any)["derived"].(map[string]any)["allow"].(map[string]any)["node"].(map[string]any)
			node["fixed_res"].(map[string]any)["env"] = "^(?s:.*)$"
		})
		refused(t, b, "roles.stage-access.derived")
	})
	// The leaf's host CA made to look like a user CA: its host certificates would be
	// users' certificates.
	t.Run("ca_derived_edited_refused", func(t *testing.T) {
		b := rebuild(t, func(map[string]any) {}, func(map[string]any) {})
		ca := b.Data["tether"].(map[string]any)["cas"].(map[string]any)[f.leafHost.fingerprint].(map[string]any)
		if n := len(ca["derived"].(map[string]any)["type_problems"].([]any)); n != 1 {
			t.Fatalf("the host CA's stored type problems: %d, want 1", n)
		}
		ca["derived"].(map[string]any)["type_problems"] = []any{}
		b, err := bundles.Build(bundles.BuildOptions{Data: b.Data, Roots: good.Roots, Modules: good.Modules})
		if err != nil {
			t.Fatal(err)
		}
		refused(t, b, "cas."+f.leafHost.fingerprint+".derived")
	})
	// The role_map's one regex edited to match nothing would drop every pattern mapping;
	// to match everything it only costs time, but it is refused all the same.
	t.Run("any_pattern_edited_refused", func(t *testing.T) {
		for _, re := range []string{"^$", "(?s:.*)"} {
			b := rebuild(t, func(tc map[string]any) { tc["role_map"].(map[string]any)["any_pattern"] = re })
			refused(t, b, "trusted_clusters."+rootName+".role_map.any_pattern")
		}
	})
	t.Run("without_stored_values_same_decisions", func(t *testing.T) {
		b := rebuild(t, func(tc map[string]any) {
			delete(tc, "role_map_errors")
			delete(tc["role_map"].(map[string]any), "any_pattern")
		}, func(roles map[string]any) {
			for _, r := range roles {
				delete(r.(map[string]any), "derived")
				for _, c := range []string{"allow", "deny"} {
					for _, f := range []string{"node_labels", "cluster_labels"} {
						for _, k := range r.(map[string]any)[c].(map[string]any)[f].(map[string]any)["keys"].(map[string]any) {
							delete(k.(map[string]any), "literal")
						}
					}
				}
			}
		})
		for _, ca := range b.Data["tether"].(map[string]any)["cas"].(map[string]any) {
			if _, ok := ca.(map[string]any)["derived"]; !ok {
				t.Fatal("Shape stored no derived data for a certificate authority")
			}
			delete(ca.(map[string]any), "derived")
		}
		b, err := bundles.Build(bundles.BuildOptions{Data: b.Data, Roots: good.Roots, Modules: good.Modules})
		if err != nil {
			t.Fatal(err)
		}
		old, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := old.Load(ctx, b); err != nil {
			t.Fatal(err)
		}
		cur := f.engine(t, Options{})
		r := rand.New(rand.NewPCG(3, 4))
		for i := 0; i < 200; i++ {
			in := f.randomInput(r)
			want, err := cur.Decide(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := old.DecidePlain(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if want, err = want.Explained(ctx); err != nil {
				t.Fatal(err)
			}
			want.Revision, got.Revision, want.Cached = "", "", false
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("request %d: stored errors %+v, computed %+v", i, want, got)
			}
			// The identity itself is the same value either way.
			wantID, err := cur.Identity(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			gotID, err := old.Identity(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(wantID, gotID) {
				t.Fatalf("request %d: identity with derived data %v, computed %v", i, wantID, gotID)
			}
		}
	})
}
