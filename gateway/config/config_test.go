package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tether.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSampleLoads(t *testing.T) {
	c, err := Load(write(t, Sample))
	if err != nil {
		t.Fatal(err)
	}
	if c.ClusterName != "root.example.com" || c.Storage.Type != StorageEmbedded || c.MaxClockSkew != 0 || c.Proxy.TunnelPublicAddr != "root.example.com:3024" {
		t.Fatalf("%+v", c)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	t.Setenv("TETHER_CLUSTER_NAME", "from-env.example.com")
	t.Setenv("TETHER_PROXY_PUBLIC_ADDR", "env.example.com:443")
	t.Setenv("TETHER_STORAGE_TYPE", "redis")
	t.Setenv("TETHER_STORAGE_REDIS_ADDR", "127.0.0.1:6379")
	c, err := Load(write(t, Sample))
	if err != nil {
		t.Fatal(err)
	}
	if c.ClusterName != "from-env.example.com" || c.Proxy.PublicAddr != "env.example.com:443" || c.Storage.Type != StorageRedis || c.Storage.Redis.Addr != "127.0.0.1:6379" {
		t.Fatalf("%+v", c)
	}
}

func TestDefaultsAndErrors(t *testing.T) {
	c, err := Load(write(t, "cluster_name: a\ndata_dir: /tmp/x\nproxy:\n  web_listen_addr: 127.0.0.1:3080\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Proxy.PublicAddr != "127.0.0.1:3080" || c.Proxy.TunnelPublicAddr != "127.0.0.1:3080" || c.TrustTimeout != 30*time.Second {
		t.Fatalf("derived defaults: %+v", c.Proxy)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"missing_cluster_name", "data_dir: /tmp\n", "cluster_name is required"},
		{"unknown_key", "cluster_name: a\nclustr_name: b\n", "clustr_name"},
		{"bad_storage", "cluster_name: a\nstorage: {type: etcd}\n", "storage.type"},
		{"redis_without_addr", "cluster_name: a\nstorage: {type: redis}\n", "storage.redis.addr"},
		{"bad_listen", "cluster_name: a\nproxy: {web_listen_addr: nope}\n", "web_listen_addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Load(write(t, tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestMaxClockSkew: a certificate is not valid before its valid_after unless the cluster's
// configuration says otherwise; the skew is zero by default and only an explicit key sets it.
func TestMaxClockSkew(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       time.Duration
	}{
		{"default_is_zero", "cluster_name: a\n", 0},
		{"explicit_skew", "cluster_name: a\nmax_clock_skew: 90s\n", 90 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(write(t, tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if c.MaxClockSkew != tc.want {
				t.Fatalf("max_clock_skew = %v, want %v", c.MaxClockSkew, tc.want)
			}
		})
	}
	if _, err := Load(write(t, "cluster_name: a\nmax_clock_skew: -1s\n")); err == nil || !strings.Contains(err.Error(), "max_clock_skew") {
		t.Fatalf("negative skew: got %v", err)
	}
}
