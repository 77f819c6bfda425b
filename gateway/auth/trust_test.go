package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/state"
)

func trustToken(t *testing.T, s *Service, opts TokenOptions) string {
	t.Helper()
	opts.Roles = []string{resource.TokenRoleTrustedCluster}
	if opts.TTL == 0 {
		opts.TTL = time.Hour
	}
	tok, _, err := s.AddToken(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func hostCAOf(t *testing.T, name string) *resource.CertAuthority {
	t.Helper()
	c, err := ca.NewCluster(name, "")
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.Host.Resource(false)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// keysAs is a host CA of cluster whose keys are those of src (an attacker reusing keys).
func keysAs(cluster string, src *resource.CertAuthority) *resource.CertAuthority {
	return &resource.CertAuthority{Kind: resource.KindCertAuthority, Version: "v2",
		Metadata: resource.Metadata{Name: cluster},
		Spec: resource.CertAuthoritySpec{Type: resource.CATypeHost, ClusterName: cluster,
			ActiveKeys: resource.CAKeySet{SSH: src.Spec.ActiveKeys.SSH}}}
}

// snapshot is every item of the store, key → value, to prove a refusal changed nothing.
func snapshot(t *testing.T, s *Service) map[string]string {
	t.Helper()
	items, err := s.cfg.Store.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, it := range items {
		out[it.Key] = string(it.Value)
	}
	return out
}

func sameSnapshot(t *testing.T, before, after map[string]string) {
	t.Helper()
	if len(before) != len(after) {
		t.Fatalf("the store changed: %d items before, %d after", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("the store changed under %s", k)
		}
	}
}

func TestLeafNameIsClaimedOnce(t *testing.T) {
	ctx := context.Background()
	root := newService(t, "root.example.com")
	leafHost := hostCAOf(t, "leaf.example.com")
	if _, err := root.ValidateTrustedCluster(ctx, trustToken(t, root, TokenOptions{}), leafHost, "leaf"); err != nil {
		t.Fatal(err)
	}
	if err := root.SetRemoteClusterLabels(ctx, "leaf.example.com", map[string]string{"env": "prod"}); err != nil {
		t.Fatal(err)
	}
	// The attacker holds a valid (new, unbound) token and its own key.
	for _, name := range []string{"leaf.example.com", "LEAF.example.com", "leaf.example.com.", "Leaf.Example.Com."} {
		t.Run("attacker_with_a_valid_token_cannot_take_over_"+name, func(t *testing.T) {
			before := snapshot(t, root)
			rev := root.Revision()
			_, err := root.ValidateTrustedCluster(ctx, trustToken(t, root, TokenOptions{}), hostCAOf(t, name), "attacker")
			if !errors.Is(err, ErrAlreadyExists) || !strings.Contains(err.Error(), "tetherctl rm rc/leaf.example.com") {
				t.Fatalf("got %v", err)
			}
			sameSnapshot(t, withoutTokens(before), withoutTokens(snapshot(t, root)))
			if root.Revision() != rev {
				t.Fatal("the bundle was rebuilt")
			}
			got, err := root.Get(ctx, resource.KindCertAuthority, "leaf.example.com", false)
			if err != nil || len(got) != 1 || got[0].(*resource.CertAuthority).Spec.ActiveKeys.SSH[0].PublicKey != leafHost.Spec.ActiveKeys.SSH[0].PublicKey {
				t.Fatalf("the leaf's CA changed: %v %+v", err, got)
			}
			rcs, _ := root.Get(ctx, resource.KindRemoteCluster, "leaf.example.com", false)
			if rcs[0].GetMetadata().Labels["env"] != "prod" {
				t.Fatalf("labels changed: %v", rcs[0].GetMetadata().Labels)
			}
		})
	}
	t.Run("rejoin_after_rm_rc_works", func(t *testing.T) {
		if _, err := root.Delete(ctx, resource.KindRemoteCluster, "LEAF.example.com."); err != nil {
			t.Fatal(err)
		}
		newHost := hostCAOf(t, "leaf.example.com")
		if _, err := root.ValidateTrustedCluster(ctx, trustToken(t, root, TokenOptions{}), newHost, "leaf"); err != nil {
			t.Fatal(err)
		}
		got, _ := root.Get(ctx, resource.KindCertAuthority, "leaf.example.com", false)
		if got[0].(*resource.CertAuthority).Spec.ActiveKeys.SSH[0].PublicKey != newHost.Spec.ActiveKeys.SSH[0].PublicKey {
			t.Fatal("re-join did not store the new CA")
		}
	})
}

func TestTokenBoundToOneLeafName(t *testing.T) {
	ctx := context.Background()
	root := newService(t, "root.example.com")
	bound := trustToken(t, root, TokenOptions{ClusterName: "Leaf.example.com."})
	t.Run("another_name_is_a_rejected_token", func(t *testing.T) {
		before := snapshot(t, root)
		_, err := root.ValidateTrustedCluster(ctx, bound, hostCAOf(t, "evil.example.com"), "attacker")
		if !errors.Is(err, ErrTokenRejected) {
			t.Fatalf("got %v", err)
		}
		sameSnapshot(t, before, snapshot(t, root))
	})
	t.Run("the_bound_name_joins", func(t *testing.T) {
		if _, err := root.ValidateTrustedCluster(ctx, bound, hostCAOf(t, "leaf.example.com"), "leaf"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("listed_with_its_name", func(t *testing.T) {
		toks, _ := root.ListTokens(ctx)
		if len(toks) != 1 || toks[0].ClusterName != "leaf.example.com" {
			t.Fatalf("%+v", toks)
		}
	})
	t.Run("bound_token_must_be_trusted_cluster_only", func(t *testing.T) {
		_, _, err := root.AddToken(ctx, TokenOptions{Roles: []string{"node"}, ClusterName: "leaf.example.com"})
		if !errors.Is(err, ErrBadRequest) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("bound_name_must_be_a_cluster_name", func(t *testing.T) {
		_, _, err := root.AddToken(ctx, TokenOptions{Roles: []string{"trusted_cluster"}, ClusterName: "a/../b"})
		if !errors.Is(err, ErrBadRequest) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("unbound_token_stays_multi_use", func(t *testing.T) {
		tok := trustToken(t, root, TokenOptions{})
		for _, n := range []string{"a.example.com", "b.example.com"} {
			if _, err := root.ValidateTrustedCluster(ctx, tok, hostCAOf(t, n), "leaf"); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// selfSignedWithKey is a CA certificate for cn carrying pub, signed by a key of the
// attacker's (it does not hold the private half of pub).
func selfSignedWithKey(t *testing.T, cn string, pub any) string {
	t.Helper()
	_, signer, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestJoinReusingAKnownKeyIsRefused(t *testing.T) {
	ctx := context.Background()
	root := newService(t, "root.example.com")
	other := hostCAOf(t, "other.example.com")
	if _, err := root.ValidateTrustedCluster(ctx, trustToken(t, root, TokenOptions{}), other, "other"); err != nil {
		t.Fatal(err)
	}
	rootUser, _ := root.CA().User.Resource(false)
	rootHost, _ := root.CA().Host.Resource(false)
	rootOpenSSH, _ := root.CA().OpenSSH.Resource(false)
	if err := root.CA().User.Rotate(ca.Init); err != nil {
		t.Fatal(err)
	}
	rotated, _ := root.CA().User.Resource(false)
	if len(rotated.Spec.AdditionalTrustedKeys.SSH) == 0 {
		t.Fatal("rotation init kept no second key")
	}
	rotationKey := &resource.CertAuthority{Spec: resource.CertAuthoritySpec{ActiveKeys: rotated.Spec.AdditionalTrustedKeys}}
	if rotated.Spec.AdditionalTrustedKeys.SSH[0].PublicKey == rootUser.Spec.ActiveKeys.SSH[0].PublicKey {
		rotationKey = &resource.CertAuthority{Spec: resource.CertAuthoritySpec{ActiveKeys: rotated.Spec.ActiveKeys}}
	}
	tlsCA := root.CA().TLS.CACerts()[0]
	fresh := hostCAOf(t, "leaf.example.com")
	withTLS := hostCAOf(t, "leaf.example.com")
	withTLS.Spec.ActiveKeys.TLS = []resource.TLSKeyPair{{Cert: selfSignedWithKey(t, "leaf.example.com", tlsCA.PublicKey)}}
	twice := hostCAOf(t, "leaf.example.com")
	twice.Spec.AdditionalTrustedKeys.SSH = twice.Spec.ActiveKeys.SSH

	for _, tc := range []struct {
		name string
		ca   *resource.CertAuthority
	}{
		{"roots_own_user_key_as_leaf_host_key", keysAs("leaf.example.com", rootUser)},
		{"roots_own_host_key", keysAs("leaf.example.com", rootHost)},
		{"roots_own_openssh_key", keysAs("leaf.example.com", rootOpenSSH)},
		{"roots_rotation_key", keysAs("leaf.example.com", rotationKey)},
		{"roots_tls_CA_key_in_a_forged_certificate", withTLS},
		{"another_leafs_host_key", keysAs("leaf.example.com", other)},
		{"one_key_twice_in_the_request", twice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, root)
			_, err := root.ValidateTrustedCluster(ctx, trustToken(t, root, TokenOptions{}), tc.ca, "attacker")
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "belongs to one cluster and CA type") {
				t.Fatalf("got %v", err)
			}
			after := snapshot(t, root)
			for _, m := range []map[string]string{before, after} {
				for k := range m {
					if strings.HasPrefix(k, tokensPrefix) {
						delete(m, k)
					}
				}
			}
			sameSnapshot(t, before, after)
		})
	}
	t.Run("a_fresh_key_joins", func(t *testing.T) {
		if _, err := root.ValidateTrustedCluster(ctx, trustToken(t, root, TokenOptions{}), fresh, "leaf"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTokenLabelsReachTheRemoteCluster(t *testing.T) {
	ctx := context.Background()
	root := newService(t, "root.example.com")
	tok := trustToken(t, root, TokenOptions{Labels: map[string]string{"env": "prod"}})
	host := hostCAOf(t, "leaf.example.com")
	host.Metadata.Labels = map[string]string{"env": "dev"} // nothing the leaf sends sets labels
	if _, err := root.ValidateTrustedCluster(ctx, tok, host, "leaf"); err != nil {
		t.Fatal(err)
	}
	rcs, err := root.Get(ctx, resource.KindRemoteCluster, "leaf.example.com", false)
	if err != nil || rcs[0].GetMetadata().Labels["env"] != "prod" {
		t.Fatalf("%v %+v", err, rcs)
	}
	if err := root.SetRemoteClusterLabels(ctx, "leaf.example.com", map[string]string{"env": "stage"}); err != nil {
		t.Fatal(err)
	}
	rcs, _ = root.Get(ctx, resource.KindRemoteCluster, "leaf.example.com", false)
	if rcs[0].GetMetadata().Labels["env"] != "stage" {
		t.Fatalf("%+v", rcs[0].GetMetadata().Labels)
	}
	t.Run("bad_labels_are_refused_when_the_token_is_made", func(t *testing.T) {
		_, _, err := root.AddToken(ctx, TokenOptions{Roles: []string{"trusted_cluster"}, Labels: map[string]string{"": "x"}})
		if !errors.Is(err, ErrBadRequest) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestTokensCarryAtLeast128Bits(t *testing.T) {
	ctx := context.Background()
	s := newService(t, "root.example.com")
	tokenDoc := func(name string) []resource.Resource {
		return []resource.Resource{&resource.Token{Kind: "token", Version: "v2", Metadata: resource.Metadata{Name: name},
			Spec: resource.TokenSpec{Roles: []string{"trusted_cluster"}}}}
	}
	for _, tc := range []struct{ name, token, want string }{
		{"short", "abc12345", "at least 32 characters"},
		{"31_hex", strings.Repeat("0123456789abcdef", 2)[:31], "at least 32 characters"},
		{"digits_only", "01234567890123456789012345678901234567", "128 bits"},
		{"repetition", strings.Repeat("ab", 20), "repeats"},
		{"one_char", strings.Repeat("a", 40), "repeats"},
	} {
		t.Run("refuses_"+tc.name, func(t *testing.T) {
			_, err := s.Create(ctx, tokenDoc(tc.token), false)
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), tc.token) {
				t.Fatalf("got %v", err)
			}
		})
	}
	for _, tok := range []string{"3f2a9c0d4b1e8f7a6c5d4e3f2a1b0c9d", "Zq7xK2mP9vL4wR8tY3nB6cF1hJ5gD0sA"} {
		if _, err := s.Create(ctx, tokenDoc(tok), false); err != nil {
			t.Errorf("%s: %v", tok, err)
		}
	}
	t.Run("listing_shows_an_eighth_at_most", func(t *testing.T) {
		toks, err := s.ListTokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range toks {
			if shown := strings.TrimSuffix(tk.Display(), "…"); len(shown)*8 > tk.Length {
				t.Fatalf("%q shows more than an eighth of a %d-character token", tk.Display(), tk.Length)
			}
		}
	})
	t.Run("a_legacy_short_record_is_shown_by_hash", func(t *testing.T) {
		info := TokenInfo{Hash: hashToken("abcd1234"), Prefix: "abcd", Roles: []string{"node"}}
		if d := info.Display(); strings.Contains(d, "abcd") || !strings.HasPrefix(d, "sha256:") || !info.Matches(d) {
			t.Fatalf("display %q", d)
		}
	})
}

func TestRoleInUseCannotBeRemoved(t *testing.T) {
	ctx := context.Background()
	s := newService(t, "leaf.example.com")
	if _, err := s.Create(ctx, mustParse(t, `kind: role
version: v5
metadata: {name: visitor}
spec: {allow: {logins: [visitor]}}
---
kind: role
version: v5
metadata: {name: unused}
spec: {allow: {logins: [visitor]}}
---
kind: user
version: v2
metadata: {name: alice}
spec: {roles: [visitor]}
---
kind: oidc
version: v2
metadata: {name: okta}
spec: {issuer_url: 'https://idp.example.com', client_id: x, redirect_url: 'https://r.example.com/cb', claims_to_roles: [{claim: groups, value: g, roles: [visitor]}]}
---
kind: trusted_cluster
version: v2
metadata: {name: root.example.com}
spec: {enabled: false, token: abc, tunnel_addr: 'a:1', web_proxy_addr: 'a:1', role_map: [{remote: access, local: [visitor]}]}
`), false); err != nil {
		t.Fatal(err)
	}
	_, err := s.Delete(ctx, resource.KindRole, "visitor")
	if !errors.Is(err, ErrBadRequest) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{"user alice", "oidc/okta", "trusted_cluster/root.example.com role_map[0]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not name %s", err, want)
		}
	}
	if ok, _ := s.exists(ctx, resourceKey(resource.KindRole, "visitor")); !ok {
		t.Fatal("the role was removed")
	}
	if _, err := s.Delete(ctx, resource.KindRole, "unused"); err != nil {
		t.Fatal(err)
	}
}

func TestStoredCAsSharingAKeyKeepThePreviousBundle(t *testing.T) {
	ctx := context.Background()
	root := newService(t, "root.example.com")
	rev := root.Revision()
	rootUser, _ := root.CA().User.Resource(false)
	// Written around the checks (as two replicas racing, or a hand-edited store could).
	evil := keysAs("evil.example.com", rootUser)
	data, _ := resource.Marshal(evil)
	if _, err := root.cfg.Store.Put(ctx, state.Item{Key: caKey("evil.example.com", "host"), Value: data}); err != nil {
		t.Fatal(err)
	}
	err := root.Rebuild(ctx)
	if err == nil || !strings.Contains(err.Error(), "belongs to one cluster and CA type") {
		t.Fatalf("got %v", err)
	}
	if root.Revision() != rev {
		t.Fatal("a bundle with a shadowed own key was loaded")
	}
	t.Run("a_new_service_starts_denying_and_says_why", func(t *testing.T) {
		s2, err := New(ctx, Config{ClusterName: root.cfg.ClusterName, CA: root.cfg.CA, Store: root.cfg.Store, Engine: root.cfg.Engine, Logger: root.cfg.Logger})
		if err != nil {
			t.Fatal(err)
		}
		if !s2.stale.Load() {
			t.Fatal("not marked for retry")
		}
	})
}

func TestTrustsEstablishedBeforeKeepNoToken(t *testing.T) {
	ctx := context.Background()
	leaf := newService(t, "leaf.example.com")
	const token = "3f2a9c0d4b1e8f7a6c5d4e3f2a1b0c9d"
	// What an earlier version stored: the trust with its token, and the root's CAs.
	tc := &resource.TrustedCluster{Kind: "trusted_cluster", Version: "v2", Metadata: resource.Metadata{Name: "root.example.com"},
		Spec: resource.TrustedClusterSpec{Enabled: true, Token: token, TunnelAddr: "a:1", WebProxyAddr: "a:1"}}
	rootCA, _ := ca.NewCluster("root.example.com", "")
	rh, _ := rootCA.Host.Resource(false)
	if err := leaf.put(ctx, resourceKey(resource.KindTrustedCluster, "root.example.com"), tc); err != nil {
		t.Fatal(err)
	}
	if err := leaf.put(ctx, caKey("root.example.com", "host"), rh); err != nil {
		t.Fatal(err)
	}
	// A pending trust (no CAs yet) keeps its token: it still needs it.
	pending := *tc
	pending.Metadata.Name, pending.Spec.Enabled = "pending.example.com", false
	if err := leaf.put(ctx, resourceKey(resource.KindTrustedCluster, "pending.example.com"), &pending); err != nil {
		t.Fatal(err)
	}
	restarted, err := New(ctx, Config{ClusterName: leaf.cfg.ClusterName, CA: leaf.cfg.CA, Store: leaf.cfg.Store, Engine: leaf.cfg.Engine, Logger: leaf.cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"root.example.com": "", "pending.example.com": token} {
		rs, err := restarted.Get(ctx, resource.KindTrustedCluster, name, true)
		if err != nil || rs[0].(*resource.TrustedCluster).Spec.Token != want {
			t.Fatalf("%s: %v %+v", name, err, rs)
		}
	}
	// The original file still works.
	tc.Spec.Enabled = false
	if _, err := restarted.Create(ctx, []resource.Resource{tc}, true); err != nil {
		t.Fatal(err)
	}
}

func tlsCAOf(t *testing.T, name string) *resource.CertAuthority {
	t.Helper()
	c, err := ca.NewCluster(name, "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.TLS.Resource(false)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The tunnel's mutual TLS is pinned to the TLS CAs the handshake exchanged: the root
// stores the leaf's for that name only, and refuses one that reuses a known key, belongs
// to another cluster, or shares the leaf's host key.
func TestJoinExchangesTLSCAs(t *testing.T) {
	ctx := context.Background()
	root := newService(t, "root.example.com")
	other := tlsCAOf(t, "other.example.com")
	if _, err := root.ValidateLeaf(ctx, trustToken(t, root, TokenOptions{}), hostCAOf(t, "other.example.com"), other, "other"); err != nil {
		t.Fatal(err)
	}
	rootTLS, _ := root.CA().TLS.Resource(false)
	for _, tc := range []struct {
		name  string
		tls   *resource.CertAuthority
		wants string
	}{
		{"another_leafs_tls_CA", func() *resource.CertAuthority { c := *other; c.Spec.ClusterName = "leaf.example.com"; return &c }(), "belongs to one cluster and CA type"},
		{"the_roots_own_tls_CA", func() *resource.CertAuthority { c := *rootTLS; c.Spec.ClusterName = "leaf.example.com"; return &c }(), "belongs to one cluster and CA type"},
		{"a_tls_CA_of_another_name", tlsCAOf(t, "evil.example.com"), "not the tls CA of"},
		{"a_host_CA_as_tls_CA", hostCAOf(t, "leaf.example.com"), "not the tls CA of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, root)
			_, err := root.ValidateLeaf(ctx, trustToken(t, root, TokenOptions{}), hostCAOf(t, "leaf.example.com"), tc.tls, "attacker")
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.wants) {
				t.Fatalf("got %v, want %q", err, tc.wants)
			}
			after := snapshot(t, root)
			for _, m := range []map[string]string{before, after} {
				for k := range m {
					if strings.HasPrefix(k, tokensPrefix) {
						delete(m, k)
					}
				}
			}
			sameSnapshot(t, before, after)
		})
	}
	t.Run("the_leafs_tls_CA_is_stored_for_its_name_and_the_root_answers_its_own", func(t *testing.T) {
		leafTLS := tlsCAOf(t, "leaf.example.com")
		resp, err := root.ValidateLeaf(ctx, trustToken(t, root, TokenOptions{}), hostCAOf(t, "leaf.example.com"), leafTLS, "leaf")
		if err != nil {
			t.Fatal(err)
		}
		var answered bool
		for _, c := range resp.CAs {
			answered = answered || (c.Type == resource.CATypeTLS && len(c.TLSCerts) == 1 && c.TLSCerts[0] == rootTLS.Spec.ActiveKeys.TLS[0].Cert)
		}
		if !answered {
			t.Fatalf("the root did not answer its TLS CA: %+v", resp.CAs)
		}
		pool, err := root.RemoteClusterTLSPool(ctx, "leaf.example.com")
		if err != nil || pool == nil {
			t.Fatalf("no pool stored for the leaf: %v", err)
		}
		if p, err := root.RemoteClusterTLSPool(ctx, "nobody.example.com"); err != nil || p != nil {
			t.Fatalf("a pool for a cluster that never joined: %v %v", p, err)
		}
	})
}

// TestLeafNamedLikeATopLevelDomainIsRefused: a leaf named as a public suffix (com, co.uk)
// would have users' ssh configs route NODE.com, every host under the suffix, through it
// (tether config's Host *.com block) with its host CA trusted for them; the root refuses
// the name, whatever the token. Names that are no public suffix (leaf, github.io is a
// private one) join.
func TestLeafNamedLikeATopLevelDomainIsRefused(t *testing.T) {
	ctx := context.Background()
	root := newService(t, "root.example.com")
	for _, name := range []string{"com", "co.uk", "COM."} {
		before := snapshot(t, root)
		_, err := root.ValidateTrustedCluster(ctx, trustToken(t, root, TokenOptions{}), hostCAOf(t, name), "leaf")
		if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "public suffix") {
			t.Fatalf("%s: got %v", name, err)
		}
		sameSnapshot(t, withoutTokens(before), withoutTokens(snapshot(t, root)))
	}
	for _, name := range []string{"leaf", "example.com"} {
		if _, err := root.ValidateTrustedCluster(ctx, trustToken(t, root, TokenOptions{}), hostCAOf(t, name), "leaf"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// withoutTokens drops the token records from a store snapshot (a refused join may use up
// its token; nothing else may change).
func withoutTokens(m map[string]string) map[string]string {
	for k := range m {
		if strings.HasPrefix(k, tokensPrefix) {
			delete(m, k)
		}
	}
	return m
}
