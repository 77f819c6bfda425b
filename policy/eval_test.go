package policy

import (
	"context"
	"errors"
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
