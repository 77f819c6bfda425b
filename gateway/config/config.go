// Package config reads tetherd's configuration: one YAML file read with viper, every key
// overridable from the environment as TETHER_<KEY> with dots turned into underscores
// (TETHER_CLUSTER_NAME, TETHER_PROXY_PUBLIC_ADDR, TETHER_STORAGE_REDIS_ADDR). Sample
// returns a commented file with every key and its default.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/spf13/viper"
	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"github.com/tetherproject/tether/policy/decisionlog"
	"github.com/tetherproject/tether/resource"
)

// Config is tetherd's whole configuration.
type Config struct {
	// ClusterName names this cluster; it is the name leaves trust and roots list.
	ClusterName string `mapstructure:"cluster_name"`
	// DataDir holds the CAs, the embedded store and the admin identity.
	DataDir string `mapstructure:"data_dir"`
	// CAAlgorithm is "ed25519" (default) or "ecdsa-p256"; used when the CAs are created.
	CAAlgorithm string `mapstructure:"ca_algorithm"`
	// MaxClockSkew is how far in the future a certificate's valid_after may be and the
	// certificate still be accepted. Zero (the default) accepts none, as Teleport and
	// OpenSSH do; Tether's issuers backdate valid_after by a minute instead.
	MaxClockSkew time.Duration `mapstructure:"max_clock_skew"`
	// Insecure makes this cluster, as a leaf, accept any TLS certificate from a root's web
	// proxy. For tests with self-signed roots only.
	Insecure bool `mapstructure:"insecure"`
	// RootCAFile is a PEM file of extra CA certificates trusted for roots' web proxies,
	// instead of the system roots (it pins the root): the safe way to trust a root.
	RootCAFile string `mapstructure:"root_ca_file"`
	// TrustTimeout bounds one trust handshake with a root, answer included.
	TrustTimeout time.Duration `mapstructure:"trust_timeout"`
	// DiagAddr, host:port, serves Prometheus metrics (/metrics) and health checks
	// (/healthz, /readyz) over plain HTTP, as Teleport's --diag-addr; at debug level also
	// Go's profiles (/debug/pprof/, see PprofEnabled). Empty: off.
	DiagAddr string `mapstructure:"diag_addr"`
	// Ciphers, when set, are the only ciphers the user-facing SSH servers (the proxy's SSH
	// entry, the enforcement point that terminates users' SSH, and a node agent) offer, as Teleport's
	// teleport.ciphers. Empty: x/crypto/ssh's defaults (AES-GCM, ChaCha20-Poly1305,
	// AES-CTR), which OpenSSH clients meet with chacha20-poly1305@openssh.com. Only
	// ciphers x/crypto/ssh counts as secure are accepted.
	Ciphers []string `mapstructure:"ciphers"`
	Proxy   Proxy    `mapstructure:"proxy"`
	Storage Storage  `mapstructure:"storage"`
	Policy  Policy   `mapstructure:"policy"`
	Log     Log      `mapstructure:"log"`
	Node    Node     `mapstructure:"node"`
}

// Node runs a Tether node agent in this process: it joins a cluster with a node token,
// heartbeats its labels and serves SSH itself. With cluster_name empty the process is a
// node only; with cluster_name set it runs beside this cluster's auth service and web
// API (and joins it without a token of its own).
type Node struct {
	// Enabled runs the node agent.
	Enabled bool `mapstructure:"enabled"`
	// Name is the node's name in the cluster (a host name); default the host name.
	Name string `mapstructure:"name"`
	// Labels are the node's labels.
	Labels map[string]string `mapstructure:"labels"`
	// ListenAddr is where the node's SSH server listens, host:port.
	ListenAddr string `mapstructure:"listen_addr"`
	// PublicAddr is where the cluster reaches the SSH server, host:port; default
	// listen_addr (required when that listens on all addresses).
	PublicAddr string `mapstructure:"public_addr"`
	// AuthServer is the cluster's web API, host:port (its proxy.public_addr). Default,
	// beside a cluster: that cluster.
	AuthServer string `mapstructure:"auth_server"`
	// Token is the node token (tetherctl tokens add --type=node), needed for the first
	// start only.
	Token string `mapstructure:"token"`
	// CAPinFile is a PEM file of the cluster's TLS CA certificates (tetherctl status
	// prints their files): it pins the cluster at the join, instead of the system roots.
	CAPinFile string `mapstructure:"ca_pin_file"`
	// HeartbeatInterval is how often the node heartbeats (jittered); the cluster shows
	// it offline after three intervals without one.
	HeartbeatInterval time.Duration `mapstructure:"heartbeat_interval"`
	// MaxStartups is how many connections may be in the SSH handshake at once (each gets
	// 30 s); more are closed unanswered (OpenSSH's MaxStartups). Default 100.
	MaxStartups int `mapstructure:"max_startups"`
	// MaxStartupsPerSource is how many of them may come from one source (an IPv4
	// address, an IPv6 /64), so that one host cannot take every place. Default 50.
	MaxStartupsPerSource int `mapstructure:"max_startups_per_source"`
	// MaxSessions is how many sessions one SSH connection may have open at once; more are
	// refused (OpenSSH's MaxSessions). Default 10.
	MaxSessions int `mapstructure:"max_sessions"`
	// MaxRemoteForwards is how many remote forwards (ssh -R) one SSH connection may hold
	// at once; more are refused (each is a helper process of the login's). Default 32.
	MaxRemoteForwards int `mapstructure:"max_remote_forwards"`
	// MaxNetHelpers is how many port forwarding helper processes (≈ 4 MB each) a root
	// agent runs at once; a forward needing one more is refused. Default 256.
	MaxNetHelpers int `mapstructure:"max_net_helpers"`
}

// Proxy is the HTTPS web API and the addresses advertised by /webapi/ping.
type Proxy struct {
	// WebListenAddr is where the HTTPS web API listens, host:port.
	WebListenAddr string `mapstructure:"web_listen_addr"`
	// PublicAddr is the address clients and leaves reach the web API at, host:port.
	// Default: WebListenAddr.
	PublicAddr string `mapstructure:"public_addr"`
	// TunnelListenAddr is where the reverse tunnel listens, host:port: QUIC on UDP and
	// the SSH-over-TCP fallback on TCP, both at this port. Default: web_listen_addr, one
	// port for everything: the web port's TCP listener hands tunnel agents' SSH
	// connections (told by their version line) to the tunnel, and QUIC binds UDP at the
	// same port number (a free port for the tunnel when that UDP port is taken). Another
	// port gets separate TCP and UDP listeners of its own.
	TunnelListenAddr string `mapstructure:"tunnel_listen_addr"`
	// TunnelPublicAddr is the reverse tunnel address advertised to leaves (/webapi/ping
	// ssh_tunnel_public_addr; what a leaf's trusted_cluster tunnel_addr holds), host:port.
	// Default: public_addr when the tunnel shares the web port, else public_addr's host
	// and the tunnel's listen port.
	TunnelPublicAddr string `mapstructure:"tunnel_public_addr"`
	// TunnelDisableQUIC serves the tunnel's SSH fallback only (no UDP socket), for roots
	// whose network drops UDP: leaves find UDP refused and use SSH over TCP.
	TunnelDisableQUIC bool `mapstructure:"tunnel_disable_quic"`
	// TunnelBulkSSH, on a leaf (default true), opens an SSH-over-TCP tunnel beside the
	// QUIC tunnel to a root replica while the leaf carries users' SSH sessions (the first
	// session opens it, 10 idle minutes close it) and has the root send sessions over it
	// (x/crypto/ssh over TCP costs less CPU per byte than QUIC: scp through a leaf is
	// faster). false never opens it: one tunnel per root replica, for operators counting
	// connections. Node lists, heartbeats and control stay on QUIC either way.
	TunnelBulkSSH bool `mapstructure:"tunnel_bulk_ssh"`
	// TunnelCAExchangeInterval, on a root (default 1m), is how often it exchanges SSH CAs
	// with each connected leaf, which is how soon a leaf's CA rotation reaches it (its
	// own reach its leaves within a second of each phase).
	TunnelCAExchangeInterval time.Duration `mapstructure:"tunnel_ca_exchange_interval"`
	// SSHMaxStartups is how many connections the user SSH entry holds in their SSH
	// handshake at once (each gets 20 s); more are closed unanswered (OpenSSH's
	// MaxStartups, as its hard limit). Default 100.
	SSHMaxStartups int `mapstructure:"ssh_max_startups"`
	// SSHMaxStartupsPerSource is how many of them may come from one source (an IPv4
	// address, an IPv6 /64), so that one host cannot take every place. Default 30.
	SSHMaxStartupsPerSource int `mapstructure:"ssh_max_startups_per_source"`
	// WebMaxUnrouted is how many connections to the web port may be open before they have
	// sent their first bytes (TLS, SSH, the tunnel: 10 s each); more are closed
	// unanswered. Default 1024.
	WebMaxUnrouted int `mapstructure:"web_max_unrouted"`
	// WebMaxUnroutedPerSource is how many of them may come from one source. Default 128.
	WebMaxUnroutedPerSource int `mapstructure:"web_max_unrouted_per_source"`
	// WebMaxConnectionsPerSource is how many HTTPS connections (node streams included) one
	// source may hold open at once (Teleport's connection_limits.max_connections). Default
	// 1000.
	WebMaxConnectionsPerSource int `mapstructure:"web_max_connections_per_source"`
	// SSHMaxSessions is how many session and direct-tcpip (ssh -J) channels one
	// connection to the user SSH entry may have open at once; more are refused (OpenSSH's
	// MaxSessions, counting both kinds). Default 10.
	SSHMaxSessions int `mapstructure:"ssh_max_sessions"`

	// TunnelListenDefaulted and TunnelPublicDefaulted record that the addresses above
	// were derived, not set: a taken default port then moves to a free one, and the
	// advertised address follows it.
	TunnelListenDefaulted bool `mapstructure:"-"`
	TunnelPublicDefaulted bool `mapstructure:"-"`
}

// TunnelShared reports whether the tunnel is served on the web port: tunnel_listen_addr
// binds the same port on the same addresses as web_listen_addr, however written
// (0.0.0.0, [::] and an empty host all listen on every address; a host name is the
// address it resolves to). Load refuses the same port on overlapping addresses that are
// not the same.
func (p Proxy) TunnelShared() bool {
	shared, err := p.tunnelBind()
	return err == nil && shared
}

// tunnelBind compares the web and tunnel listen addresses: shared when they bind the same
// port on the same addresses; an error when they bind the same port on overlapping
// addresses that are not the same (all addresses and one of them), which could neither
// be bound twice nor mean one listener.
func (p Proxy) tunnelBind() (bool, error) {
	if p.WebListenAddr == p.TunnelListenAddr {
		return true, nil // the default, including port 0 (tests): one listener
	}
	wip, wport, err := listenBind("proxy.web_listen_addr", p.WebListenAddr)
	if err != nil {
		return false, err
	}
	tip, tport, err := listenBind("proxy.tunnel_listen_addr", p.TunnelListenAddr)
	if err != nil {
		return false, err
	}
	if wport != tport || wport == 0 {
		return false, nil // port 0 written twice differently: two free ports
	}
	switch {
	case wip == nil && tip == nil:
		return true, nil
	case wip == nil || tip == nil:
		return false, fmt.Errorf("proxy.tunnel_listen_addr %s and proxy.web_listen_addr %s are the same port on overlapping addresses: "+
			"to serve the tunnel on the web port write the same address in both (or leave tunnel_listen_addr out); else give the tunnel another port",
			p.TunnelListenAddr, p.WebListenAddr)
	case wip.Equal(tip):
		return true, nil
	}
	return false, nil
}

// listenBind is the port number addr listens on and the IP address it binds: nil for
// every address (an empty host or an unspecified address), else the address Go's
// net.Listen would use for the host.
func listenBind(key, addr string) (net.IP, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, 0, fmt.Errorf("%s %q: want host:port", key, addr)
	}
	port, err := net.LookupPort("tcp", p)
	if err != nil {
		return nil, 0, fmt.Errorf("%s %q: %q is not a port", key, addr, p)
	}
	if host == "" {
		return nil, port, nil
	}
	ip := net.ParseIP(host)
	if ip == nil {
		a, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, 0, fmt.Errorf("%s %q: cannot resolve %s", key, addr, host)
		}
		ip = a.IP
	}
	if ip == nil || ip.IsUnspecified() {
		return nil, port, nil
	}
	return ip, port, nil
}

// Storage selects where resources live.
type Storage struct {
	// Type is "embedded" (default; a log file under data_dir/state) or "redis".
	Type  string `mapstructure:"type"`
	Redis Redis  `mapstructure:"redis"`
}

// Redis configures the Redis store.
type Redis struct {
	Addr     string `mapstructure:"addr"`
	Username string `mapstructure:"username"`
	Password string `mapstructure:"password"`
	DB       int    `mapstructure:"db"`
	// Namespace keeps this cluster's keys apart; default the cluster name with
	// characters Redis namespaces refuse replaced by "_".
	Namespace string `mapstructure:"namespace"`
	// MinReplicas, when positive, makes each resource write wait for that many replicas.
	MinReplicas int      `mapstructure:"min_replicas"`
	TLS         RedisTLS `mapstructure:"tls"`
}

// RedisTLS makes tetherd reach Redis over TLS (redis-server's tls-port).
type RedisTLS struct {
	// Enabled dials the server with TLS. The files below are refused without it, so a
	// CA file never silently goes unused over a plain connection.
	Enabled bool `mapstructure:"enabled"`
	// CAFile is a PEM file of the CAs the server's certificate must chain to; default
	// the system roots.
	CAFile string `mapstructure:"ca_file"`
	// CertFile and KeyFile are a client certificate and key (PEM) for servers that
	// require one (tls-auth-clients yes). Both or neither.
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// ServerName is the name the server's certificate must carry; default the host of
	// storage.redis.addr.
	ServerName string `mapstructure:"server_name"`
}

// Policy configures the decision engine.
type Policy struct {
	// ModulesDir holds operators' Rego modules (package tether.custom); optional.
	ModulesDir  string      `mapstructure:"modules_dir"`
	DecisionLog DecisionLog `mapstructure:"decision_log"`
	// Evaluator evaluates the engine's stages: "planned" (the default: OPA's plan of the
	// bundle's Rego, evaluated in Go) or "topdown" (OPA's topdown evaluator). Both give
	// the same decisions; planned is several times faster. The public query is always
	// topdown's.
	Evaluator string `mapstructure:"evaluator"`
}

// DecisionLog configures the decision log sinks.
type DecisionLog struct {
	// File appends JSON lines to this path (created 0600).
	File string `mapstructure:"file"`
	// Console writes JSON lines to stdout.
	Console bool `mapstructure:"console"`
	// UploadURL uploads events with OPA's decision-log protocol.
	UploadURL string `mapstructure:"upload_url"`
	// SpoolDir keeps undelivered batches; default data_dir/decision-spool when any sink is set.
	SpoolDir string `mapstructure:"spool_dir"`
	// UploadTokenFile holds the bearer token sent to UploadURL (one line).
	UploadTokenFile string `mapstructure:"upload_token_file"`
	// UploadCAFile is a PEM file of the CAs UploadURL's certificate must chain to;
	// default the system roots.
	UploadCAFile string `mapstructure:"upload_ca_file"`
	// UploadCertFile and UploadKeyFile are a client certificate and key for UploadURL.
	UploadCertFile string `mapstructure:"upload_cert_file"`
	UploadKeyFile  string `mapstructure:"upload_key_file"`
	// Masks are applied to every event after the built-in masks (which erase tokens,
	// passwords and secret traits), in OPA's mask syntax: {op: remove|upsert, path:
	// /input/..., value: ...}. As TETHER_POLICY_DECISION_LOG_MASKS: a JSON array of the
	// same, or comma-separated paths to remove.
	Masks []decisionlog.MaskRule `mapstructure:"masks"`
}

// Log configures tetherd's own log.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `mapstructure:"level"`
	// Format is text or json.
	Format string `mapstructure:"format"`
}

// Storage types.
const (
	StorageEmbedded = "embedded"
	StorageRedis    = "redis"
)

var defaults = map[string]any{
	"cluster_name":                          "",
	"data_dir":                              "/var/lib/tether",
	"ca_algorithm":                          "ed25519",
	"max_clock_skew":                        "0s",
	"insecure":                              false,
	"root_ca_file":                          "",
	"trust_timeout":                         "30s",
	"diag_addr":                             "",
	"ciphers":                               []string{},
	"proxy.web_listen_addr":                 "0.0.0.0:3080",
	"proxy.public_addr":                     "",
	"proxy.tunnel_public_addr":              "",
	"proxy.tunnel_listen_addr":              "",
	"proxy.tunnel_disable_quic":             false,
	"proxy.tunnel_bulk_ssh":                 true,
	"proxy.tunnel_ca_exchange_interval":     "1m",
	"proxy.ssh_max_startups":                100,
	"proxy.ssh_max_startups_per_source":     30,
	"proxy.web_max_unrouted":                1024,
	"proxy.web_max_unrouted_per_source":     128,
	"proxy.web_max_connections_per_source":  1000,
	"proxy.ssh_max_sessions":                10,
	"storage.type":                          StorageEmbedded,
	"storage.redis.addr":                    "",
	"storage.redis.username":                "",
	"storage.redis.password":                "",
	"storage.redis.db":                      0,
	"storage.redis.namespace":               "",
	"storage.redis.min_replicas":            0,
	"policy.modules_dir":                    "",
	"policy.evaluator":                      "planned",
	"policy.decision_log.file":              "",
	"policy.decision_log.console":           false,
	"policy.decision_log.upload_url":        "",
	"policy.decision_log.spool_dir":         "",
	"policy.decision_log.upload_token_file": "",
	"policy.decision_log.upload_ca_file":    "",
	"policy.decision_log.upload_cert_file":  "",
	"policy.decision_log.upload_key_file":   "",
	"policy.decision_log.masks":             []any{},
	"storage.redis.tls.enabled":             false,
	"storage.redis.tls.ca_file":             "",
	"storage.redis.tls.cert_file":           "",
	"storage.redis.tls.key_file":            "",
	"storage.redis.tls.server_name":         "",
	"node.enabled":                          false,
	"node.name":                             "",
	"node.labels":                           map[string]string{},
	"node.listen_addr":                      "0.0.0.0:3022",
	"node.public_addr":                      "",
	"node.auth_server":                      "",
	"node.token":                            "",
	"node.ca_pin_file":                      "",
	"node.heartbeat_interval":               "30s",
	"node.max_startups":                     100,
	"node.max_startups_per_source":          50,
	"node.max_sessions":                     10,
	"node.max_remote_forwards":              32,
	"node.max_net_helpers":                  256,
	"log.level":                             "info",
	"log.format":                            "text",
}

// Load reads the file at path (empty: no file, defaults and environment only), applies
// TETHER_* environment overrides, fills derived defaults and validates the result.
// Unknown keys in the file are an error naming them.
func Load(path string) (*Config, error) {
	v := viper.New()
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix("TETHER")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if path != "" {
		if err := checkReadableYAML(path); err != nil {
			return nil, err
		}
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("reading configuration %s: %w", path, err)
		}
	}
	if err := masksFromEnv(v); err != nil {
		return nil, err
	}
	if path != "" {
		if unknown := unknownKeys(path); len(unknown) > 0 {
			return nil, fmt.Errorf("configuration %s has keys tetherd does not know (tetherd configure prints every key):\n  %s", path, strings.Join(unknown, "\n  "))
		}
	}
	var c Config
	if err := v.UnmarshalExact(&c); err != nil {
		return nil, fmt.Errorf("reading configuration %s: %w", path, err)
	}
	if err := c.complete(); err != nil {
		if path != "" {
			return nil, fmt.Errorf("configuration %s: %w", path, err)
		}
		return nil, fmt.Errorf("configuration: %w", err)
	}
	return &c, nil
}

const masksKey = "policy.decision_log.masks"

// masksFromEnv turns TETHER_POLICY_DECISION_LOG_MASKS, a string, into mask rules: a JSON
// array of {op, path, value}, or comma-separated paths to remove.
func masksFromEnv(v *viper.Viper) error {
	s, ok := v.Get(masksKey).(string)
	if !ok {
		return nil
	}
	var rules []any
	if strings.HasPrefix(strings.TrimSpace(s), "[") {
		if err := json.Unmarshal([]byte(s), &rules); err != nil {
			return fmt.Errorf("TETHER_POLICY_DECISION_LOG_MASKS: not a JSON array of mask rules: %w", err)
		}
	} else {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				rules = append(rules, map[string]any{"op": decisionlog.MaskRemove, "path": p})
			}
		}
	}
	v.Set(masksKey, rules)
	return nil
}

// TLSConfig returns the TLS configuration for dialing Redis, or nil when TLS is off. It
// reads the CA and key files, so errors name the key and file to fix.
func (r Redis) TLSConfig() (*tls.Config, error) {
	t := r.TLS
	if !t.Enabled {
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" {
			return nil, errors.New("storage.redis.tls: files or server_name are set but tls.enabled is false; set storage.redis.tls.enabled: true (or TETHER_STORAGE_REDIS_TLS_ENABLED=true)")
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(r.Addr)
		if err != nil {
			return nil, fmt.Errorf("storage.redis.addr %q: want host:port", r.Addr)
		}
		cfg.ServerName = host
	}
	if t.CAFile != "" {
		data, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("storage.redis.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("storage.redis.tls.ca_file %s: no PEM certificates in it", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case t.CertFile != "" && t.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("storage.redis.tls.cert_file and key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case t.CertFile != "" || t.KeyFile != "":
		return nil, errors.New("storage.redis.tls.cert_file and key_file go together: set both or neither")
	}
	return cfg, nil
}

// NodeOnly reports whether this process runs a node agent and no cluster.
func (c *Config) NodeOnly() bool { return c.Node.Enabled && c.ClusterName == "" }

// checkCiphers refuses a cipher x/crypto/ssh does not implement or counts as insecure.
func checkCiphers(ciphers []string) error {
	secure := ssh.SupportedAlgorithms().Ciphers
	for _, c := range ciphers {
		if !slices.Contains(secure, c) {
			return fmt.Errorf("ciphers: %q is not a supported secure SSH cipher: choose among %s", c, strings.Join(secure, ", "))
		}
	}
	return nil
}

// PprofEnabled says whether the diagnostic address serves /debug/pprof/: at debug level
// (tetherd start --debug, or log.level: debug), as Teleport does with --diag-addr and
// --debug.
func (c *Config) PprofEnabled() bool {
	var level slog.Level
	return c.DiagAddr != "" && level.UnmarshalText([]byte(c.Log.Level)) == nil && level <= slog.LevelDebug
}

// SetDiagAddr sets diag_addr (tetherd start --diag-addr), checked as the file's is.
func (c *Config) SetDiagAddr(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("diag_addr %q: give host:port, such as 127.0.0.1:3000", addr)
	}
	c.DiagAddr = addr
	return nil
}

func (c *Config) complete() error {
	if err := checkCiphers(c.Ciphers); err != nil {
		return err
	}
	if c.DiagAddr != "" {
		if err := c.SetDiagAddr(c.DiagAddr); err != nil {
			return err
		}
	}
	if err := c.completeNode(); err != nil {
		return err
	}
	if c.NodeOnly() {
		if c.DataDir == "" {
			return errors.New("data_dir is required")
		}
		return nil
	}
	if c.ClusterName == "" {
		return errors.New("cluster_name is required (or set TETHER_CLUSTER_NAME); a node agent alone sets node.enabled: true and node.auth_server instead")
	}
	if c.DataDir == "" {
		return errors.New("data_dir is required")
	}
	if c.Proxy.WebListenAddr == "" {
		return errors.New("proxy.web_listen_addr is required")
	}
	if _, _, err := net.SplitHostPort(c.Proxy.WebListenAddr); err != nil {
		return fmt.Errorf("proxy.web_listen_addr %q: want host:port", c.Proxy.WebListenAddr)
	}
	if c.Proxy.SSHMaxStartups <= 0 {
		return fmt.Errorf("proxy.ssh_max_startups %d must be positive", c.Proxy.SSHMaxStartups)
	}
	if c.Proxy.SSHMaxStartupsPerSource <= 0 {
		return fmt.Errorf("proxy.ssh_max_startups_per_source %d must be positive", c.Proxy.SSHMaxStartupsPerSource)
	}
	if c.Proxy.WebMaxUnrouted <= 0 {
		return fmt.Errorf("proxy.web_max_unrouted %d must be positive", c.Proxy.WebMaxUnrouted)
	}
	if c.Proxy.WebMaxUnroutedPerSource <= 0 {
		return fmt.Errorf("proxy.web_max_unrouted_per_source %d must be positive", c.Proxy.WebMaxUnroutedPerSource)
	}
	if c.Proxy.WebMaxConnectionsPerSource <= 0 {
		return fmt.Errorf("proxy.web_max_connections_per_source %d must be positive", c.Proxy.WebMaxConnectionsPerSource)
	}
	if c.Proxy.SSHMaxSessions <= 0 {
		return fmt.Errorf("proxy.ssh_max_sessions %d must be positive", c.Proxy.SSHMaxSessions)
	}
	if c.Proxy.PublicAddr == "" {
		c.Proxy.PublicAddr = c.Proxy.WebListenAddr
	}
	if c.Proxy.TunnelListenAddr == "" {
		c.Proxy.TunnelListenAddr = c.Proxy.WebListenAddr
		c.Proxy.TunnelListenDefaulted = true
	}
	if _, err := c.Proxy.tunnelBind(); err != nil {
		return err
	}
	if c.Proxy.TunnelPublicAddr == "" {
		if c.Proxy.TunnelShared() {
			c.Proxy.TunnelPublicAddr = c.Proxy.PublicAddr
		} else {
			host, _, _ := net.SplitHostPort(c.Proxy.PublicAddr)
			_, port, _ := net.SplitHostPort(c.Proxy.TunnelListenAddr)
			c.Proxy.TunnelPublicAddr = net.JoinHostPort(host, port)
		}
		c.Proxy.TunnelPublicDefaulted = true
	}
	for key, addr := range map[string]string{"proxy.public_addr": c.Proxy.PublicAddr, "proxy.tunnel_public_addr": c.Proxy.TunnelPublicAddr, "proxy.tunnel_listen_addr": c.Proxy.TunnelListenAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s %q: want host:port", key, addr)
		}
	}
	if c.MaxClockSkew < 0 {
		return fmt.Errorf("max_clock_skew %v is negative", c.MaxClockSkew)
	}
	if c.Proxy.TunnelCAExchangeInterval < time.Second {
		return fmt.Errorf("proxy.tunnel_ca_exchange_interval %v: give at least 1s", c.Proxy.TunnelCAExchangeInterval)
	}
	if c.TrustTimeout <= 0 {
		return fmt.Errorf("trust_timeout %v must be positive", c.TrustTimeout)
	}
	switch c.CAAlgorithm {
	case "", "ed25519", "ecdsa-p256":
	default:
		return fmt.Errorf("ca_algorithm %q: use ed25519 or ecdsa-p256", c.CAAlgorithm)
	}
	switch c.Storage.Type {
	case "", StorageEmbedded:
		c.Storage.Type = StorageEmbedded
	case StorageRedis:
		if c.Storage.Redis.Addr == "" {
			return errors.New("storage.redis.addr is required with storage.type redis")
		}
	default:
		return fmt.Errorf("storage.type %q: use embedded or redis", c.Storage.Type)
	}
	if c.RootCAFile != "" {
		if _, err := os.Stat(c.RootCAFile); err != nil {
			return fmt.Errorf("root_ca_file: %w", err)
		}
	}
	if _, err := c.Storage.Redis.TLSConfig(); err != nil {
		return err
	}
	dl := c.Policy.DecisionLog
	if dl.UploadURL == "" && (dl.UploadTokenFile != "" || dl.UploadCAFile != "" || dl.UploadCertFile != "" || dl.UploadKeyFile != "") {
		return errors.New("policy.decision_log: upload_token_file, upload_ca_file, upload_cert_file and upload_key_file need upload_url")
	}
	if (dl.UploadCertFile == "") != (dl.UploadKeyFile == "") {
		return errors.New("policy.decision_log.upload_cert_file and upload_key_file go together: set both or neither")
	}
	for _, key := range []struct{ name, path string }{
		{"upload_token_file", dl.UploadTokenFile}, {"upload_ca_file", dl.UploadCAFile},
		{"upload_cert_file", dl.UploadCertFile}, {"upload_key_file", dl.UploadKeyFile},
	} {
		if key.path == "" {
			continue
		}
		if _, err := os.Stat(key.path); err != nil {
			return fmt.Errorf("policy.decision_log.%s: %w", key.name, err)
		}
	}
	if _, err := decisionlog.Mask(decisionlog.Event{}, dl.Masks...); err != nil {
		return fmt.Errorf("policy.decision_log.masks: %w", err)
	}
	return nil
}

func (c *Config) completeNode() error {
	n := &c.Node
	if !n.Enabled {
		return nil
	}
	if n.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node.name is empty and the host name is unknown: %w", err)
		}
		n.Name = strings.ToLower(h)
	}
	if err := resource.CheckClusterName(n.Name); err != nil || resource.NormalizeClusterName(n.Name) != n.Name {
		return fmt.Errorf("node.name %q: a node's name is a host name in lower case (letters, digits, '-', '.'), without a trailing dot", n.Name)
	}
	lh, _, err := net.SplitHostPort(n.ListenAddr)
	if err != nil {
		return fmt.Errorf("node.listen_addr %q: want host:port", n.ListenAddr)
	}
	if ip := net.ParseIP(lh); n.PublicAddr == "" && (lh == "" || (ip != nil && ip.IsUnspecified())) {
		return fmt.Errorf("node.public_addr is required when node.listen_addr (%s) listens on all addresses: the address the cluster reaches this node's SSH server at, host:port", n.ListenAddr)
	}
	if n.PublicAddr != "" {
		if _, _, err := net.SplitHostPort(n.PublicAddr); err != nil {
			return fmt.Errorf("node.public_addr %q: want host:port", n.PublicAddr)
		}
	}
	if n.AuthServer == "" && c.ClusterName == "" {
		return errors.New("node.auth_server is required for a node agent alone: the cluster's web address, host:port")
	}
	if n.AuthServer != "" {
		if _, _, err := net.SplitHostPort(n.AuthServer); err != nil {
			return fmt.Errorf("node.auth_server %q: want host:port", n.AuthServer)
		}
	}
	if n.CAPinFile != "" {
		if _, err := os.Stat(n.CAPinFile); err != nil {
			return fmt.Errorf("node.ca_pin_file: %w", err)
		}
	}
	if n.HeartbeatInterval <= 0 {
		return fmt.Errorf("node.heartbeat_interval %v must be positive", n.HeartbeatInterval)
	}
	if n.MaxStartups <= 0 {
		return fmt.Errorf("node.max_startups %d must be positive", n.MaxStartups)
	}
	if n.MaxStartupsPerSource <= 0 {
		return fmt.Errorf("node.max_startups_per_source %d must be positive", n.MaxStartupsPerSource)
	}
	if n.MaxSessions <= 0 {
		return fmt.Errorf("node.max_sessions %d must be positive", n.MaxSessions)
	}
	if n.MaxRemoteForwards <= 0 {
		return fmt.Errorf("node.max_remote_forwards %d must be positive", n.MaxRemoteForwards)
	}
	if n.MaxNetHelpers <= 0 {
		return fmt.Errorf("node.max_net_helpers %d must be positive", n.MaxNetHelpers)
	}
	return nil
}

// DecisionLogConfig is the decision logger's configuration for this cluster, or false
// when no sink is configured.
func (c *Config) DecisionLogConfig() (decisionlog.Config, bool) {
	dl := c.Policy.DecisionLog
	if dl.File == "" && !dl.Console && dl.UploadURL == "" {
		return decisionlog.Config{}, false
	}
	d := decisionlog.Config{Cluster: c.ClusterName, FilePath: dl.File, SpoolDir: dl.SpoolDir, Masks: dl.Masks}
	if d.SpoolDir == "" {
		d.SpoolDir = filepath.Join(c.DataDir, "decision-spool")
	}
	if dl.Console {
		d.Console = os.Stdout
	}
	d.Upload = decisionlog.UploadConfig{
		URL: dl.UploadURL, TokenFile: dl.UploadTokenFile, CAFile: dl.UploadCAFile,
		CertFile: dl.UploadCertFile, KeyFile: dl.UploadKeyFile,
	}
	return d, true
}

// Sample is a commented configuration file with every key, printed by tetherd configure.
const Sample = `# tetherd configuration. Every key can be overridden from the environment as
# TETHER_<KEY>, dots replaced by underscores: TETHER_CLUSTER_NAME, TETHER_PROXY_PUBLIC_ADDR,
# TETHER_STORAGE_REDIS_ADDR, ...

# The cluster's name: leaves trust it by this name, a root lists a leaf under it. Required.
cluster_name: root.example.com

# Holds the certificate authorities (ca/), the embedded store (state/) and the admin
# identity (admin-identity.pem, for tetherctl). Keep it private.
data_dir: /var/lib/tether

# Key algorithm of the CAs created at first start: ed25519 or ecdsa-p256.
ca_algorithm: ed25519

# How far in the future a certificate's valid_after may be and the certificate still be
# accepted. 0s (the default): a certificate is not valid before its valid_after, as in
# Teleport and OpenSSH; Tether's issuers already backdate valid_after by a minute. Raise it
# only for clients whose clocks run behind the issuer's.
max_clock_skew: 0s

# As a leaf: accept ANY TLS certificate from a root's web proxy when establishing trust.
# For testing with self-signed roots only; prefer root_ca_file.
insecure: false

# As a leaf: the CA certificates (PEM) a root's web proxy must chain to: this file pins
# the root (the system's roots are not used when it is set).
root_ca_file: ""

# As a leaf: how long one trust handshake with a root may take.
trust_timeout: 30s

# Diagnostic server (plain HTTP; bind it to loopback or a management network): Prometheus
# metrics on /metrics, liveness on /healthz, readiness on /readyz; at debug level
# (tetherd start --debug) also Go's profiles on /debug/pprof/. Empty: off. Also
# TETHER_DIAG_ADDR or tetherd start --diag-addr.
diag_addr: ""

# The only ciphers the SSH servers users reach (the proxy's SSH entry, the enforcement
# point, a node agent) offer; empty: AES-GCM, ChaCha20-Poly1305 and AES-CTR, which OpenSSH clients meet
# with chacha20-poly1305@openssh.com. [aes128-gcm@openssh.com, aes256-gcm@openssh.com]
# makes them pick AES-GCM, cheaper for the gateway with AES-NI (scp through a leaf used a
# fifth less CPU there), and refuses clients configured for ChaCha20 only.
ciphers: []

proxy:
  # Where the HTTPS web API (/webapi/ping, the trust handshake, the admin API) listens.
  web_listen_addr: 0.0.0.0:3080
  # The address users and leaves reach the web API at (default: web_listen_addr).
  public_addr: root.example.com:3080
  # Where the reverse tunnel from leaf clusters listens: QUIC on UDP and the SSH-over-TCP
  # fallback on TCP, both at this port. Default: web_listen_addr (one port: the web port
  # hands tunnel agents' SSH connections to the tunnel; QUIC uses UDP at that port).
  # Another port, as here, gets listeners of its own.
  tunnel_listen_addr: 0.0.0.0:3024
  # The reverse tunnel address advertised by /webapi/ping as ssh_tunnel_public_addr: a
  # leaf's trusted_cluster tunnel_addr (default: public_addr when the tunnel shares the
  # web port, else public_addr's host and the tunnel port).
  tunnel_public_addr: root.example.com:3024
  # Serve the tunnel's SSH fallback only (no UDP), when the network drops UDP.
  tunnel_disable_quic: false
  # As a leaf: while users have SSH sessions (scp, shells) through this leaf, open an
  # SSH-over-TCP tunnel beside each QUIC tunnel to a root and carry the sessions over it,
  # which costs less CPU per byte; closed after 10 minutes without a session. Node lists
  # and heartbeats stay on QUIC. false: never, one tunnel per root replica.
  tunnel_bulk_ssh: true
  # As a root: how often to exchange SSH CAs with each connected leaf, which is how soon a
  # leaf's CA rotation (tetherctl auth rotate) reaches this root; this root's own rotation
  # reaches its leaves within a second of each phase.
  tunnel_ca_exchange_interval: 1m
  # Connections in their SSH handshake at once on the user SSH entry (20 s each); more
  # are closed unanswered, as OpenSSH's MaxStartups.
  ssh_max_startups: 100
  # Of those, from one source (an IPv4 address, an IPv6 /64): one host cannot take every
  # place. Behind a load balancer every client is one source: raise it there.
  ssh_max_startups_per_source: 30
  # Connections to the web port that have not yet sent their first bytes (10 s each), at
  # once and from one source; more are closed unanswered.
  web_max_unrouted: 1024
  web_max_unrouted_per_source: 128
  # HTTPS connections (tether's node streams included) one source may hold open at once,
  # as Teleport's connection_limits.max_connections; more are closed unanswered.
  web_max_connections_per_source: 1000
  # Sessions and ssh -J channels open at once on one connection to the user SSH entry;
  # more are refused, as OpenSSH's MaxSessions.
  ssh_max_sessions: 10

storage:
  # embedded: one process, a log file under data_dir. redis: replicated gateways.
  type: embedded
  redis:
    addr: ""
    username: ""
    password: ""
    db: 0
    # Keeps this cluster's keys apart on a shared server (default: from cluster_name).
    namespace: ""
    # When positive, every resource write waits until this many replicas have it.
    min_replicas: 0
    # Reach Redis over TLS (redis-server's tls-port). The files are PEM.
    tls:
      enabled: false
      # CAs the server's certificate must chain to (default: the system roots).
      # ca_file: /etc/tether/redis-ca.pem
      # A client certificate and key, for a server with tls-auth-clients yes.
      # cert_file: /etc/tether/redis-client.pem
      # key_file: /etc/tether/redis-client-key.pem
      # The name in the server's certificate (default: the host of addr).
      # server_name: redis.example.com

policy:
  # Operators' own Rego modules (package tether.custom), part of every decision.
  modules_dir: ""
  decision_log:
    # JSON lines file (created 0600).
    file: ""
    # Also write events to stdout.
    console: false
    # OPA decision-log upload endpoint, e.g. https://logs.example.com/logs
    upload_url: ""
    # Where undelivered batches wait (default: data_dir/decision-spool when a sink is set).
    spool_dir: ""
    # The upload's bearer token, read from a file (one line; keep it 0600).
    # upload_token_file: /etc/tether/decision-log-token
    # CAs the upload service's certificate must chain to (default: the system roots).
    # upload_ca_file: /etc/tether/decision-log-ca.pem
    # A client certificate and key for the upload service (mutual TLS).
    # upload_cert_file: /etc/tether/decision-log-client.pem
    # upload_key_file: /etc/tether/decision-log-client-key.pem
    # Extra masks, after the built-in ones that erase tokens, passwords and secret
    # traits (OPA's mask syntax). As TETHER_POLICY_DECISION_LOG_MASKS: a JSON array,
    # or comma-separated paths to remove.
    # masks:
    #   - path: /input/cert/traits/email
    #   - op: upsert
    #     path: /input/cert/traits/phone
    #     value: "***"

# A Tether node agent in this process: it joins a cluster with a node token, heartbeats
# its labels and serves SSH itself (user certificates of the cluster's user CA only;
# sessions run as the login's user). Leave cluster_name empty to run a node alone.
node:
  enabled: false
  # The node's name in the cluster (default: the host name).
  name: node1
  labels:
    env: prod
  # Where the node's SSH server listens.
  listen_addr: 0.0.0.0:3022
  # Where the cluster reaches it (required when listen_addr listens on all addresses).
  public_addr: node1.example.com:3022
  # The cluster's web address (default beside a cluster: that cluster).
  auth_server: root.example.com:3080
  # tetherctl tokens add --type=node; needed at the first start only (the identity is
  # kept under data_dir/node).
  token: ""
  # The cluster's TLS CA certificates (PEM): pins the cluster at the join. tetherctl
  # status on the cluster prints the files. The global insecure: true skips this (tests).
  ca_pin_file: ""
  # How often the node heartbeats; it is shown offline after three missed intervals.
  heartbeat_interval: 30s
  # Connections in their SSH handshake at once (30 s each); more are closed unanswered,
  # as OpenSSH's MaxStartups.
  max_startups: 100
  # Of those, from one source (an IPv4 address, an IPv6 /64): one host cannot take every
  # place (the cluster's enforcement point is one source too).
  max_startups_per_source: 50
  # Sessions open at once on one SSH connection; more are refused, as OpenSSH's MaxSessions.
  max_sessions: 10
  # Remote forwards (ssh -R) one SSH connection may hold at once; more are refused.
  max_remote_forwards: 32
  # Port forwarding helper processes (tetherd node-net as the login, about 4 MB each: one
  # per connection that dialed in the last minute, one per ssh -R) at once on this node.
  max_net_helpers: 256

log:
  # debug, info, warn or error
  level: info
  # text or json
  format: text
`

// unknownKeys lists the keys of the YAML file at path that Config has no field for, as
// "PATH:LINE: unknown key a.b (a has: ...)", in file order. Sections are followed into
// structs only: a map (node.labels) takes any key, and list items are left to
// UnmarshalExact. A file that does not parse gives none (viper has said why already).
// checkReadableYAML says in words why the file at path cannot be a configuration (missing,
// unreadable, not YAML), before the libraries' error chains would.
func checkReadableYAML(path string) error {
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("configuration %s: no such file (tetherd configure prints a sample to start from)", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("configuration %s: permission denied (tetherd must be able to read it)", path)
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("configuration %s: cannot be read: %v", path, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("configuration %s is not valid YAML: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return nil
}

func unknownKeys(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	var out []string
	walkKeys(path, doc.Content[0], reflect.TypeOf(Config{}), "", &out)
	return out
}

func walkKeys(path string, n *yaml.Node, t reflect.Type, prefix string, out *[]string) {
	if n.Kind != yaml.MappingNode || t.Kind() != reflect.Struct {
		return
	}
	var names []string
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
		fields[strings.ToLower(name)] = f.Type
	}
	section := strings.TrimSuffix(prefix, ".")
	if section == "" {
		section = "the top level"
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ft, ok := fields[strings.ToLower(k.Value)]
		if !ok {
			*out = append(*out, fmt.Sprintf("%s:%d: unknown key %s%s (%s has: %s)", path, k.Line, prefix, k.Value, section, strings.Join(names, ", ")))
			continue
		}
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Time{}) {
			walkKeys(path, v, ft, prefix+k.Value+".", out)
		}
	}
}
