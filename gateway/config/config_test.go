package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/state/redistest"
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
	// One port by default: the tunnel shares the web port (and its public address).
	if c.Proxy.PublicAddr != "127.0.0.1:3080" || c.Proxy.TunnelPublicAddr != "127.0.0.1:3080" || c.Proxy.TunnelListenAddr != "127.0.0.1:3080" || !c.Proxy.TunnelShared() || c.TrustTimeout != 30*time.Second ||
		c.Proxy.TunnelCAExchangeInterval != time.Minute || c.Proxy.SSHMaxStartups != 100 || c.Proxy.SSHMaxStartupsPerSource != 30 ||
		c.Proxy.WebMaxUnrouted != 1024 || c.Proxy.WebMaxUnroutedPerSource != 128 || c.Proxy.WebMaxConnectionsPerSource != 1000 {
		t.Fatalf("derived defaults: %+v", c.Proxy)
	}
	// Behind a load balancer on 443 the shared tunnel is advertised at public_addr.
	c, err = Load(write(t, "cluster_name: a\ndata_dir: /tmp/x\nproxy:\n  web_listen_addr: 0.0.0.0:3080\n  public_addr: root.example.com:443\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Proxy.TunnelPublicAddr != "root.example.com:443" || !c.Proxy.TunnelShared() {
		t.Fatalf("shared tunnel behind a balancer: %+v", c.Proxy)
	}
	// An explicit other port keeps separate listeners, advertised at public_addr's host.
	c, err = Load(write(t, "cluster_name: a\ndata_dir: /tmp/x\nproxy:\n  web_listen_addr: 0.0.0.0:3080\n  public_addr: root.example.com:3080\n  tunnel_listen_addr: 0.0.0.0:3024\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Proxy.TunnelPublicAddr != "root.example.com:3024" || c.Proxy.TunnelShared() || c.Proxy.TunnelListenDefaulted {
		t.Fatalf("separate tunnel port: %+v", c.Proxy)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"missing_cluster_name", "data_dir: /tmp\n", "cluster_name is required"},
		{"unknown_key", "cluster_name: a\nclustr_name: b\n", "clustr_name"},
		{"bad_storage", "cluster_name: a\nstorage: {type: etcd}\n", "storage.type"},
		{"redis_without_addr", "cluster_name: a\nstorage: {type: redis}\n", "storage.redis.addr"},
		{"bad_listen", "cluster_name: a\nproxy: {web_listen_addr: nope}\n", "web_listen_addr"},
		{"ca_exchange_too_often", "cluster_name: a\nproxy: {tunnel_ca_exchange_interval: 100ms}\n", "proxy.tunnel_ca_exchange_interval 100ms: give at least 1s"},
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

// TestSecureConnectionSettings: Redis TLS and the decision-log upload's token file, CA
// file and masks are read from tether.yaml and from TETHER_* variables, files are checked
// at load, and a CA file without tls.enabled is refused rather than silently unused.
func TestSecureConnectionSettings(t *testing.T) {
	pki, err := redistest.WritePKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base := "cluster_name: a\ndata_dir: /tmp/x\nstorage:\n  type: redis\n  redis:\n    addr: 127.0.0.1:6380\n"

	t.Run("from_the_file", func(t *testing.T) {
		c, err := Load(write(t, base+"    tls:\n      enabled: true\n      ca_file: "+pki.CAFile+
			"\n      cert_file: "+pki.ClientCert+"\n      key_file: "+pki.ClientKey+"\n      server_name: "+redistest.ServerName+
			"\npolicy:\n  decision_log:\n    upload_url: https://logs.example.com/v1\n    upload_token_file: "+pki.CAFile+
			"\n    upload_ca_file: "+pki.CAFile+"\n    masks:\n      - path: /input/cert/traits/email\n      - op: upsert\n        path: /input/x\n        value: '***'\n"))
		if err != nil {
			t.Fatal(err)
		}
		tc, err := c.Storage.Redis.TLSConfig()
		if err != nil || tc == nil || tc.ServerName != redistest.ServerName || tc.RootCAs == nil || len(tc.Certificates) != 1 {
			t.Fatalf("TLS config %+v, %v", tc, err)
		}
		d, ok := c.DecisionLogConfig()
		if !ok || d.Upload.TokenFile != pki.CAFile || d.Upload.CAFile != pki.CAFile || len(d.Masks) != 2 ||
			d.Masks[0].Path != "/input/cert/traits/email" || d.Masks[1].Op != "upsert" || d.Masks[1].Value != "***" {
			t.Fatalf("decision log config %+v", d)
		}
	})

	t.Run("from_the_environment", func(t *testing.T) {
		t.Setenv("TETHER_STORAGE_REDIS_TLS_ENABLED", "true")
		t.Setenv("TETHER_STORAGE_REDIS_TLS_CA_FILE", pki.CAFile)
		t.Setenv("TETHER_STORAGE_REDIS_TLS_CERT_FILE", pki.ClientCert)
		t.Setenv("TETHER_STORAGE_REDIS_TLS_KEY_FILE", pki.ClientKey)
		t.Setenv("TETHER_POLICY_DECISION_LOG_UPLOAD_URL", "https://logs.example.com/v1")
		t.Setenv("TETHER_POLICY_DECISION_LOG_UPLOAD_TOKEN_FILE", pki.CAFile)
		t.Setenv("TETHER_POLICY_DECISION_LOG_UPLOAD_CA_FILE", pki.CAFile)
		t.Setenv("TETHER_POLICY_DECISION_LOG_MASKS", "/input/a, /input/b")
		c, err := Load(write(t, base))
		if err != nil {
			t.Fatal(err)
		}
		tc, err := c.Storage.Redis.TLSConfig()
		if err != nil || tc == nil || tc.ServerName != "127.0.0.1" || len(tc.Certificates) != 1 {
			t.Fatalf("TLS config %+v, %v", tc, err)
		}
		d, _ := c.DecisionLogConfig()
		if d.Upload.TokenFile != pki.CAFile || d.Upload.CAFile != pki.CAFile || len(d.Masks) != 2 || d.Masks[1].Path != "/input/b" || d.Masks[1].Op != "remove" {
			t.Fatalf("decision log config %+v", d)
		}
		t.Setenv("TETHER_POLICY_DECISION_LOG_MASKS", `[{"op":"upsert","path":"/input/c","value":"x"}]`)
		if c, err = Load(write(t, base)); err != nil {
			t.Fatal(err)
		}
		if m := c.Policy.DecisionLog.Masks; len(m) != 1 || m[0].Op != "upsert" || m[0].Value != "x" {
			t.Fatalf("JSON masks %+v", m)
		}
	})

	for _, tc := range []struct{ name, yaml, want string }{
		{"ca_file_without_enabled", base + "    tls:\n      ca_file: " + pki.CAFile + "\n", "tls.enabled is false"},
		{"missing_ca_file", base + "    tls:\n      enabled: true\n      ca_file: /nonexistent.pem\n", "storage.redis.tls.ca_file"},
		{"ca_file_without_pem", base + "    tls:\n      enabled: true\n      ca_file: " + pki.ClientKey + "\n", "no PEM certificates"},
		{"cert_without_key", base + "    tls:\n      enabled: true\n      cert_file: " + pki.ClientCert + "\n", "go together"},
		{"token_file_without_url", base + "policy:\n  decision_log:\n    upload_token_file: " + pki.CAFile + "\n", "need upload_url"},
		{"missing_token_file", base + "policy:\n  decision_log:\n    upload_url: https://l.example.com\n    upload_token_file: /nonexistent\n", "upload_token_file"},
		{"bad_mask", base + "policy:\n  decision_log:\n    masks:\n      - path: /nowhere/x\n", "policy.decision_log.masks"},
		{"unknown_mask_field", base + "policy:\n  decision_log:\n    masks:\n      - pth: /input/x\n", "pth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Load(write(t, tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestSampleDocumentsSecureConnections: tetherd configure shows every Redis TLS and
// decision-log upload key, with a comment, and the sample still loads.
func TestSampleDocumentsSecureConnections(t *testing.T) {
	for _, key := range []string{"tls:", "enabled:", "# ca_file:", "# cert_file:", "# key_file:", "# server_name:",
		"# upload_token_file:", "# upload_ca_file:", "# upload_cert_file:", "# upload_key_file:", "# masks:"} {
		i := strings.Index(Sample, key)
		if i < 0 {
			t.Errorf("the sample lacks %q", key)
			continue
		}
		// The line before the key is a comment explaining it.
		before := strings.Split(strings.TrimRight(Sample[:i], " "), "\n")
		if prev := strings.TrimSpace(before[len(before)-2]); !strings.HasPrefix(prev, "#") && key != "enabled:" {
			t.Errorf("%q has no comment above it (%q)", key, prev)
		}
	}
}

func TestNodeSection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml, wantErr string
	}{
		{"node_alone_needs_auth_server", "data_dir: /tmp/x\nnode:\n  enabled: true\n  name: n1\n  listen_addr: 127.0.0.1:0\n", "node.auth_server is required"},
		{"node_name_is_a_host_name", "data_dir: /tmp/x\nnode:\n  enabled: true\n  name: 'bad name'\n  auth_server: 127.0.0.1:3080\n", "node.name"},
		{"heartbeat_interval_positive", "data_dir: /tmp/x\nnode:\n  enabled: true\n  name: n1\n  auth_server: 127.0.0.1:3080\n  listen_addr: 127.0.0.1:0\n  heartbeat_interval: 0s\n", "heartbeat_interval"},
		{"proxy_ssh_max_startups_positive", "cluster_name: root.example.com\ndata_dir: /tmp/x\nproxy:\n  ssh_max_startups: 0\n", "proxy.ssh_max_startups"},
		{"proxy_ssh_max_sessions_positive", "cluster_name: root.example.com\ndata_dir: /tmp/x\nproxy:\n  ssh_max_sessions: 0\n", "proxy.ssh_max_sessions"},
		{"max_startups_positive", "data_dir: /tmp/x\nnode:\n  enabled: true\n  name: n1\n  auth_server: 127.0.0.1:3080\n  listen_addr: 127.0.0.1:0\n  max_startups: 0\n", "node.max_startups"},
		{"max_sessions_positive", "data_dir: /tmp/x\nnode:\n  enabled: true\n  name: n1\n  auth_server: 127.0.0.1:3080\n  listen_addr: 127.0.0.1:0\n  max_sessions: -1\n", "node.max_sessions"},
		{"max_remote_forwards_positive", "data_dir: /tmp/x\nnode:\n  enabled: true\n  name: n1\n  auth_server: 127.0.0.1:3080\n  listen_addr: 127.0.0.1:0\n  max_remote_forwards: 0\n", "node.max_remote_forwards"},
		{"max_net_helpers_positive", "data_dir: /tmp/x\nnode:\n  enabled: true\n  name: n1\n  auth_server: 127.0.0.1:3080\n  listen_addr: 127.0.0.1:0\n  max_net_helpers: -3\n", "node.max_net_helpers"},
		{"missing_pin_file", "data_dir: /tmp/x\nnode:\n  enabled: true\n  name: n1\n  auth_server: 127.0.0.1:3080\n  listen_addr: 127.0.0.1:0\n  ca_pin_file: /nonexistent/ca.pem\n", "node.ca_pin_file"},
		{"cluster_still_needs_a_name_without_a_node", "data_dir: /tmp/x\n", "cluster_name is required"},
		{"public_addr_needed_on_all_addresses", "data_dir: /tmp/x\nnode:\n  enabled: true\n  name: n1\n  auth_server: 127.0.0.1:3080\n", "node.public_addr is required"},
		{"node_alone", "data_dir: /tmp/x\nnode:\n  enabled: true\n  name: n1\n  auth_server: 127.0.0.1:3080\n  public_addr: n1.example.com:3022\n", ""},
		{"node_beside_a_cluster", "cluster_name: root.example.com\ndata_dir: /tmp/x\nnode:\n  enabled: true\n  name: n1\n  public_addr: n1.example.com:3022\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "tether.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(p)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Node.HeartbeatInterval != 30*time.Second || c.Node.ListenAddr != "0.0.0.0:3022" ||
					c.Node.MaxStartups != 100 || c.Node.MaxStartupsPerSource != 50 || c.Node.MaxSessions != 10 || c.Node.MaxRemoteForwards != 32 ||
					c.Node.MaxNetHelpers != 256 {
					t.Fatalf("defaults: %+v", c.Node)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// The bounds that keep one source, or a flood of silent connections, from taking every
// place: each has its documented default, is in the sample with it, and refuses zero and
// negative values by name (a bound of zero would refuse everyone; of -1, panic or mean none).
func TestPerSourceBounds(t *testing.T) {
	t.Parallel()
	const (
		proxy = "cluster_name: root.example.com\ndata_dir: /tmp/x\nproxy:\n"
		node  = "data_dir: /tmp/x\nnode:\n  enabled: true\n  name: n1\n  auth_server: 127.0.0.1:3080\n  listen_addr: 127.0.0.1:0\n"
	)
	for _, tc := range []struct {
		key     string // as written in the file, section first
		base    string // a configuration that loads, ending in the key's section
		def     int
		current func(*Config) int
	}{
		{"proxy.ssh_max_startups_per_source", proxy, 30, func(c *Config) int { return c.Proxy.SSHMaxStartupsPerSource }},
		{"node.max_startups_per_source", node, 50, func(c *Config) int { return c.Node.MaxStartupsPerSource }},
		{"proxy.web_max_unrouted", proxy, 1024, func(c *Config) int { return c.Proxy.WebMaxUnrouted }},
		{"proxy.web_max_unrouted_per_source", proxy, 128, func(c *Config) int { return c.Proxy.WebMaxUnroutedPerSource }},
		{"proxy.web_max_connections_per_source", proxy, 1000, func(c *Config) int { return c.Proxy.WebMaxConnectionsPerSource }},
	} {
		t.Run(tc.key, func(t *testing.T) {
			leaf := tc.key[strings.IndexByte(tc.key, '.')+1:]
			c, err := Load(write(t, tc.base))
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.current(c); got != tc.def {
				t.Errorf("default %d, want %d", got, tc.def)
			}
			if !strings.Contains(Sample, fmt.Sprintf("\n  %s: %d\n", leaf, tc.def)) {
				t.Errorf("the sample does not give %s: %d", leaf, tc.def)
			}
			c, err = Load(write(t, fmt.Sprintf("%s  %s: 7\n", tc.base, leaf)))
			if err != nil || tc.current(c) != 7 {
				t.Fatalf("%s: 7 not taken: %v", leaf, err)
			}
			for _, v := range []int{0, -1} {
				_, err := Load(write(t, fmt.Sprintf("%s  %s: %d\n", tc.base, leaf, v)))
				if want := fmt.Sprintf("%s %d must be positive", tc.key, v); err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("%s: %d: error %v, want %q", leaf, v, err, want)
				}
			}
		})
	}
}

// Unknown keys are reported as tetherd's users wrote them: the dotted key, its line, and
// the keys that section has; every one of the file at once, and no Go type names
// ("'config.Config' has invalid keys"). Maps (node.labels) take any key.
func TestUnknownKeysNameTheKeyAndLine(t *testing.T) {
	path := write(t, "cluster_name: a\ndata_dir: /tmp/x\nproxy:\n  web_listen_addr: 127.0.0.1:3080\n  web_lissten: 1\nfoo: bar\nnode:\n  labels:\n    anything: goes\n  Enabled: false\n")
	_, err := Load(path)
	if err == nil {
		t.Fatal("unknown keys accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		path + ":5: unknown key proxy.web_lissten (proxy has: web_listen_addr, public_addr, tunnel_listen_addr, tunnel_public_addr, tunnel_disable_quic, tunnel_bulk_ssh, tunnel_ca_exchange_interval, ssh_max_startups, ssh_max_startups_per_source, web_max_unrouted, web_max_unrouted_per_source, web_max_connections_per_source, ssh_max_sessions)",
		path + ":6: unknown key foo (",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	for _, bad := range []string{"config.Config", "decoding failed", "anything", "Enabled"} {
		if strings.Contains(msg, bad) {
			t.Errorf("error %q says %q", msg, bad)
		}
	}
}

// The tunnel shares the web port when both name the same port and the same bind, however
// written: every unspecified form ("", 0.0.0.0, [::]) is one bind (Go listens on all
// addresses for each), a host name is the address Go would listen on. The same port on
// overlapping binds that are not the same (all addresses and one of them) cannot be bound
// twice and would not mean one listener either: refused, saying what to write.
func TestTunnelSharesTheWebPortByAddressNotText(t *testing.T) {
	for _, tc := range []struct {
		name, web, tunnel string
		shared            bool
		err               string
	}{
		{"same_text", "127.0.0.1:3080", "127.0.0.1:3080", true, ""},
		{"all_v4_and_empty_host", "0.0.0.0:3080", ":3080", true, ""},
		{"all_v4_and_all_v6", "0.0.0.0:3080", "[::]:3080", true, ""},
		{"loopback_and_localhost", "127.0.0.1:3080", "localhost:3080", true, ""},
		{"named_port", "127.0.0.1:443", "127.0.0.1:https", true, ""},
		{"zero_ports_same_host", "127.0.0.1:0", "127.0.0.1:0", true, ""},
		{"other_port", "0.0.0.0:3080", "0.0.0.0:3024", false, ""},
		{"other_loopback", "127.0.0.1:3080", "127.0.0.2:3080", false, ""},
		{"all_and_one", "0.0.0.0:3080", "127.0.0.1:3080", false, "proxy.tunnel_listen_addr 127.0.0.1:3080 and proxy.web_listen_addr 0.0.0.0:3080 are the same port on overlapping addresses"},
		{"one_and_all", "127.0.0.1:3080", "[::]:3080", false, "proxy.tunnel_listen_addr [::]:3080 and proxy.web_listen_addr 127.0.0.1:3080 are the same port on overlapping addresses"},
		{"unresolvable", "127.0.0.1:3080", "no-such-host.invalid:3080", false, "proxy.tunnel_listen_addr \"no-such-host.invalid:3080\": cannot resolve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(write(t, fmt.Sprintf("cluster_name: a\ndata_dir: /tmp/x\nproxy:\n  web_listen_addr: %q\n  tunnel_listen_addr: %q\n", tc.web, tc.tunnel)))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Proxy.TunnelShared() != tc.shared {
				t.Fatalf("TunnelShared %v, want %v", c.Proxy.TunnelShared(), tc.shared)
			}
			if tc.shared && c.Proxy.TunnelPublicAddr != c.Proxy.PublicAddr {
				t.Fatalf("a shared tunnel is advertised at %s, not public_addr %s", c.Proxy.TunnelPublicAddr, c.Proxy.PublicAddr)
			}
		})
	}
}

// tunnelBind never panics on what a configuration may hold, and is symmetric: whether two
// addresses are one bind, or overlap, does not depend on which is the web's. Hosts other
// than IP literals, an empty host and localhost are skipped (no DNS while fuzzing).
func FuzzTunnelBind(f *testing.F) {
	for _, s := range [][2]string{{"0.0.0.0:3080", ":3080"}, {"[::]:3080", "127.0.0.1:3080"}, {"localhost:443", "127.0.0.1:https"},
		{"127.0.0.1:0", "127.0.0.1:0"}, {"[::1]:22", "[::ffff:127.0.0.1]:22"}, {"1.2.3.4:99999", ":-1"}, {"[fe80::1%eth0]:80", "[fe80::1]:80"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, web, tunnel string) {
		for _, a := range []string{web, tunnel} {
			if h, _, err := net.SplitHostPort(a); err == nil && h != "" && h != "localhost" && net.ParseIP(h) == nil {
				t.Skip("a host name would need DNS")
			}
		}
		ab, errAB := Proxy{WebListenAddr: web, TunnelListenAddr: tunnel}.tunnelBind()
		ba, errBA := Proxy{WebListenAddr: tunnel, TunnelListenAddr: web}.tunnelBind()
		if ab != ba || (errAB == nil) != (errBA == nil) {
			t.Fatalf("%q %q: %v %v, swapped %v %v", web, tunnel, ab, errAB, ba, errBA)
		}
		if ab && errAB != nil {
			t.Fatalf("%q %q: shared and an error %v", web, tunnel, errAB)
		}
	})
}

// TestPprofOnlyAtDebugWithADiagAddr: Go's profiles are served only with a diagnostic
// address and the debug log level (tetherd start --debug sets it), as Teleport does.
func TestPprofOnlyAtDebugWithADiagAddr(t *testing.T) {
	for _, c := range []struct {
		diag, level string
		want        bool
	}{
		{"127.0.0.1:3000", "debug", true},
		{"127.0.0.1:3000", "DEBUG", true},
		{"127.0.0.1:3000", "info", false},
		{"127.0.0.1:3000", "", false},
		{"127.0.0.1:3000", "warn", false},
		{"127.0.0.1:3000", "nonsense", false},
		{"", "debug", false},
	} {
		cfg := &Config{DiagAddr: c.diag, Log: Log{Level: c.level}}
		if got := cfg.PprofEnabled(); got != c.want {
			t.Errorf("diag_addr %q, log.level %q: pprof %v, want %v", c.diag, c.level, got, c.want)
		}
	}
}

// TestCiphers: ciphers restricts what the user-facing SSH servers offer; empty keeps
// x/crypto's defaults; a cipher x/crypto does not count as secure, or a misspelt one, is
// refused with the list to choose from; TETHER_CIPHERS takes a comma-separated list.
func TestCiphers(t *testing.T) {
	base := "cluster_name: c.example.com\ndata_dir: /tmp/x\n"
	c, err := Load(write(t, base))
	if err != nil || len(c.Ciphers) != 0 {
		t.Fatalf("default: %v %v", c, err)
	}
	c, err = Load(write(t, base+"ciphers: [aes128-gcm@openssh.com, aes256-gcm@openssh.com]\n"))
	if err != nil || strings.Join(c.Ciphers, ",") != "aes128-gcm@openssh.com,aes256-gcm@openssh.com" {
		t.Fatalf("aes-gcm: %v %v", c, err)
	}
	for _, bad := range []string{"3des-cbc", "arcfour", "aes128-cbc", "aes128-gcm"} {
		_, err := Load(write(t, base+"ciphers: ["+bad+"]\n"))
		if err == nil || !strings.Contains(err.Error(), `ciphers: "`+bad+`" is not a supported secure SSH cipher`) || !strings.Contains(err.Error(), "chacha20-poly1305@openssh.com") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	t.Setenv("TETHER_CIPHERS", "aes256-gcm@openssh.com,chacha20-poly1305@openssh.com")
	c, err = Load(write(t, base))
	if err != nil || strings.Join(c.Ciphers, ",") != "aes256-gcm@openssh.com,chacha20-poly1305@openssh.com" {
		t.Fatalf("TETHER_CIPHERS: %v %v", c.Ciphers, err)
	}
}

// TestTunnelBulkSSH: a leaf keeps an SSH tunnel for sessions beside QUIC unless the
// operator says false; a misspelt key is refused like any other.
func TestTunnelBulkSSH(t *testing.T) {
	for _, tc := range []struct {
		name, proxy string
		want        bool
		wantErr     string
	}{
		{"default_on", "", true, ""},
		{"off", "  tunnel_bulk_ssh: false\n", false, ""},
		{"on", "  tunnel_bulk_ssh: true\n", true, ""},
		{"misspelt_refused", "  tunnel_bulk_sh: false\n", false, "unknown key proxy.tunnel_bulk_sh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(write(t, "cluster_name: a\ndata_dir: /tmp/x\nproxy:\n  web_listen_addr: 127.0.0.1:3080\n"+tc.proxy))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Proxy.TunnelBulkSSH != tc.want {
				t.Errorf("tunnel_bulk_ssh = %v, want %v", c.Proxy.TunnelBulkSSH, tc.want)
			}
		})
	}
}

// A file that is missing or is not YAML is said in words, without the libraries' error
// chains ("open X: ...", "While parsing config: yaml: ...").
func TestUnreadableConfigurationIsSaidPlainly(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("proxy:\n  listen_addr: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.yaml"), "no such file"},
		{bad, "is not valid YAML: line 2"},
	} {
		_, err := Load(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "While parsing") ||
			strings.Contains(err.Error(), "open "+tc.path) {
			t.Errorf("%s: %v, want it to say %q plainly", tc.path, err, tc.want)
		}
	}
}
