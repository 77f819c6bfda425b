package policy

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// TestCancelledContextIsAnError: an evaluation under a cancelled context is an error for
// the caller, never a decision (and never a denial that could be cached or logged).
func TestCancelledContextIsAnError(t *testing.T) {
	f := newFixture(t)
	e := f.engine(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in := &Input{Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow,
		Cert: f.rootCert("alice", []string{"access"}, []string{"visitor"}), Login: "visitor",
		Node: &Node{Name: "n1", Labels: map[string]string{"env": "stage"}}}
	if d, err := e.Decide(ctx, in); !errors.Is(err, context.Canceled) {
		t.Fatalf("Decide under a cancelled context: %+v, %v; want context.Canceled", d, err)
	}
	if _, err := e.NodeList(ctx, in, []Node{*in.Node}); !errors.Is(err, context.Canceled) {
		t.Fatalf("NodeList under a cancelled context: %v; want context.Canceled", err)
	}
	// The same request decides normally afterwards (nothing was cached).
	d, err := e.Decide(context.Background(), in)
	if err != nil || !d.Allow || d.Cached {
		t.Fatalf("after the cancelled call: %+v, %v", d, err)
	}
}

// TestPooledQueriesKeepNoState: the engine's pooled evaluators, used by many goroutines at
// once with no decision cache, give every request the public query's answer (reasons of
// allows included): no input, time, identity or result leaks from one evaluation into the
// next.
func TestPooledQueriesKeepNoState(t *testing.T) {
	f := newFixture(t)
	e := f.engine(t, Options{CacheSize: -1})
	ctx := context.Background()
	r := rand.New(rand.NewPCG(5, 5))
	n := 400
	if testing.Short() {
		n = 100
	}
	reqs := make([]*Input, n)
	want := make([]Decision, n)
	for i := range reqs {
		reqs[i] = f.randomInput(r)
		d, err := e.DecidePlain(ctx, reqs[i])
		if err != nil {
			t.Fatal(err)
		}
		want[i] = d
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for k := 0; k < n; k++ {
				i := (k*7 + g*13) % n // each goroutine its own order
				d, err := e.Decide(ctx, reqs[i])
				if err == nil {
					d, err = d.Explained(ctx)
				}
				if err != nil {
					t.Errorf("request %d: %v", i, err)
					return
				}
				if !reflect.DeepEqual(d, want[i]) {
					t.Errorf("request %d on goroutine %d:\ngot  %+v\nwant %+v", i, g, d, want[i])
					return
				}
			}
		}(g)
	}
	wg.Wait()
}

// TestDataCacheReadsWhatOPAReads: the engine's base-document cache (dataCache) answers
// data.tether.* from the bundle's data; every reference gives what OPA's own reading gives
// (rego with the store and the stage's resolvers): present and missing paths, the whole
// document, `with` overlays on data, and stage values, including one that is not set,
// which is an error on both paths, never a value.
func TestDataCacheReadsWhatOPAReads(t *testing.T) {
	f := newFixture(t)
	e := f.engine(t, Options{})
	p := e.cur.Load()
	ctx := context.Background()
	id := ast.MustParseTerm(`{"roles": ["visitor"], "user": "alice"}`).Value
	idRes := stageRef{stageIdentityRef, stageResolver(func(s *stage) ast.Value { return s.identity })}
	for _, text := range []string{
		`data.tether.cluster.name`,
		`data.tether.roles.visitor`,
		`[r | some r, _ in data.tether.roles]`,
		`object.get(data.tether, ["roles", "visitor", "allow"], "none")`,
		`object.get(data.tether, "nosuch", "none")`,
		`object.get(data.tether.roles, "nosuch", "none")`,
		`[data.tether.cluster.name, data.tether.cluster.name]`,
		`object.keys(data.tether)`,
		`object.keys(data)`,
		`data.tether.cluster.name with data.tether.cluster.name as "overlaid"`,
		`[data.tether.roles.visitor.allow, data.tether.cluster] with data.tether.roles.visitor.allow as {}`,
		`data.tether.stage.identity`,
		`data.tether.stage.identity.user`,
		`object.get(data.tether.stage.identity, "nosuch", "none")`,
		`[data.tether.stage.identity.roles, data.tether.cluster.name]`,
		`data.tether.stage.identity.user with data.tether.cluster.name as "overlaid"`,
	} {
		q, err := newQuery(p.compiler, p.store, text, idRes)
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		pq, err := rego.New(rego.Query(text), rego.Compiler(p.compiler), rego.Store(p.store), rego.Resolver(idRes.ref, idRes.r)).PrepareForEval(ctx)
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		for _, st := range []*stage{{identity: id}, {}} {
			sctx := context.WithValue(ctx, stageKey{}, st)
			got, gotErr := q.eval(sctx, ast.NewObject(), fixtureNow)
			want, wantErr := evalValue(sctx, pq, ast.NewObject())
			switch {
			case (gotErr != nil) != (wantErr != nil):
				t.Errorf("%s (identity set: %t): engine %v, %v; OPA %v, %v", text, st.identity != nil, got, gotErr, want, wantErr)
			case gotErr == nil && ast.Compare(got, want) != 0:
				t.Errorf("%s (identity set: %t): engine %v; OPA %v", text, st.identity != nil, got, want)
			}
			if st.identity == nil && strings.Contains(text, "stage") && gotErr == nil {
				t.Errorf("%s without a stage identity: %v, want an error", text, got)
			}
		}
	}
}
