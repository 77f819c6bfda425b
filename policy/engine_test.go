package policy

import (
	"context"
	"fmt"

	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/resolver"

	"github.com/tetherproject/tether/bundles"
	"github.com/tetherproject/tether/resource"
)

// TestStagedEqualsPublicQuery is the differential test: on thousands of random requests,
// the engine's staged and cached path gives exactly what the public query
// data.tether.authz.decision gives, reasons and expiry included.
// TestStagedEqualsPublicQuery holds the engine's stages, on OPA's plan (ireval) and on
// topdown, equal to the public query evaluated on topdown.
func TestStagedEqualsPublicQuery(t *testing.T) {
	for _, ev := range []string{EvaluatorPlanned, EvaluatorTopdown} {
		t.Run(ev, func(t *testing.T) { testStagedEqualsPublicQuery(t, ev) })
	}
}

func testStagedEqualsPublicQuery(t *testing.T, evaluator string) {
	f := newFixture(t)
	e := f.engine(t, Options{IdentityCacheSize: 64, Evaluator: evaluator})
	for stage, got := range e.Evaluators() {
		if got != evaluator && !strings.HasPrefix(got, evaluator+": ") {
			t.Fatalf("stage %s is evaluated by %q, want %s", stage, got, evaluator)
		}
	}
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	n := 3000
	if testing.Short() {
		n = 500
	}
	// The lookup path of an allowed session must agree with the full rules.
	p := e.cur.Load()
	full, err := rego.New(rego.Query("data.tether.access.decide_full(data.tether.stage.identity, input)"),
		rego.Compiler(p.compiler), rego.Store(p.store), rego.Resolver(stageIdentityRef, stageResolver(func(s *stage) ast.Value { return s.identity }))).PrepareForEval(ctx)
	if err != nil {
		t.Fatal(err)
	}
	allowed := 0
	for i := 0; i < n; i++ {
		in := f.randomInput(r)
		id, err := e.identity(ctx, p, in)
		if err != nil {
			t.Fatal(err)
		}
		fv, err := evalValue(context.WithValue(ctx, stageKey{}, &stage{identity: id.value}), full, in.Value())
		if err != nil {
			t.Fatal(err)
		}
		fullDecision, err := decisionFrom(fv, p.revision)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := e.DecidePlain(ctx, in)
		if err != nil {
			t.Fatalf("request %d: plain: %v", i, err)
		}
		// Twice: once evaluated, once (usually) from the cache.
		for round := 0; round < 2; round++ {
			fast, err := e.Decide(ctx, in)
			if err != nil {
				t.Fatalf("request %d: staged: %v", i, err)
			}
			// An allow's reasons are made when asked (the decision log asks): they
			// must be the spec's.
			if fast, err = fast.Explained(ctx); err != nil {
				t.Fatalf("request %d: reasons: %v", i, err)
			}
			fast.Cached = false
			if !reflect.DeepEqual(plain, fast) {
				t.Fatalf("request %d round %d differs:\ninput: %+v\nplain:  %+v\nstaged: %+v", i, round, in, plain, fast)
			}
		}
		if !reflect.DeepEqual(plain, fullDecision) {
			t.Fatalf("request %d: decide and decide_full differ:\ninput: %+v\ndecide:      %+v\ndecide_full: %+v", i, in, plain, fullDecision)
		}
		if plain.Allow {
			allowed++
		}
		if !plain.Allow && len(plain.Reasons) == 0 {
			t.Fatalf("request %d denied without a reason: %+v", i, in)
		}
	}
	// The fixture must exercise both answers, or the comparison proves little.
	if allowed < n/20 || allowed > n*19/20 {
		t.Fatalf("fixture allowed %d of %d requests; want a mix", allowed, n)
	}
	st := e.Stats()
	if st.Fast == 0 || st.Generic == 0 || st.CacheHits == 0 {
		t.Fatalf("every path must be exercised: %+v", st)
	}
	if st.Retried != 0 {
		t.Fatalf("%d planned evaluations were retried on topdown; the fixture's rules raise no error", st.Retried)
	}
	t.Logf("%d requests, %d allowed; %+v", n, allowed, st)
}

func TestSeedGuideDecisions(t *testing.T) {
	f := newFixture(t)
	e := f.engine(t, Options{})
	ctx := context.Background()
	tests := []struct {
		name       string
		roles      []string
		login      string
		labels     map[string]string
		allow      bool
		wantRoles  []string
		wantReason string
	}{
		{"access maps to visitor on any node", []string{"access"}, "visitor", map[string]string{"env": "prod"}, true, []string{"visitor"}, `role "visitor" allows login "visitor"`},
		{"full-access maps to stage-access, allowed on stage", []string{"full-access"}, "visitor", map[string]string{"env": "stage"}, true, []string{"stage-access"}, `role "stage-access" allows login "visitor" on node "ip-172-3-2-205"`},
		{"full-access maps to stage-access, denied on prod", []string{"full-access"}, "visitor", map[string]string{"env": "prod"}, false, []string{"stage-access"},
			`user alice@root.example.com is not authorized to login as visitor@leaf.example.com: no role's node_labels match node "ip-172-3-2-205"`},
		{"unmapped root role grants nothing", []string{"editor"}, "visitor", map[string]string{"env": "stage"}, false, []string{}, `no roles mapped for user with remote roles ["editor"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &Input{
				Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow,
				Cert:  f.rootCert("alice", tt.roles, []string{"visitor"}),
				Login: tt.login,
				Node:  &Node{Name: "ip-172-3-2-205", Labels: tt.labels},
			}
			d, err := e.Decide(ctx, in)
			if err == nil {
				d, err = d.Explained(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tt.allow {
				t.Fatalf("allow = %v, want %v; reasons %q", d.Allow, tt.allow, d.Reasons)
			}
			if !reflect.DeepEqual(d.Roles, tt.wantRoles) {
				t.Fatalf("roles = %q, want %q", d.Roles, tt.wantRoles)
			}
			if !containsSubstring(d.Reasons, tt.wantReason) {
				t.Fatalf("reasons %q lack %q", d.Reasons, tt.wantReason)
			}
		})
	}
}

func containsSubstring(ss []string, sub string) bool {
	for _, s := range ss {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestCacheNeverOutlivesCertificate: a cached allow stops at valid_before.
func TestCacheNeverOutlivesCertificate(t *testing.T) {
	f := newFixture(t)
	e := f.engine(t, Options{})
	ctx := context.Background()
	in := &Input{Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow,
		Cert: f.rootCert("alice", []string{"access"}, []string{"visitor"}), Login: "visitor",
		Node: &Node{Name: "n1", Labels: map[string]string{"env": "stage"}}}
	d, err := e.Decide(ctx, in)
	if err != nil || !d.Allow {
		t.Fatalf("first decision: %+v, %v", d, err)
	}
	if !d.ExpiresAt.Equal(in.Cert.ValidBefore) {
		t.Fatalf("expires_at = %v, want valid_before %v", d.ExpiresAt, in.Cert.ValidBefore)
	}
	d, _ = e.Decide(ctx, in)
	if !d.Cached || !d.Allow {
		t.Fatalf("second decision should be a cached allow: %+v", d)
	}
	in.Now = in.Cert.ValidBefore
	d, _ = e.Decide(ctx, in)
	if d.Cached || d.Allow {
		t.Fatalf("at valid_before the decision must be re-evaluated and denied: %+v", d)
	}
	// A request dated before the cached one is not served from the cache either.
	in.Now = in.Cert.ValidAfter.Add(-time.Hour)
	d, _ = e.Decide(ctx, in)
	if d.Cached || d.Allow {
		t.Fatalf("before valid_after: %+v", d)
	}
}

// TestCacheRespectsCertificateAge: a role's max_cert_age bounds a cached allow.
func TestCacheRespectsCertificateAge(t *testing.T) {
	f := newFixture(t)
	e := f.engine(t, Options{})
	ctx := context.Background()
	// r-exact-... maps to role-0xx; role-043 has max_cert_age 2h; map it via g-13-043.
	in := &Input{Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow,
		Cert: f.rootCert("alice", []string{"g-13-043"}, []string{"login-1"}), Login: "login-1",
		Node: &Node{Name: "n1", Labels: map[string]string{"env": "stage-1", "team": "team-3"}}}
	d, err := e.Decide(ctx, in)
	if err != nil || !d.Allow {
		t.Fatalf("first decision: %+v, %v", d, err)
	}
	// A certificate exactly max_cert_age old is accepted; the answer flips 1ns later.
	wantExpiry := in.Cert.ValidAfter.Add(2*time.Hour + time.Nanosecond)
	if !d.ExpiresAt.Equal(wantExpiry) {
		t.Fatalf("expires_at = %v, want %v (valid_after + max_cert_age + 1ns)", d.ExpiresAt, wantExpiry)
	}
	in.Now = wantExpiry.Add(-time.Nanosecond)
	if d, _ = e.Decide(ctx, in); !d.Allow || !d.Cached {
		t.Fatalf("at exactly max_cert_age the cached allow still holds: %+v", d)
	}
	in.Now = wantExpiry
	d, _ = e.Decide(ctx, in)
	if d.Cached || d.Allow {
		t.Fatalf("past max_cert_age: %+v", d)
	}
}

// TestTimeDependentOperatorModuleIsNotCached: an operator rule that reads input.now makes
// every decision of that bundle uncached, since the cache key leaves now out.
func TestTimeDependentOperatorModuleIsNotCached(t *testing.T) {
	f := newFixture(t)
	f.operator = `package tether.custom

deny contains "no access in the evening" if time.clock(time.parse_rfc3339_ns(input.now))[0] >= 18
`
	e := f.engine(t, Options{})
	ctx := context.Background()
	in := &Input{Action: ActionSSHSession, Cluster: leafName, Now: time.Date(2026, 11, 23, 17, 59, 0, 0, time.UTC),
		Cert: f.rootCert("alice", []string{"access"}, []string{"visitor"}), Login: "visitor",
		Node: &Node{Name: "n1", Labels: map[string]string{}}}
	in.Cert.ValidAfter = in.Now.Add(-time.Hour)
	if d, _ := e.Decide(ctx, in); !d.Allow {
		t.Fatalf("17:59 should be allowed: %+v", d)
	}
	in.Now = in.Now.Add(2 * time.Minute)
	if d, _ := e.Decide(ctx, in); d.Allow || d.Cached {
		t.Fatalf("18:01 should be denied, fresh: %+v", d)
	}
}

// TestSwapHasNoFailedOrStaleDecisions loads new revisions while decisions run: every
// decision succeeds, and once Load returns no decision carries an older revision.
func TestSwapHasNoFailedOrStaleDecisions(t *testing.T) {
	f := newFixture(t)
	e := f.engine(t, Options{})
	ctx := context.Background()
	res, err := resource.Parse([]byte(f.yaml), "fixture.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var revs []*bundles.Bundle
	for i := 0; i < 4; i++ {
		b, err := bundles.ForCluster(bundles.ClusterOptions{
			ShapeOptions: bundles.ShapeOptions{ClusterName: leafName, Resources: res},
			Revision:     "rev-" + string(rune('a'+i)),
		})
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, b)
	}
	var stop atomic.Bool
	var loaded atomic.Value // revision whose Load has returned
	loaded.Store(e.Revision())
	var wg sync.WaitGroup
	var failures atomic.Int64
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 9))
			for !stop.Load() {
				before := loaded.Load().(string)
				d, err := e.Decide(ctx, f.randomInput(r))
				if err != nil {
					t.Errorf("decision failed during swap: %v", err)
					failures.Add(1)
					return
				}
				if revisionIndex(d.Revision) < revisionIndex(before) {
					t.Errorf("stale decision: revision %s after %s was loaded", d.Revision, before)
					return
				}
			}
		}(uint64(w))
	}
	for _, b := range revs {
		if err := e.Load(ctx, b); err != nil {
			t.Fatal(err)
		}
		loaded.Store(b.Revision)
		time.Sleep(20 * time.Millisecond) // let decisions run on this revision
	}
	stop.Store(true)
	wg.Wait()
}

func revisionIndex(rev string) int {
	if strings.HasPrefix(rev, "rev-") {
		return int(rev[4]-'a') + 1
	}
	return 0
}

func TestInputValidation(t *testing.T) {
	f := newFixture(t)
	e := f.engine(t, Options{})
	base := func() *Input {
		return &Input{Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow,
			Cert: f.rootCert("alice", []string{"access"}, []string{"visitor"}), Login: "visitor"}
	}
	tests := []struct {
		name   string
		mutate func(*Input)
		want   string
	}{
		{"missing action", func(in *Input) { in.Action = "" }, "action is required"},
		{"missing now", func(in *Input) { in.Now = time.Time{} }, "now is required"},
		{"non-UTF-8 login", func(in *Input) { in.Login = "vis\xffitor" }, "not valid UTF-8"},
		{"oversize string", func(in *Input) { in.Login = strings.Repeat("a", 5000) }, "more than"},
		{"too many principals", func(in *Input) { in.Cert.Principals = make([]string, 5000) }, "strings, more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base()
			tt.mutate(in)
			_, err := e.Decide(context.Background(), in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestTrustChangesTakeEffectAtOnce is DESIGN §5 invariants 3 and 5 through the engine,
// cache included: disabling the trust or adding a lock is a new bundle revision, and the
// very next decision denies, however recently the same request was allowed.
func TestTrustChangesTakeEffectAtOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	in := &Input{Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow,
		Cert: f.rootCert("alice", []string{"access"}, []string{"visitor"}), Login: "visitor",
		Node: &Node{Name: "n1", Labels: map[string]string{"env": "stage"}}}
	tests := []struct {
		name   string
		change func(yaml string) string
		reason string
	}{
		{"trust disabled", func(y string) string {
			return strings.Replace(y, "spec:\n  enabled: true", "spec:\n  enabled: false", 1)
		}, "trust with cluster root.example.com is disabled"},
		{"user locked", func(y string) string {
			return y + "---\nkind: lock\nversion: v2\nmetadata: {name: incident-42}\nspec:\n  target: {user: alice}\n  message: credentials leaked\n"
		}, `locked by lock "incident-42": credentials leaked`},
		{"root cluster locked", func(y string) string {
			return y + "---\nkind: lock\nversion: v2\nmetadata: {name: cut-root}\nspec:\n  target: {remote_cluster: root.example.com}\n"
		}, `locked by lock "cut-root"`},
		{"trust removed", func(y string) string {
			i := strings.Index(y, "---\nkind: trusted_cluster")
			j := strings.Index(y[i+4:], "---\n") + i + 4
			return y[:i] + y[j:]
		}, "cluster root.example.com is not a trusted cluster of this one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := f.engine(t, Options{})
			for i := 0; i < 2; i++ {
				if d, err := e.Decide(ctx, in); err != nil || !d.Allow {
					t.Fatalf("before the change: %+v %v", d, err)
				}
			}
			changed := *f
			changed.yaml = tt.change(f.yaml)
			if err := e.Load(ctx, changed.bundle(t)); err != nil {
				t.Fatal(err)
			}
			d, err := e.Decide(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow || d.Cached || !containsSubstring(d.Reasons, tt.reason) {
				t.Fatalf("after the change: %+v, want a fresh denial saying %q", d, tt.reason)
			}
		})
	}
}

// stageKey carries a stage in a context, for the tests that evaluate the library through
// the rego package (the engine's pooled queries read it from the evaluation instead).
type stageKey struct{}

func (f stageResolver) Eval(ctx context.Context, in resolver.Input) (resolver.Result, error) {
	st, ok := ctx.Value(stageKey{}).(*stage)
	if !ok || f(st) == nil {
		return resolver.Result{}, fmt.Errorf("%v is not set in this evaluation's context", in.Ref)
	}
	return resolver.Result{Value: f(st)}, nil
}
