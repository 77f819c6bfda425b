package gateway

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tetherproject/tether/gateway/audit"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/config"
	"github.com/tetherproject/tether/gateway/node"
	"github.com/tetherproject/tether/resource"
)

// NewNodeAgent prepares the node agent of cfg.Node: it loads its identity from
// data_dir/node or joins the cluster. cluster is the cluster running in the same
// process, or nil for a node alone; beside a cluster the node joins it at its own
// address, pinned to its TLS CA, with a token made for the purpose. auditor receives
// its session events (nil: none).
func NewNodeAgent(ctx context.Context, cfg *config.Config, log *slog.Logger, cluster *Gateway, auditor audit.Auditor) (*node.Agent, error) {
	n := cfg.Node
	nc := node.Config{
		Name: n.Name, Labels: n.Labels, ListenAddr: n.ListenAddr, PublicAddr: n.PublicAddr,
		AuthServer: n.AuthServer, Token: n.Token, Insecure: cfg.Insecure,
		Dir: filepath.Join(cfg.DataDir, "node"), HeartbeatInterval: n.HeartbeatInterval,
		Logger: log, Auditor: auditor, Ciphers: cfg.Ciphers,
		MaxStartups: n.MaxStartups, MaxStartupsPerSource: n.MaxStartupsPerSource, MaxSessions: n.MaxSessions, MaxRemoteForwards: n.MaxRemoteForwards,
		MaxNetHelpers: n.MaxNetHelpers,
	}
	if n.CAPinFile != "" {
		data, err := os.ReadFile(n.CAPinFile)
		if err != nil {
			return nil, fmt.Errorf("node.ca_pin_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("node.ca_pin_file %s: no PEM certificates", n.CAPinFile)
		}
		nc.RootCAs = pool
	}
	if cluster != nil {
		if nc.AuthServer == "" {
			nc.AuthServer = cluster.Addr()
		}
		if nc.RootCAs == nil {
			nc.RootCAs = cluster.auth.CA().TLS.CertPool()
		}
		// insecure is the leaf's setting here; the node knows its cluster's CA.
		nc.Insecure = false
		nc.TokenFunc = func(ctx context.Context) (string, error) {
			tok, _, err := cluster.auth.AddToken(ctx, auth.TokenOptions{Roles: []string{resource.TokenRoleNode}, TTL: 5 * time.Minute})
			return tok, err
		}
	}
	if nc.Insecure {
		log.Warn("INSECURE: the node agent accepts ANY TLS certificate from the cluster when joining (--insecure); use it for testing only and give node.ca_pin_file instead")
	}
	return node.New(ctx, nc)
}
