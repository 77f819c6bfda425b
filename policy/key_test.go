package policy

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
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

// TestCacheKeyTimesAreExact is the attacker's test of how the keys encode a certificate's
// times: a time whose nanoseconds since 1970 do not fit an int64 (here 2^64 ns, ≈ 584
// years, after a valid one) must not encode like the valid one, or a request the engine
// refuses would be served the valid request's cached decision.
func TestCacheKeyTimesAreExact(t *testing.T) {
	e, valid := decidedAllow(t)
	ctx := context.Background()
	wrap := func(t0 time.Time) time.Time { // t0 + 2^64 ns
		return t0.Add(6148914691 * time.Second).Add(6148914691 * time.Second).Add(6148914691*time.Second + 709551616)
	}
	for _, field := range []string{"valid_after", "valid_before"} {
		forged := *valid
		if field == "valid_after" {
			forged.Cert.ValidAfter = wrap(valid.Cert.ValidAfter)
			if forged.Cert.ValidAfter.UnixNano() != valid.Cert.ValidAfter.UnixNano() {
				t.Fatal("fixture: the forged time does not wrap to the valid one")
			}
		} else {
			forged.Cert.ValidBefore = wrap(valid.Cert.ValidBefore)
		}
		d, err := e.Decide(ctx, &forged)
		if err == nil {
			t.Fatalf("%s 584 years on: got %+v (cached %v), want the input refused", field, d, d.Cached)
		}
		if !strings.Contains(err.Error(), "outside the years") {
			t.Fatalf("%s: got %v, want the time refused", field, err)
		}
	}
}

// TestCertificateChecksHoldWithAWarmIdentity: the certificate's own checks run once per
// identity, so a request must never reach a warm identity with a certificate that would
// fail them, and the request's own checks still run on every miss.
func TestCertificateChecksHoldWithAWarmIdentity(t *testing.T) {
	e, valid := decidedAllow(t)
	ctx := context.Background()
	bad := map[string]func(in *Input){
		"a principal not UTF-8": func(in *Input) { in.Cert.Principals = append(slices.Clone(in.Cert.Principals), "visitor\xff") },
		"a trait too long": func(in *Input) {
			in.Cert.Traits = map[string][]string{"logins": {strings.Repeat("a", maxInputStringLen+1)}}
		},
		"valid_before past 2262": func(in *Input) { in.Cert.ValidBefore = maxTime.Add(time.Hour) },
		"too many strings with the certificate's": func(in *Input) {
			in.Cert.Principals = make([]string, maxInputStrings-5)
			for i := range in.Cert.Principals {
				in.Cert.Principals[i] = "p"
			}
			// The certificate alone passes; the node's labels take the input over the limit.
			if err := in.Cert.validate(); err != nil {
				t.Fatal(err)
			}
		},
		"a node label not UTF-8": func(in *Input) { in.Node = &Node{Name: "n2", Labels: map[string]string{"env": "stage\xff"}} },
	}
	for name, spoil := range bad {
		in := valid.Clone()
		spoil(in)
		in.Node = &Node{Name: "n3-" + name, Labels: in.Node.Labels}
		if d, err := e.Decide(ctx, in); err == nil {
			t.Errorf("%s: got %+v, want the input refused", name, d)
		}
		// Once more, now that the valid certificate's identity is warm either way.
		if d, err := e.Decide(ctx, in); err == nil {
			t.Errorf("%s, again: got %+v, want the input refused", name, d)
		}
	}
}

// decidedAllow is an engine on the fixture and alice's ssh.session to a stage node, which it
// has allowed once (so the decision and the identity are cached).
func decidedAllow(t *testing.T) (*Engine, *Input) {
	t.Helper()
	f := newFixture(t)
	e := f.engine(t, Options{})
	in := &Input{Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow,
		Cert: f.rootCert("alice", []string{"access"}, []string{"visitor"}), Login: "visitor",
		Node: &Node{Name: "n1", Labels: map[string]string{"env": "stage"}}}
	if d, err := e.Decide(context.Background(), in); err != nil || !d.Allow {
		t.Fatalf("fixture: want an allow, got %+v, %v", d, err)
	}
	return e, in
}

// Cert.strings counts what Cert.walkStrings gives (the input's limit counts the
// certificate's strings without walking them on every miss).
func TestCertStringsCountsWhatWalkStringsGives(t *testing.T) {
	f := newFixture(t)
	certs := []Cert{{}, f.rootCert("alice", []string{"access", "auditor"}, []string{"visitor", "root"})}
	certs[1].Traits = map[string][]string{"logins": {"a", "b"}, "team": nil, "email": {"alice@example.com"}}
	for i, c := range certs {
		n := 0
		c.walkStrings(func(string, string, string) { n++ })
		if c.strings() != n {
			t.Errorf("certificate %d: strings() = %d, walkStrings gives %d", i, c.strings(), n)
		}
	}
}
