package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/trust"
	"github.com/tetherproject/tether/resource"
)

// peerCA is the trust.CA of typ of authority a (as the tunnel carries it).
func peerCA(t *testing.T, a *ca.Authority) trust.CA {
	t.Helper()
	r, err := a.Resource(false)
	if err != nil {
		t.Fatal(err)
	}
	return trust.FromResource(r)
}

// leafTrusting is a leaf that trusts root (enabled) and keeps root's user and host CAs
// as the handshake stores them; it returns the leaf and the root's CAs.
func leafTrusting(t *testing.T, root string, enabled bool) (*Service, *ca.Cluster) {
	t.Helper()
	ctx := context.Background()
	leaf := newService(t, "leaf.example.com")
	rootCA, err := ca.NewCluster(root, "")
	if err != nil {
		t.Fatal(err)
	}
	tc := &resource.TrustedCluster{Kind: resource.KindTrustedCluster, Version: "v2", Metadata: resource.Metadata{Name: root},
		Spec: resource.TrustedClusterSpec{Enabled: enabled, Token: "x", TunnelAddr: "127.0.0.1:1", WebProxyAddr: "127.0.0.1:1",
			RoleMap: []resource.RoleMapping{{Remote: "access", Local: []string{"access"}}}}}
	if err := leaf.put(ctx, resourceKey(resource.KindTrustedCluster, root), tc); err != nil {
		t.Fatal(err)
	}
	for _, a := range []*ca.Authority{rootCA.User, rootCA.Host} {
		r, err := peerCA(t, a).Resource()
		if err != nil {
			t.Fatal(err)
		}
		if err := leaf.put(ctx, caKey(root, r.Spec.Type), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := leaf.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	return leaf, rootCA
}

// storedKeys lists the fingerprints of the copy of cluster's typ CA that s keeps.
func storedKeys(t *testing.T, s *Service, cluster, typ string) []string {
	t.Helper()
	r, err := s.get(context.Background(), caKey(cluster, typ))
	if err != nil {
		t.Fatal(err)
	}
	fps, err := caFingerprints(r.(*resource.CertAuthority))
	if err != nil {
		t.Fatal(err)
	}
	return fps
}

// TestPeerCAsFollowARotation: a root's user CA in rotation (old and new key) replaces the
// leaf's copy, and the policy bundle moves with it; sending it again changes nothing; the
// rotation's end (new key only) drops the old key. A leaf's host CA reaches its root the
// same way.
func TestPeerCAsFollowARotation(t *testing.T) {
	ctx := context.Background()
	const root = "root.example.com"
	leaf, rootCA := leafTrusting(t, root, true)
	before := storedKeys(t, leaf, root, resource.CATypeUser)
	rev := leaf.Revision()
	if err := rootCA.User.Rotate(ca.Init); err != nil {
		t.Fatal(err)
	}
	n, err := leaf.ReplacePeerCAs(ctx, root, PeerRoot, []trust.CA{peerCA(t, rootCA.User), peerCA(t, rootCA.Host)})
	if err != nil || n != 1 {
		t.Fatalf("ReplacePeerCAs after init: %d, %v; want 1 change (the user CA)", n, err)
	}
	during := storedKeys(t, leaf, root, resource.CATypeUser)
	if len(during) != 2 || during[0] != before[0] {
		t.Fatalf("the leaf's copy during the rotation: %v, want the old key %v and the new one", during, before)
	}
	if leaf.Revision() == rev {
		t.Fatal("the policy bundle was not rebuilt with the new key")
	}
	if n, err := leaf.ReplacePeerCAs(ctx, root, PeerRoot, []trust.CA{peerCA(t, rootCA.User)}); err != nil || n != 0 {
		t.Fatalf("the same CAs again: %d, %v", n, err)
	}
	for _, ph := range []ca.RotationPhase{ca.UpdateClients, ca.UpdateServers, ca.Standby} {
		if err := rootCA.User.Rotate(ph); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := leaf.ReplacePeerCAs(ctx, root, PeerRoot, []trust.CA{peerCA(t, rootCA.User)}); err != nil {
		t.Fatal(err)
	}
	if after := storedKeys(t, leaf, root, resource.CATypeUser); len(after) != 1 || after[0] != during[1] {
		t.Fatalf("after standby the leaf keeps %v, want only the new key %v", after, during[1])
	}

	// A root keeps its leaves' host CAs.
	rootSvc := newService(t, root)
	leafCA, err := ca.NewCluster("leaf2.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	h, err := leafCA.Host.Resource(false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rootSvc.ValidateTrustedCluster(ctx, trustToken(t, rootSvc, TokenOptions{}), h, "test"); err != nil {
		t.Fatal(err)
	}
	if err := leafCA.Host.Rotate(ca.Init); err != nil {
		t.Fatal(err)
	}
	if n, err := rootSvc.ReplacePeerCAs(ctx, "leaf2.example.com", PeerLeaf, []trust.CA{peerCA(t, leafCA.Host)}); err != nil || n != 1 {
		t.Fatalf("the leaf's host CA in rotation: %d, %v", n, err)
	}
	if got := storedKeys(t, rootSvc, "leaf2.example.com", resource.CATypeHost); len(got) != 2 {
		t.Fatalf("the root's copy of the leaf's host CA: %v, want two keys", got)
	}
}

// TestPeerCAsRefused: what a peer may not send, written as an attacker would send it.
// Each is refused whole and changes no stored copy.
func TestPeerCAsRefused(t *testing.T) {
	ctx := context.Background()
	const root = "root.example.com"
	leaf, rootCA := leafTrusting(t, root, true)
	other, err := ca.NewCluster("other.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	own, err := leaf.cfg.CA.User.Resource(false)
	if err != nil {
		t.Fatal(err)
	}
	as := func(c trust.CA, cluster, typ string) trust.CA {
		c.ClusterName, c.Type = cluster, typ
		return c
	}
	leafOwnUser := trust.FromResource(own)
	rootUser, rootHost := peerCA(t, rootCA.User), peerCA(t, rootCA.Host)
	for _, tc := range []struct {
		name string
		peer string
		role PeerRole
		cas  []trust.CA
		want string
	}{
		{"another_clusters_ca", root, PeerRoot, []trust.CA{peerCA(t, other.User)}, `CA of "other.example.com"; a cluster sends only its own`},
		{"the_leafs_own_user_key_as_the_roots", root, PeerRoot, []trust.CA{as(leafOwnUser, root, resource.CATypeUser)}, "already the user CA of leaf.example.com"},
		{"the_roots_host_key_as_its_user_key", root, PeerRoot, []trust.CA{as(rootHost, root, resource.CATypeUser)}, "already the host CA of root.example.com"},
		{"a_tls_ca", root, PeerRoot, []trust.CA{{Type: resource.CATypeTLS, ClusterName: root}}, "sends only its [user host] CAs"},
		{"an_openssh_ca", root, PeerRoot, []trust.CA{as(rootUser, root, "openssh")}, "sends only its [user host] CAs"},
		{"one_type_twice", root, PeerRoot, []trust.CA{rootUser, rootUser}, "two user CAs"},
		{"more_than_the_bound", root, PeerRoot, []trust.CA{rootUser, rootHost, rootHost}, "more than 2"},
		{"a_key_that_is_not_a_key", root, PeerRoot, []trust.CA{{Type: resource.CATypeUser, ClusterName: root, SSHPublicKeys: []string{"ssh-ed25519 AAAAnotakey"}}}, "the user CA from root.example.com"},
		{"no_keys", root, PeerRoot, []trust.CA{{Type: resource.CATypeUser, ClusterName: root}}, "no SSH public keys"},
		{"a_root_this_leaf_does_not_trust", "other.example.com", PeerRoot, []trust.CA{peerCA(t, other.User)}, "does not trust it"},
		{"a_leaf_sending_a_user_ca", root, PeerLeaf, []trust.CA{rootUser}, "a leaf sends only its [host] CAs"},
		{"a_leaf_that_did_not_join", root, PeerLeaf, []trust.CA{rootHost}, "not a leaf of this cluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user, host := storedKeys(t, leaf, root, resource.CATypeUser), storedKeys(t, leaf, root, resource.CATypeHost)
			n, err := leaf.ReplacePeerCAs(ctx, tc.peer, tc.role, tc.cas)
			if err == nil || !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.want) || n != 0 {
				t.Fatalf("ReplacePeerCAs: %d, %v; want refused with %q", n, err, tc.want)
			}
			if got := storedKeys(t, leaf, root, resource.CATypeUser); strings.Join(got, ",") != strings.Join(user, ",") {
				t.Fatalf("a refused exchange changed the root's user CA: %v → %v", user, got)
			}
			if got := storedKeys(t, leaf, root, resource.CATypeHost); strings.Join(got, ",") != strings.Join(host, ",") {
				t.Fatalf("a refused exchange changed the root's host CA: %v → %v", host, got)
			}
		})
	}

	t.Run("a_disabled_trust", func(t *testing.T) {
		leaf, rootCA := leafTrusting(t, root, false)
		if _, err := leaf.ReplacePeerCAs(ctx, root, PeerRoot, []trust.CA{peerCA(t, rootCA.User)}); err == nil || !strings.Contains(err.Error(), "disabled") {
			t.Fatalf("from a disabled trust: %v", err)
		}
	})
}

// TestPeerCAChangesAreSpaced: a peer that sends new keys at every exchange (a compromised
// one) gets one change applied per PeerCAChangeGap, not a bundle rebuild per exchange; an
// exchange that changes nothing is not held up.
func TestPeerCAChangesAreSpaced(t *testing.T) {
	ctx := context.Background()
	const root = "root.example.com"
	leaf, rootCA := leafTrusting(t, root, true)
	if err := rootCA.User.Rotate(ca.Init); err != nil {
		t.Fatal(err)
	}
	if n, err := leaf.ReplacePeerCAs(ctx, root, PeerRoot, []trust.CA{peerCA(t, rootCA.User)}); err != nil || n != 1 {
		t.Fatalf("first change: %d, %v", n, err)
	}
	first := storedKeys(t, leaf, root, resource.CATypeUser)
	if err := rootCA.User.Rotate(ca.UpdateClients); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if n, err := leaf.ReplacePeerCAs(short, root, PeerRoot, []trust.CA{peerCA(t, rootCA.User)}); !errors.Is(err, context.DeadlineExceeded) || n != 0 {
		t.Fatalf("a second change at once: %d, %v; want it held until the gap passed", n, err)
	}
	if got := storedKeys(t, leaf, root, resource.CATypeUser); strings.Join(got, ",") != strings.Join(first, ",") {
		t.Fatalf("the held change was applied: %v", got)
	}
	start := time.Now()
	if n, err := leaf.ReplacePeerCAs(ctx, root, PeerRoot, []trust.CA{peerCA(t, rootCA.User)}); err != nil || n != 1 {
		t.Fatalf("the second change after the gap: %d, %v", n, err)
	}
	if waited := time.Since(start); waited > PeerCAChangeGap+time.Second {
		t.Fatalf("waited %v", waited)
	}
	start = time.Now()
	if n, err := leaf.ReplacePeerCAs(ctx, root, PeerRoot, []trust.CA{peerCA(t, rootCA.User)}); err != nil || n != 0 || time.Since(start) > time.Second {
		t.Fatalf("an exchange without a change: %d, %v after %v", n, err, time.Since(start))
	}
}
