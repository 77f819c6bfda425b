package ca_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/bundles"
	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/resource"
)

// TestRotationPhases spells out which key signs and which keys are trusted in each phase.
func TestRotationPhases(t *testing.T) {
	t.Parallel()
	a := newAuthority(t, "root.example.com", ca.UserCA, "")
	old := a.SigningKey()
	var next ssh.PublicKey
	for _, step := range []struct {
		phase   ca.RotationPhase
		signs   string // "old" or "new"
		trusted []string
	}{
		{ca.Init, "old", []string{"old", "new"}},
		{ca.UpdateClients, "new", []string{"new", "old"}},
		{ca.UpdateServers, "new", []string{"new", "old"}},
		{ca.Standby, "new", []string{"new"}},
	} {
		t.Run(string(step.phase), func(t *testing.T) {
			if err := a.Rotate(step.phase); err != nil {
				t.Fatal(err)
			}
			keys := a.TrustedKeys()
			if next == nil && len(keys) > 1 {
				next = keys[1].Key
			}
			name := func(k ssh.PublicKey) string {
				switch {
				case sameKey(k, old):
					return "old"
				case next != nil && sameKey(k, next):
					return "new"
				}
				return "other"
			}
			if got := name(a.SigningKey()); got != step.signs || a.Phase() != step.phase {
				t.Errorf("phase %s signs with the %s key, want %s", a.Phase(), got, step.signs)
			}
			var got []string
			for _, k := range keys {
				got = append(got, name(k.Key))
			}
			if strings.Join(got, ",") != strings.Join(step.trusted, ",") {
				t.Errorf("trusted keys %v, want %v", got, step.trusted)
			}
			r, _ := a.Resource(false)
			if len(r.Spec.ActiveKeys.SSH) != 1 || len(r.Spec.AdditionalTrustedKeys.SSH) != len(step.trusted)-1 {
				t.Errorf("resource has %d active and %d additional keys", len(r.Spec.ActiveKeys.SSH), len(r.Spec.AdditionalTrustedKeys.SSH))
			}
		})
	}
}

func TestRotationRefusesSkippingPhases(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		path []ca.RotationPhase
		bad  ca.RotationPhase
	}{
		{"standby_to_update_clients", nil, ca.UpdateClients},
		{"standby_to_rollback", nil, ca.Rollback},
		{"standby_to_standby", nil, ca.Standby},
		{"init_to_standby_would_drop_the_new_key_unused", []ca.RotationPhase{ca.Init}, ca.Standby},
		{"init_to_update_servers", []ca.RotationPhase{ca.Init}, ca.UpdateServers},
		{"update_clients_to_standby", []ca.RotationPhase{ca.Init, ca.UpdateClients}, ca.Standby},
		{"rollback_to_init", []ca.RotationPhase{ca.Init, ca.Rollback}, ca.Init},
		{"unknown_phase", nil, "finished"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuthority(t, "root.example.com", ca.UserCA, "")
			for _, p := range tc.path {
				if err := a.Rotate(p); err != nil {
					t.Fatal(err)
				}
			}
			before := a.TrustedKeys()
			err := a.Rotate(tc.bad)
			if err == nil || !strings.Contains(err.Error(), "cannot go from") {
				t.Fatalf("Rotate(%s) error = %v", tc.bad, err)
			}
			if len(a.TrustedKeys()) != len(before) || !sameKey(a.TrustedKeys()[0].Key, before[0].Key) {
				t.Error("a refused move changed the keys")
			}
		})
	}
}

// rootLeaf is a root cluster whose user CA a leaf trusts, and the leaf's view of it.
type rootLeaf struct {
	root, leaf *ca.Cluster
	leafTrust  []ca.TrustedKey // what the leaf's gateway verifies user certificates with
	userKey    ssh.PublicKey
}

func newRootLeaf(t *testing.T) *rootLeaf {
	t.Helper()
	root, err := ca.NewCluster("root.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.NewCluster("leaf.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range append(root.Authorities(), leaf.Authorities()...) {
		a.Clock = fixedClock(testNow)
	}
	_, pub := newKey(t, "")
	rl := &rootLeaf{root: root, leaf: leaf, userKey: pub}
	rl.sync(t)
	return rl
}

// sync is the leaf learning the root's user CA as it stands, from its public resource,
// as the trust handshake and the tunnel's CA updates deliver it.
func (rl *rootLeaf) sync(t *testing.T) {
	t.Helper()
	r, err := rl.root.User.Resource(false)
	if err != nil {
		t.Fatal(err)
	}
	rootKeys, err := ca.TrustedKeysOf(r)
	if err != nil {
		t.Fatal(err)
	}
	rl.leafTrust = append(rl.leaf.User.TrustedKeys(), rootKeys...)
}

func (rl *rootLeaf) issue(t *testing.T) *ssh.Certificate {
	t.Helper()
	return reparse(t, issue(t, rl.root.User, aliceRequest(rl.userKey)))
}

// TestLeafThroughRootRotation walks a leaf through a rotation of its root's user CA:
// certificates from the old key verify on the leaf until the rotation completes and stop
// verifying then; certificates from the new key verify from the switch on. The leaf syncs
// the root's CA after every phase.
func TestLeafThroughRootRotation(t *testing.T) {
	t.Parallel()
	rl := newRootLeaf(t)
	certs := map[string]*ssh.Certificate{"old": rl.issue(t)}
	oldKey := rl.root.User.SigningKey()

	for _, step := range []struct {
		phase      ca.RotationPhase
		issue      string   // name of a certificate issued in this phase
		signedBy   string   // which key that certificate must be signed by
		verify     []string // certificates that verify on the leaf after this phase
		refuse     []string // certificates the leaf refuses after this phase
		leafSynced bool
	}{
		{phase: ca.Init, issue: "during-init", signedBy: "old", verify: []string{"old", "during-init"}},
		{phase: ca.UpdateClients, issue: "new", signedBy: "new", verify: []string{"old", "during-init", "new"}},
		{phase: ca.UpdateServers, issue: "during-update-servers", signedBy: "new", verify: []string{"old", "during-init", "new", "during-update-servers"}},
		{phase: ca.Standby, issue: "after", signedBy: "new", verify: []string{"new", "during-update-servers", "after"}, refuse: []string{"old", "during-init"}},
	} {
		t.Run(string(step.phase), func(t *testing.T) {
			if err := rl.root.User.Rotate(step.phase); err != nil {
				t.Fatal(err)
			}
			rl.sync(t)
			c := rl.issue(t)
			certs[step.issue] = c
			if byOld := sameKey(c.SignatureKey, oldKey); byOld != (step.signedBy == "old") {
				t.Errorf("certificate issued in %s signed by the old key: %v, want %s", step.phase, byOld, step.signedBy)
			}
			for _, name := range step.verify {
				signer, err := ca.VerifyUser(certs[name], rl.leafTrust)
				if err != nil {
					t.Errorf("certificate %q refused in %s: %v", name, step.phase, err)
				} else if signer.Cluster != "root.example.com" {
					t.Errorf("certificate %q signed by %v", name, signer)
				}
			}
			for _, name := range step.refuse {
				_, err := ca.VerifyUser(certs[name], rl.leafTrust)
				if !errors.Is(err, ca.ErrUnknownAuthority) {
					t.Errorf("certificate %q in %s: error %v, want ErrUnknownAuthority", name, step.phase, err)
				}
			}
		})
	}
}

// TestTrustLearnedAtInitSuffices: a leaf that synced during init, and not again before
// the switch, already accepts certificates from the new key. That is what init is for.
func TestTrustLearnedAtInitSuffices(t *testing.T) {
	t.Parallel()
	rl := newRootLeaf(t)
	if err := rl.root.User.Rotate(ca.Init); err != nil {
		t.Fatal(err)
	}
	rl.sync(t)
	if err := rl.root.User.Rotate(ca.UpdateClients); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.VerifyUser(rl.issue(t), rl.leafTrust); err != nil {
		t.Errorf("certificate from the new key, leaf synced at init: %v", err)
	}
}

func TestRotationRollback(t *testing.T) {
	t.Parallel()
	for _, from := range [][]ca.RotationPhase{{ca.Init}, {ca.Init, ca.UpdateClients}, {ca.Init, ca.UpdateClients, ca.UpdateServers}} {
		t.Run("from_"+string(from[len(from)-1]), func(t *testing.T) {
			rl := newRootLeaf(t)
			oldKey := rl.root.User.SigningKey()
			old := rl.issue(t)
			var fromNew *ssh.Certificate
			for _, p := range from {
				if err := rl.root.User.Rotate(p); err != nil {
					t.Fatal(err)
				}
				if p == ca.UpdateClients {
					fromNew = rl.issue(t)
				}
			}
			if err := rl.root.User.Rotate(ca.Rollback); err != nil {
				t.Fatal(err)
			}
			rl.sync(t)
			if !sameKey(rl.root.User.SigningKey(), oldKey) {
				t.Error("rollback does not sign with the old key")
			}
			if fromNew != nil {
				if _, err := ca.VerifyUser(fromNew, rl.leafTrust); err != nil {
					t.Errorf("during rollback a certificate from the new key is refused: %v", err)
				}
			}
			if err := rl.root.User.Rotate(ca.Standby); err != nil {
				t.Fatal(err)
			}
			rl.sync(t)
			if _, err := ca.VerifyUser(old, rl.leafTrust); err != nil {
				t.Errorf("after rollback a certificate from the old key is refused: %v", err)
			}
			if fromNew != nil {
				if _, err := ca.VerifyUser(fromNew, rl.leafTrust); !errors.Is(err, ca.ErrUnknownAuthority) {
					t.Errorf("after rollback a certificate from the dropped key: %v, want ErrUnknownAuthority", err)
				}
			}
		})
	}
}

func TestTLSRotation(t *testing.T) {
	t.Parallel()
	// On the real clock: the first CA certificate is made by NewAuthority, before a
	// test clock could be set.
	a, err := ca.NewAuthority("root.example.com", ca.TLSCA, "")
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := newKey(t, "")
	leafCert := func() *x509.Certificate {
		c, err := a.IssueTLS(ca.TLSCertRequest{PublicKey: priv.Public(), CommonName: "proxy"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	verifies := func(c *x509.Certificate) bool {
		_, err := c.Verify(x509.VerifyOptions{Roots: a.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err == nil
	}
	old := leafCert()
	if !a.IssuedBySigning(old) {
		t.Error("a certificate of the signing CA is not IssuedBySigning")
	}
	for _, p := range []ca.RotationPhase{ca.Init, ca.UpdateClients} {
		if err := a.Rotate(p); err != nil {
			t.Fatal(err)
		}
	}
	fresh := leafCert()
	if a.IssuedBySigning(old) || !a.IssuedBySigning(fresh) {
		t.Errorf("after update_clients: old IssuedBySigning %v, new %v", a.IssuedBySigning(old), a.IssuedBySigning(fresh))
	}
	if !verifies(old) || !verifies(fresh) || len(a.CACerts()) != 2 {
		t.Errorf("during the rotation: old verifies %v, new verifies %v, %d CA certs", verifies(old), verifies(fresh), len(a.CACerts()))
	}
	for _, p := range []ca.RotationPhase{ca.UpdateServers, ca.Standby} {
		if err := a.Rotate(p); err != nil {
			t.Fatal(err)
		}
	}
	if verifies(old) || !verifies(fresh) {
		t.Errorf("after the rotation: old verifies %v, new verifies %v", verifies(old), verifies(fresh))
	}
}

// TestRotationThroughPolicy runs the leaf's decisions through the real policy engine at
// every phase: the root's CA resource goes into the leaf's bundle as the CA sync would
// put it, and the certificate's signer fingerprint must be one the bundle trusts. After
// the rotation the old key is gone from the bundle too, so even a gateway that still
// verified with stale keys would be denied by the policy.
func TestRotationThroughPolicy(t *testing.T) {
	t.Parallel()
	rl := newRootLeaf(t)
	ctx := context.Background()
	engine, err := policy.New(policy.Options{CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	oldKey := rl.root.User.TrustedKeys()[0]
	decide := func(cert *ssh.Certificate, signer ca.TrustedKey) policy.Decision {
		t.Helper()
		pc, err := policy.CertFromSSH(cert, signer)
		if err != nil {
			t.Fatal(err)
		}
		d, err := engine.Decide(ctx, &policy.Input{
			Action: policy.ActionSSHSession, Cluster: "leaf.example.com", Now: testNow, Cert: pc,
			Login: "visitor", Node: &policy.Node{Name: "node1", Labels: map[string]string{"env": "stage"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	load := func() {
		t.Helper()
		res, err := resource.Parse([]byte(leafResourcesYAML), "leaf.yaml")
		if err != nil {
			t.Fatal(err)
		}
		leafCAs, err := rl.leaf.Resources(false)
		if err != nil {
			t.Fatal(err)
		}
		rootUser, err := rl.root.User.Resource(false)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range append(leafCAs, rootUser) {
			res = append(res, r)
		}
		b, err := bundles.ForCluster(bundles.ClusterOptions{ShapeOptions: bundles.ShapeOptions{ClusterName: "leaf.example.com", Resources: res}})
		if err != nil {
			t.Fatal(err)
		}
		if err := engine.Load(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	load()
	old := rl.issue(t)
	if d := decide(old, oldKey); !d.Allow {
		t.Fatalf("before the rotation the old certificate is denied: %v", d.Reasons)
	}
	var fresh *ssh.Certificate
	for _, p := range []ca.RotationPhase{ca.Init, ca.UpdateClients, ca.UpdateServers} {
		if err := rl.root.User.Rotate(p); err != nil {
			t.Fatal(err)
		}
		rl.sync(t)
		load()
		if d := decide(old, oldKey); !d.Allow {
			t.Errorf("in %s the old certificate is denied: %v", p, d.Reasons)
		}
		if p == ca.UpdateClients {
			fresh = rl.issue(t)
		}
		if fresh != nil {
			signer, err := ca.VerifyUser(fresh, rl.leafTrust)
			if err != nil {
				t.Fatal(err)
			}
			if d := decide(fresh, signer); !d.Allow {
				t.Errorf("in %s the new certificate is denied: %v", p, d.Reasons)
			}
		}
	}
	if err := rl.root.User.Rotate(ca.Standby); err != nil {
		t.Fatal(err)
	}
	rl.sync(t)
	load()
	if d := decide(old, oldKey); d.Allow || !strings.Contains(strings.Join(d.Reasons, "; "), "unknown certificate authority") {
		t.Errorf("after the rotation the old certificate: allow %v, reasons %v; want a denial naming the unknown CA", d.Allow, d.Reasons)
	}
	signer, err := ca.VerifyUser(fresh, rl.leafTrust)
	if err != nil {
		t.Fatal(err)
	}
	if d := decide(fresh, signer); !d.Allow {
		t.Errorf("after the rotation the new certificate is denied: %v", d.Reasons)
	}
}

// leafResourcesYAML is the leaf's side of the trust: the root is trusted and its access
// role maps to visitor, which may log in as visitor everywhere.
const leafResourcesYAML = `
kind: role
version: v5
metadata: {name: visitor}
spec:
  allow:
    logins: [visitor]
    node_labels: {'*': '*'}
---
kind: trusted_cluster
version: v2
metadata: {name: root.example.com}
spec:
  enabled: true
  token: not-used-in-this-test
  tunnel_addr: root.example.com:443
  web_proxy_addr: root.example.com:443
  role_map:
    - {remote: access, local: [visitor]}
`

// TestIssueDuringRotation issues from several goroutines while the authority rotates:
// every certificate verifies with the keys trusted just before or just after it was
// issued (run with -race to check the locking).
func TestIssueDuringRotation(t *testing.T) {
	t.Parallel()
	a := newAuthority(t, "root.example.com", ca.UserCA, "")
	_, pub := newKey(t, "")
	done := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				before := a.TrustedKeys()
				cert, err := a.IssueUser(aliceRequest(pub))
				if err == nil {
					_, err = ca.VerifyUser(cert, append(before, a.TrustedKeys()...))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 3 {
		for _, p := range []ca.RotationPhase{ca.Init, ca.UpdateClients, ca.UpdateServers, ca.Standby} {
			if err := a.Rotate(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// RotateSaved moves and saves, or does neither: a phase the rotation does not allow and a
// directory that cannot be written both leave the authority in memory and on disk as
// they were; a good move is on disk for a restart.
func TestRotateSavedIsAllOrNothing(t *testing.T) {
	t.Parallel()
	a := newAuthority(t, "root.example.com", ca.HostCA, "")
	dir := t.TempDir() + "/host"
	if err := a.Save(dir); err != nil {
		t.Fatal(err)
	}
	old := ssh.FingerprintSHA256(a.SigningKey())
	if err := a.RotateSaved(ca.UpdateClients, dir); !ca.IsPhaseError(err) {
		t.Fatalf("skipping init: %v, want a phase error", err)
	}
	if err := a.RotateSaved(ca.Init, dir); err != nil {
		t.Fatal(err)
	}
	blocked := t.TempDir() + "/file"
	if err := os.WriteFile(blocked, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.RotateSaved(ca.UpdateClients, blocked); err == nil || ca.IsPhaseError(err) {
		t.Fatalf("saving into a file: %v, want a save error", err)
	}
	if a.Phase() != ca.Init || ssh.FingerprintSHA256(a.SigningKey()) != old {
		t.Fatalf("a failed save changed the authority: phase %s", a.Phase())
	}
	if err := a.RotateSaved(ca.UpdateClients, dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := ca.LoadAuthority(dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Phase() != ca.UpdateClients || !bytes.Equal(loaded.SigningKey().Marshal(), a.SigningKey().Marshal()) || len(loaded.TrustedKeys()) != 2 {
		t.Fatalf("on disk: phase %s, %d trusted keys", loaded.Phase(), len(loaded.TrustedKeys()))
	}
}
