package policy

import (
	"context"
	"reflect"
	"testing"
)

// TestCacheKeyCollisionServesOwnDecision is the attacker's test of the cache keys: the
// hash only picks a slot, so when two requests hash alike (forced here: every encoding
// hashes to the same value) each must still get its own decision, never the other's, and
// each certificate its own identity.
func TestCacheKeyCollisionServesOwnDecision(t *testing.T) {
	f := newFixture(t)
	e := f.engine(t, Options{})
	e.hash = func([]byte) key { return 42 }
	ctx := context.Background()

	alice := f.rootCert("alice", []string{"access"}, []string{"visitor"})
	mallory := f.rootCert("mallory", []string{"unmapped"}, []string{"visitor"})
	node := &Node{Name: "n1", Labels: map[string]string{"env": "stage"}}
	allowed := &Input{Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow, Cert: alice, Login: "visitor", Node: node}
	denied := &Input{Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow, Cert: mallory, Login: "visitor", Node: node}
	// The same certificate and a request that differs only in the node's name.
	other := &Input{Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow, Cert: alice, Login: "root",
		Node: &Node{Name: "n2", Labels: map[string]string{"env": "prod"}}}

	want := map[*Input]Decision{}
	for _, in := range []*Input{allowed, denied, other} {
		d, err := e.DecidePlain(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		want[in] = d
	}
	if !want[allowed].Allow || want[denied].Allow || want[other].Allow {
		t.Fatalf("fixture: want allow, deny, deny; got %v %v %v", want[allowed].Allow, want[denied].Allow, want[other].Allow)
	}
	hits := 0
	for round, in := range []*Input{allowed, denied, denied, allowed, other, allowed, allowed, denied, other, other} {
		d, err := e.Decide(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if d.Cached {
			hits++
		}
		if d, err = d.Explained(ctx); err != nil {
			t.Fatal(err)
		}
		d.Cached = false
		if !reflect.DeepEqual(d, want[in]) {
			t.Fatalf("round %d: with colliding keys got %+v, want %+v", round, d, want[in])
		}
	}
	// Equal requests in a row are still hits (the slot holds the last one made).
	if hits != 3 {
		t.Fatalf("%d cache hits, want 3 (the repeated requests)", hits)
	}

	// Identities: two certificates in one slot each get their own.
	p := e.cur.Load()
	for _, in := range []*Input{allowed, denied, allowed} {
		id, err := e.identity(ctx, p, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(id.roles) == 0 != (in == denied) {
			t.Fatalf("identity of %s has roles %v", in.Cert.Username, id.roles)
		}
	}
}
