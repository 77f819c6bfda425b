// Package config reads tetherd's configuration: one YAML file read with viper, every key
// overridable from the environment as TETHER_<KEY> with dots turned into underscores
// (TETHER_CLUSTER_NAME, TETHER_PROXY_PUBLIC_ADDR, TETHER_STORAGE_REDIS_ADDR). Sample
// returns a commented file with every key and its default.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/viper"
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
	// on top of the system roots: the safe way to trust a test root.
	RootCAFile string `mapstructure:"root_ca_file"`
	// TrustTimeout bounds one trust handshake with a root, answer included.
	TrustTimeout time.Duration `mapstructure:"trust_timeout"`
	Proxy        Proxy         `mapstructure:"proxy"`
	Storage      Storage       `mapstructure:"storage"`
	Policy       Policy        `mapstructure:"policy"`
	Log          Log           `mapstructure:"log"`
}

// Proxy is the HTTPS web API and the addresses advertised by /webapi/ping.
type Proxy struct {
	// WebListenAddr is where the HTTPS web API listens, host:port.
	WebListenAddr string `mapstructure:"web_listen_addr"`
	// PublicAddr is the address clients and leaves reach the web API at, host:port.
	// Default: WebListenAddr.
	PublicAddr string `mapstructure:"public_addr"`
	// TunnelPublicAddr is the reverse tunnel address advertised to leaves, host:port.
	// Default: PublicAddr.
	TunnelPublicAddr string `mapstructure:"tunnel_public_addr"`
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
	MinReplicas int `mapstructure:"min_replicas"`
}

// Policy configures the decision engine.
type Policy struct {
	// ModulesDir holds operators' Rego modules (package tether.custom); optional.
	ModulesDir  string      `mapstructure:"modules_dir"`
	DecisionLog DecisionLog `mapstructure:"decision_log"`
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
	"cluster_name":                   "",
	"data_dir":                       "/var/lib/tether",
	"ca_algorithm":                   "ed25519",
	"max_clock_skew":                 "0s",
	"insecure":                       false,
	"root_ca_file":                   "",
	"trust_timeout":                  "30s",
	"proxy.web_listen_addr":          "0.0.0.0:3080",
	"proxy.public_addr":              "",
	"proxy.tunnel_public_addr":       "",
	"storage.type":                   StorageEmbedded,
	"storage.redis.addr":             "",
	"storage.redis.username":         "",
	"storage.redis.password":         "",
	"storage.redis.db":               0,
	"storage.redis.namespace":        "",
	"storage.redis.min_replicas":     0,
	"policy.modules_dir":             "",
	"policy.decision_log.file":       "",
	"policy.decision_log.console":    false,
	"policy.decision_log.upload_url": "",
	"policy.decision_log.spool_dir":  "",
	"log.level":                      "info",
	"log.format":                     "text",
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
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("reading configuration %s: %w", path, err)
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

func (c *Config) complete() error {
	if c.ClusterName == "" {
		return errors.New("cluster_name is required (or set TETHER_CLUSTER_NAME)")
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
	if c.Proxy.PublicAddr == "" {
		c.Proxy.PublicAddr = c.Proxy.WebListenAddr
	}
	if c.Proxy.TunnelPublicAddr == "" {
		c.Proxy.TunnelPublicAddr = c.Proxy.PublicAddr
	}
	for key, addr := range map[string]string{"proxy.public_addr": c.Proxy.PublicAddr, "proxy.tunnel_public_addr": c.Proxy.TunnelPublicAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s %q: want host:port", key, addr)
		}
	}
	if c.MaxClockSkew < 0 {
		return fmt.Errorf("max_clock_skew %v is negative", c.MaxClockSkew)
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
	return nil
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

# As a leaf: extra CA certificates (PEM) trusted for roots' web proxies, on top of the
# system roots.
root_ca_file: ""

# As a leaf: how long one trust handshake with a root may take.
trust_timeout: 30s

proxy:
  # Where the HTTPS web API (/webapi/ping, the trust handshake, the admin API) listens.
  web_listen_addr: 0.0.0.0:3080
  # The address users and leaves reach the web API at (default: web_listen_addr).
  public_addr: root.example.com:3080
  # The reverse tunnel address advertised by /webapi/ping (default: public_addr).
  tunnel_public_addr: root.example.com:3024

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

log:
  # debug, info, warn or error
  level: info
  # text or json
  format: text
`
