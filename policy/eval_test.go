package policy

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
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
