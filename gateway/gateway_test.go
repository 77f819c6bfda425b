package gateway

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/gateway/config"
	"github.com/tetherproject/tether/gateway/identity"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/resource"
)

func load(t testing.TB, dir string) *config.Config {
	t.Helper()
	return loadWith(t, dir, "")
}

// loadWith is load with more proxy options, as indented YAML lines ("  ssh_max_sessions: 2\n").
func loadWith(t testing.TB, dir, proxy string) *config.Config {
	t.Helper()
	p := filepath.Join(dir, "tether.yaml")
	if err := os.WriteFile(p, []byte("cluster_name: root.example.com\ndata_dir: "+filepath.Join(dir, "data")+"\nproxy:\n  web_listen_addr: 127.0.0.1:0\n"+proxy), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func run(t testing.TB, cfg *config.Config, f func(g *Gateway)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	f(g)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestFirstStartAndRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := load(t, dir)
	var fingerprint string
	run(t, cfg, func(g *Gateway) {
		fi, err := os.Stat(g.AdminIdentityPath())
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("admin identity mode %v", fi.Mode().Perm())
		}
		id, err := identity.Load(g.AdminIdentityPath())
		if err != nil {
			t.Fatal(err)
		}
		// Like Teleport, a new cluster has the preset access role.
		if rs, err := g.auth.Get(context.Background(), "role", "access", false); err != nil || len(rs) != 1 {
			t.Fatalf("preset role access: %v %v", rs, err)
		}
		if !identity.IsAdmin(id.Leaf, "root.example.com") || id.AuthServer != g.Addr() {
			t.Fatalf("identity: cn=%s uris=%v server=%s", id.Leaf.Subject.CommonName, id.Leaf.URIs, id.AuthServer)
		}
		err = filepath.WalkDir(filepath.Join(cfg.DataDir, "ca"), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || filepath.Ext(p) == ".pub" || filepath.Ext(p) == ".crt" {
				return err
			}
			fi, err := d.Info()
			if err == nil && fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v", p, fi.Mode().Perm())
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		fingerprint = g.Auth().CA().User.TrustedKeys()[0].Fingerprint()
		rs, err := resource.Parse([]byte("kind: role\nversion: v5\nmetadata: {name: ops}\nspec: {}\n"), "r.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Auth().Create(context.Background(), rs, false); err != nil {
			t.Fatal(err)
		}
	})
	// A restart keeps the CAs and the resources.
	run(t, load(t, dir), func(g *Gateway) {
		if fp := g.Auth().CA().User.TrustedKeys()[0].Fingerprint(); fp != fingerprint {
			t.Fatalf("user CA changed across a restart: %s != %s", fp, fingerprint)
		}
		if _, err := g.Auth().Get(context.Background(), resource.KindRole, "ops", false); err != nil {
			t.Fatalf("role lost across a restart: %v", err)
		}
	})
}

func TestDecisionLogFile(t *testing.T) {
	dir := t.TempDir()
	cfg := load(t, dir)
	cfg.Policy.DecisionLog.File = filepath.Join(dir, "decisions.jsonl")
	run(t, cfg, func(g *Gateway) {
		_, err := g.Auth().Engine().Decide(context.Background(), &policy.Input{
			Action: policy.ActionSSHSession, Cluster: cfg.ClusterName, Now: time.Now(), Login: "x",
			Cert: policy.Cert{Type: "user", Username: "bob", Principals: []string{"x"}},
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	// Run closed the decision log, which flushes it.
	data, err := os.ReadFile(cfg.Policy.DecisionLog.File)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"decision_id"`) || !strings.Contains(string(data), `"bob"`) {
		t.Fatalf("decision log:\n%s", data)
	}
}

func TestMissingPresetRolesAreRecreatedAtStart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	run(t, load(t, dir), func(g *Gateway) {
		if _, err := g.Auth().Delete(ctx, resource.KindRole, "access"); err != nil {
			t.Fatal(err)
		}
	})
	run(t, load(t, dir), func(g *Gateway) {
		if rs, err := g.Auth().Get(ctx, resource.KindRole, "access", false); err != nil || len(rs) != 1 {
			t.Fatalf("preset role access not recreated: %v", err)
		}
	})
	t.Run("an_operators_own_role_of_that_name_is_kept", func(t *testing.T) {
		run(t, load(t, dir), func(g *Gateway) {
			rs, _ := resource.Parse([]byte("kind: role\nversion: v5\nmetadata: {name: access}\nspec: {allow: {logins: [ops]}}\n"), "r.yaml")
			if _, err := g.Auth().Create(ctx, rs, true); err != nil {
				t.Fatal(err)
			}
		})
		run(t, load(t, dir), func(g *Gateway) {
			rs, _ := g.Auth().Get(ctx, resource.KindRole, "access", false)
			if got := rs[0].(*resource.Role).Spec.Allow.Logins; len(got) != 1 || got[0] != "ops" {
				t.Fatalf("operator's role replaced: %v", got)
			}
		})
	})
}

func TestClusterNameMustBeADNSNameInNormalForm(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"ROOT.example.com", `write it as "root.example.com"`},
		{"root.example.com.", `write it as "root.example.com"`},
		{"root/../x", "cluster name"},
		{"root..example.com", "empty label"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := load(t, dir)
			cfg.ClusterName = tc.name
			_, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v", err)
			}
			if _, err := os.Stat(cfg.DataDir); !os.IsNotExist(err) {
				t.Fatalf("data_dir created for a refused name: %v", err)
			}
		})
	}
}
