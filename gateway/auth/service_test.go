package auth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/state"
)

func newService(t *testing.T, name string) *Service {
	t.Helper()
	st, err := state.OpenEmbedded(state.EmbeddedConfig{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := ca.NewCluster(name, "")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.New(policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	s, err := New(context.Background(), Config{ClusterName: name, CA: c, Store: st, Engine: eng, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustParse(t *testing.T, y string) []resource.Resource {
	t.Helper()
	rs, err := resource.Parse([]byte(y), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestRevisionChangesWithEveryChange(t *testing.T) {
	ctx := context.Background()
	root := newService(t, "root.example.com")
	leaf := newService(t, "leaf.example.com")
	seen := map[string]bool{root.Revision(): true}
	step := func(name string, f func() error) {
		t.Helper()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rev := root.Revision()
		if seen[rev] {
			t.Fatalf("%s: revision %s did not change", name, rev)
		}
		seen[rev] = true
	}
	role := "kind: role\nversion: v5\nmetadata: {name: access}\nspec: {allow: {logins: [ubuntu]}}\n"
	step("create role", func() error { _, err := root.Create(ctx, mustParse(t, role), false); return err })
	step("create --force of the same role", func() error { _, err := root.Create(ctx, mustParse(t, role), true); return err })
	step("create lock", func() error {
		_, err := root.Create(ctx, mustParse(t, "kind: lock\nversion: v2\nmetadata: {name: l1}\nspec: {target: {user: bob}}\n"), false)
		return err
	})
	token, _, err := root.AddToken(ctx, TokenOptions{Roles: []string{resource.TokenRoleTrustedCluster}, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := leaf.CA().Host.Resource(false)
	step("leaf joins", func() error { _, err := root.ValidateTrustedCluster(ctx, token, host, "test"); return err })
	step("set labels", func() error {
		return root.SetRemoteClusterLabels(ctx, "leaf.example.com", map[string]string{"env": "demo"})
	})
	step("rm lock", func() error { _, err := root.Delete(ctx, resource.KindLock, "l1"); return err })
	step("rm rc", func() error { _, err := root.Delete(ctx, resource.KindRemoteCluster, "leaf.example.com"); return err })
}

func TestValidateTrustedCluster(t *testing.T) {
	ctx := context.Background()
	root := newService(t, "root.example.com")
	leaf := newService(t, "leaf.example.com")
	host, _ := leaf.CA().Host.Resource(false)

	t.Run("wrong_token_is_rejected", func(t *testing.T) {
		if _, err := root.ValidateTrustedCluster(ctx, "not-a-token", host, "test"); !errors.Is(err, ErrTokenRejected) || err.Error() != "access denied: the cluster token has been rejected" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("node_token_is_rejected", func(t *testing.T) {
		tok, _, err := root.AddToken(ctx, TokenOptions{Roles: []string{resource.TokenRoleNode}, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := root.ValidateTrustedCluster(ctx, tok, host, "test"); !errors.Is(err, ErrTokenRejected) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("expired_token_is_rejected", func(t *testing.T) {
		tok, _, err := root.AddToken(ctx, TokenOptions{Roles: []string{resource.TokenRoleTrustedCluster}, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		root.cfg.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
		defer func() { root.cfg.Now = time.Now }()
		if _, err := root.ValidateTrustedCluster(ctx, tok, host, "test"); !errors.Is(err, ErrTokenRejected) {
			t.Fatalf("got %v", err)
		}
	})
	tok, _, err := root.AddToken(ctx, TokenOptions{Roles: []string{resource.TokenRoleTrustedCluster}, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("leaf_with_the_roots_name_is_refused", func(t *testing.T) {
		own, _ := root.CA().Host.Resource(false)
		if _, err := root.ValidateTrustedCluster(ctx, tok, own, "test"); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "like this root") {
			t.Fatalf("got %v", err)
		}
	})
	for _, name := range []string{"ROOT.example.com", "root.example.com.", "Root.Example.Com."} {
		t.Run("leaf_named_"+name+"_is_the_roots_own_name", func(t *testing.T) {
			c, _ := ca.NewCluster(name, "")
			h, _ := c.Host.Resource(false)
			if _, err := root.ValidateTrustedCluster(ctx, tok, h, "test"); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "like this root") {
				t.Fatalf("got %v", err)
			}
		})
	}
	t.Run("leaf_name_that_is_not_a_DNS_name_is_refused", func(t *testing.T) {
		for _, name := range []string{"a..b", "-x.example.com", "x_y.exa mple"} {
			h := hostCAOf(t, "placeholder.example.com")
			h.Spec.ClusterName = name
			if _, err := root.ValidateTrustedCluster(ctx, tok, h, "test"); !errors.Is(err, ErrBadRequest) {
				t.Fatalf("%q: got %v", name, err)
			}
		}
	})
	t.Run("the_service_refuses_an_own_name_not_in_normal_form", func(t *testing.T) {
		c, _ := ca.NewCluster("ROOT.example.com", "")
		_, err := New(ctx, Config{ClusterName: "ROOT.example.com", CA: c, Store: root.cfg.Store, Engine: root.cfg.Engine})
		if err == nil || !strings.Contains(err.Error(), `write it as "root.example.com"`) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("token_is_multi_use_and_answers_host_user_and_tls_CAs", func(t *testing.T) {
		for _, name := range []string{"leaf.example.com", "leaf2.example.com"} {
			c, _ := ca.NewCluster(name, "")
			h, _ := c.Host.Resource(false)
			resp, err := root.ValidateTrustedCluster(ctx, tok, h, "test")
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.CAs) != 3 || resp.CAs[0].Type != "host" || resp.CAs[1].Type != "user" || resp.CAs[2].Type != "tls" || resp.CAs[0].ClusterName != "root.example.com" || len(resp.CAs[2].TLSCerts) != 1 {
				t.Fatalf("answer: %+v", resp.CAs)
			}
		}
	})
	t.Run("tokens_are_stored_hashed", func(t *testing.T) {
		items, err := root.cfg.Store.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if strings.Contains(it.Key, tok) || strings.Contains(string(it.Value), tok) {
				t.Fatalf("token stored in plain text under %s", it.Key)
			}
		}
	})
}

func TestCreateRules(t *testing.T) {
	ctx := context.Background()
	s := newService(t, "leaf.example.com")
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"remote_cluster_by_hand", "kind: remote_cluster\nversion: v3\nmetadata: {name: x}\n", "created by the trust handshake"},
		{"cert_authority_by_hand", "kind: cert_authority\nversion: v2\nmetadata: {name: x}\nspec: {type: user, cluster_name: x}\n", "not created by hand"},
		{"user_with_missing_role", "kind: user\nversion: v2\nmetadata: {name: bob}\nspec: {roles: [nope]}\n", `role "nope" does not exist`},
		{"trusted_cluster_with_own_name", "kind: trusted_cluster\nversion: v2\nmetadata: {name: leaf.example.com}\nspec: {token: abc, tunnel_addr: 'a:1', web_proxy_addr: 'a:1'}\n", "own name"},
		{"trusted_cluster_with_masked_token", "kind: trusted_cluster\nversion: v2\nmetadata: {name: root}\nspec: {token: '********', tunnel_addr: 'a:1', web_proxy_addr: 'a:1'}\n", "mask"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Create(ctx, mustParse(t, tc.yaml), false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	t.Run("disabled_trust_is_stored_without_a_handshake", func(t *testing.T) {
		_, err := s.Create(ctx, mustParse(t, "kind: trusted_cluster\nversion: v2\nmetadata: {name: root}\nspec: {enabled: false, token: abc, tunnel_addr: '127.0.0.1:1', web_proxy_addr: '127.0.0.1:1'}\n"), false)
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("enabling_without_root_CAs_runs_the_handshake", func(t *testing.T) {
		_, err := s.Create(ctx, mustParse(t, "kind: trusted_cluster\nversion: v2\nmetadata: {name: root}\nspec: {enabled: true, token: abc, tunnel_addr: '127.0.0.1:1', web_proxy_addr: '127.0.0.1:1'}\n"), true)
		if err == nil || !strings.Contains(err.Error(), "establishing trust with root") {
			t.Fatalf("got %v", err)
		}
	})
}
