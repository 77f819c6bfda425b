package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/tetherproject/tether/internal/listenerr"

	"github.com/tetherproject/tether/bundles"
	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/audit"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/config"
	"github.com/tetherproject/tether/gateway/forward"
	"github.com/tetherproject/tether/gateway/identity"
	"github.com/tetherproject/tether/gateway/metrics"
	"github.com/tetherproject/tether/gateway/proxy"
	"github.com/tetherproject/tether/gateway/trust"
	"github.com/tetherproject/tether/gateway/tunnel"
	"github.com/tetherproject/tether/gateway/web"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/policy/decisionlog"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/state"
	"github.com/tetherproject/tether/transport"
)

// adminIdentityTTL is how long an admin identity is valid (ca caps TLS certificates at
// a day); it is re-issued at start and whenever less than a quarter is left.
const adminIdentityTTL = ca.MaxTLSTTL

// Gateway is a running cluster. Create it with New, run it with Run.
type Gateway struct {
	cfg      *config.Config
	log      *slog.Logger
	store    state.Store
	engine   *policy.Engine
	declog   *decisionlog.Logger
	auth     *auth.Service
	web      *web.Server
	listener net.Listener
	mux      *proxy.Mux
	tunnel   *tunnel.Root
	leaf     *tunnel.Leaf
	forward  *forward.Server
	sshProxy *proxy.Server
	events   *metrics.Events
	auditor  audit.Auditor
	diag     *metrics.Diag
}

// New prepares the cluster described by cfg: CAs (created at first start, keys 0600 under
// data_dir/ca), the store, the engine with the first bundle, the admin identity, and the
// web API's listener (bound, so Addr is known before Run).
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *Gateway, err error) {
	if log == nil {
		log = slog.Default()
	}
	g := &Gateway{cfg: cfg, log: log.With("cluster", cfg.ClusterName)}
	defer func() {
		if err != nil {
			g.close()
		}
	}()
	if err := resource.CheckClusterName(cfg.ClusterName); err != nil {
		return nil, fmt.Errorf("cluster_name: %w", err)
	}
	if n := resource.NormalizeClusterName(cfg.ClusterName); n != cfg.ClusterName {
		return nil, fmt.Errorf("cluster_name %q: write it as %q (cluster names are compared in lower case without a trailing dot)", cfg.ClusterName, n)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data_dir: %w", err)
	}
	if g.store, err = openStore(cfg, g.log); err != nil {
		return nil, err
	}
	shared := cfg.Storage.Type == config.StorageRedis // replicas may share the store
	if shared {
		if err := checkCADirAgainstStore(ctx, g.store, filepath.Join(cfg.DataDir, "ca")); err != nil {
			return nil, err
		}
	}
	cluster, added, err := ca.LoadOrCreateCluster(filepath.Join(cfg.DataDir, "ca"), cfg.ClusterName, ca.Algorithm(cfg.CAAlgorithm))
	if err != nil {
		return nil, err
	}
	if shared {
		if err := publishCARecord(ctx, g.store, cluster, false); err != nil {
			return nil, err
		}
	}
	switch {
	case len(added) > 1:
		g.log.Info("created the cluster's certificate authorities", "dir", filepath.Join(cfg.DataDir, "ca"))
	case len(added) == 1 && added[0] == ca.OpenSSHCA:
		g.log.Warn("created the cluster's openssh CA: the enforcement point now connects to nodes with its certificates only. "+
			"On every OpenSSH server registered as a node, replace the file TrustedUserCAKeys names with the output of "+
			"`tetherctl auth export --type=openssh` and reload sshd (until then those nodes refuse the cluster's connections; "+
			"users' login certificates no longer reach them). Tether node agents learn the new CA at their next heartbeat",
			"dir", filepath.Join(cfg.DataDir, "ca", string(ca.OpenSSHCA)), "fingerprint", ca.Fingerprint(cluster.OpenSSH.SigningKey()))
	}
	var logger policy.Logger
	if dcfg, ok := cfg.DecisionLogConfig(); ok {
		dcfg.Logger = g.log
		if g.declog, err = decisionlog.New(dcfg); err != nil {
			return nil, fmt.Errorf("starting the decision log: %w", err)
		}
		logger = policy.NewDecisionLog(g.declog)
	}
	g.events = &metrics.Events{}
	g.auditor = newAuditor(g.log, g.declog, cfg.ClusterName, g.events)
	if g.engine, err = policy.New(policy.Options{Logger: logger, Evaluator: cfg.Policy.Evaluator}); err != nil {
		return nil, err
	}
	var modules []bundles.Module
	if cfg.Policy.ModulesDir != "" {
		if modules, _, err = bundles.ReadOperatorModules(cfg.Policy.ModulesDir); err != nil {
			return nil, err
		}
	}
	tc := trust.Client{Insecure: cfg.Insecure, Timeout: cfg.TrustTimeout}
	if cfg.Insecure {
		g.log.Warn("INSECURE: this cluster accepts ANY TLS certificate from root clusters when establishing trust (--insecure); use it for testing only and give a root_ca_file instead")
	}
	if cfg.RootCAFile != "" {
		// root_ca_file pins the root: only the CAs in this file are trusted for the
		// handshake, not the system's roots as well.
		pool := x509.NewCertPool()
		data, err := os.ReadFile(cfg.RootCAFile)
		if err != nil {
			return nil, fmt.Errorf("root_ca_file: %w", err)
		}
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("root_ca_file %s: no PEM certificates", cfg.RootCAFile)
		}
		tc.RootCAs = pool
	}
	g.auth, err = auth.New(ctx, auth.Config{
		ClusterName:     cfg.ClusterName,
		CA:              cluster,
		CADir:           filepath.Join(cfg.DataDir, "ca"),
		Store:           g.store,
		Engine:          g.engine,
		OperatorModules: modules,
		MaxClockSkew:    cfg.MaxClockSkew,
		Trust:           tc,
		Logger:          g.log,
		Auditor:         g.auditor,
		AfterRotate: func(ctx context.Context, typ ca.Type) {
			if shared {
				// The rotation moved this replica's keys: the store's record follows,
				// and the other replicas' checks say they must take them.
				if err := publishCARecord(ctx, g.store, cluster, true); err != nil {
					g.log.Error("recording the rotated CA in the store", "err", err)
				}
			}
			if typ != ca.TLSCA {
				return
			}
			// The admin identity holds the TLS CA certificates tetherctl verifies this
			// server with, and a client certificate of the signing CA: issue it again.
			if err := g.writeAdminIdentity(); err != nil {
				g.log.Error("renewing the admin identity after a TLS CA rotation", "err", err)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	// Every start, as Teleport does: a preset role that is missing (removed by an admin,
	// or new in this version) is created again; one that exists is left as it is.
	if err := createPresets(ctx, g.auth, g.log); err != nil {
		return nil, err
	}
	if err := g.listen(cfg); err != nil {
		return nil, err
	}
	listenHost, _, _ := net.SplitHostPort(g.listener.Addr().String())
	g.leaf = tunnel.NewLeaf(tunnel.LeafConfig{Auth: g.auth, BulkSSH: cfg.Proxy.TunnelBulkSSH, Logger: g.log})
	g.web = web.New(web.Config{
		Auth:             g.auth,
		PublicAddr:       cfg.Proxy.PublicAddr,
		TunnelPublicAddr: cfg.Proxy.TunnelPublicAddr,
		ServerNames:      []string{listenHost, "localhost", "127.0.0.1", "::1"},
		Logger:           g.log,

		MaxConnectionsPerSource: cfg.Proxy.WebMaxConnectionsPerSource,
	})
	g.web.HandleStatus(web.StatusInfo{CADir: filepath.Join(cfg.DataDir, "ca")})
	users := auth.NewUsers(g.auth, auth.UsersConfig{PublicAddr: cfg.Proxy.PublicAddr})
	g.web.HandleLogin(users)
	g.web.HandleNodes()
	if err := g.newSSHAccess([]string{hostOf(cfg.Proxy.PublicAddr), listenHost}); err != nil {
		return nil, err
	}
	g.web.HandleUserNodes(users, g.userNodes)
	g.web.HandleUserRoles(users, g.userRoles)
	g.web.HandleNodeStreams(users, g.openNodeRoute)
	// Root → leaf: the SSH entry reaches leaves through their tunnels; leaf side: a stream
	// the root sends through the tunnel goes to this cluster's own enforcement point.
	g.SetLeafDialer(g.tunnel)
	g.leaf.SetForward(g.HandleTunnelStream)
	g.leaf.SetServices(g.serveTunnelService)
	if err := g.renewAdminIdentity(); err != nil {
		return nil, err
	}
	if err := g.newDiag(); err != nil {
		return nil, err
	}
	return g, nil
}

// listen binds the web port and the reverse tunnel. By default the tunnel shares the web
// port: the web listener's mux routes SSH connections with the tunnel agent's version line
// to the tunnel server, and QUIC binds UDP at the same port number. When that UDP port is
// taken: with web port 0 (tests) another port pair is tried; with a defaulted tunnel the
// tunnel moves to a free port of its own (advertised accordingly); with an explicit one
// it is an error. An explicit tunnel_listen_addr on another port gets its own sockets.
func (g *Gateway) listen(cfg *config.Config) error {
	shared := cfg.Proxy.TunnelShared()
	webHost, webPort, _ := net.SplitHostPort(cfg.Proxy.WebListenAddr)
	attempts := 1
	if shared && webPort == "0" && !cfg.Proxy.TunnelDisableQUIC {
		attempts = 20
	}
	for attempt := 1; ; attempt++ {
		ln, err := net.Listen("tcp", cfg.Proxy.WebListenAddr)
		if err != nil {
			return listenerr.Wrap("proxy.web_listen_addr", cfg.Proxy.WebListenAddr, err)
		}
		mux := proxy.NewMux(ln, g.log)
		mux.SetUnroutedLimits(cfg.Proxy.WebMaxUnrouted, cfg.Proxy.WebMaxUnroutedPerSource)
		_, listenPort, _ := net.SplitHostPort(ln.Addr().String())
		// A listen port of 0 (tests) makes a public address with port 0 mean the bound port.
		public := cfg.Proxy.PublicAddr
		publicHost, p, err := net.SplitHostPort(public)
		if err == nil && p == "0" {
			public = net.JoinHostPort(publicHost, listenPort)
		}
		rc := tunnel.RootConfig{
			Auth: g.auth, Store: g.store, ListenAddr: cfg.Proxy.TunnelListenAddr, FallbackListen: cfg.Proxy.TunnelListenDefaulted,
			PublicAddr: cfg.Proxy.TunnelPublicAddr, DisableQUIC: cfg.Proxy.TunnelDisableQUIC,
			ResetKeyFile: filepath.Join(cfg.DataDir, "tunnel-reset-key"), Logger: g.log,
			CAExchangeEvery: cfg.Proxy.TunnelCAExchangeInterval,
		}
		// A derived public address follows the port actually bound (0 or a taken default).
		separate := func() {
			if cfg.Proxy.TunnelPublicDefaulted {
				rc.PublicAddr = net.JoinHostPort(publicHost, "0")
			}
		}
		if shared {
			rc.ListenAddr = net.JoinHostPort(webHost, listenPort)
			rc.Listener = mux.Route(transport.SSHClientVersion)
			rc.FallbackListen = false
			if cfg.Proxy.TunnelPublicDefaulted {
				rc.PublicAddr = public
			}
		} else {
			separate()
		}
		root, err := tunnel.NewRoot(rc)
		if err != nil && shared {
			if attempt < attempts {
				ln.Close()
				continue // the UDP port of a free TCP port was taken: another port
			}
			if cfg.Proxy.TunnelListenDefaulted {
				g.log.Warn("the tunnel cannot share the web port (is its UDP port taken?); listening for tunnels on a free port of their own instead (set proxy.tunnel_listen_addr to choose one)", "err", err)
				rc.Listener, rc.ListenAddr, rc.FallbackListen = nil, net.JoinHostPort(webHost, "0"), true
				separate()
				root, err = tunnel.NewRoot(rc)
			} else {
				err = fmt.Errorf("%w (proxy.tunnel_listen_addr is the web port: free its UDP port, set proxy.tunnel_disable_quic, or set proxy.tunnel_listen_addr to another port)", err)
			}
		}
		if err != nil {
			ln.Close()
			return err
		}
		g.listener, g.mux, g.tunnel = ln, mux, root
		cfg.Proxy.PublicAddr = public
		cfg.Proxy.TunnelPublicAddr = root.PublicAddr()
		return nil
	}
}

var badNamespace = regexp.MustCompile(`[^A-Za-z0-9._:-]`)

// openStore opens the configured store. On error it returns a nil Store, never a typed
// nil pointer that Close would be called on.
func openStore(cfg *config.Config, log *slog.Logger) (state.Store, error) {
	if cfg.Storage.Type == config.StorageRedis {
		r := cfg.Storage.Redis
		ns := r.Namespace
		if ns == "" {
			ns = badNamespace.ReplaceAllString(cfg.ClusterName, "_")
		}
		tlsConfig, err := r.TLSConfig()
		if err != nil {
			return nil, err
		}
		st, err := state.NewRedis(state.RedisConfig{
			Addr: r.Addr, Username: r.Username, Password: r.Password, DB: r.DB, TLS: tlsConfig,
			Namespace: ns, MinReplicas: r.MinReplicas, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("opening the redis store: %w", err)
		}
		return st, nil
	}
	dir := filepath.Join(cfg.DataDir, "state")
	st, err := state.OpenEmbedded(state.EmbeddedConfig{Dir: dir, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("opening the store in %s: %w", dir, err)
	}
	return st, nil
}

// AdminIdentityPath is where the admin identity is written.
func (g *Gateway) AdminIdentityPath() string { return filepath.Join(g.cfg.DataDir, identity.FileName) }

func (g *Gateway) renewAdminIdentity() error {
	path := g.AdminIdentityPath()
	if !identity.NeedsRenewal(path, adminIdentityTTL/4, time.Now()) {
		if id, err := identity.Load(path); err == nil && g.auth.CA().TLS.IssuedBySigning(id.Leaf) {
			return nil
		}
	}
	return g.writeAdminIdentity()
}

// writeAdminIdentity issues the admin identity and writes it.
func (g *Gateway) writeAdminIdentity() error {
	path := g.AdminIdentityPath()
	data, err := identity.Issue(g.auth.CA(), g.Addr(), adminIdentityTTL)
	if err != nil {
		return err
	}
	if err := identity.WriteFile(path, data); err != nil {
		return fmt.Errorf("writing the admin identity: %w", err)
	}
	g.log.Info("wrote the admin identity", "path", path)
	return nil
}

// Addr is the web API's address as tetherctl should dial it: the listener's port on the
// listen host, or 127.0.0.1 when listening on all addresses.
func (g *Gateway) Addr() string {
	host, port, _ := net.SplitHostPort(g.listener.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// Tunnel returns the cluster's tunnel server (its side as a root): DialLeaf reaches a
// leaf's node through it.
func (g *Gateway) Tunnel() *tunnel.Root { return g.tunnel }

// TunnelLeaf returns the cluster's tunnel agents (its side as a leaf): SetForward
// installs the SSH forwarding server.
func (g *Gateway) TunnelLeaf() *tunnel.Leaf { return g.leaf }

// TunnelAddr is the tunnel address leaves use (what /webapi/ping advertises).
func (g *Gateway) TunnelAddr() string { return g.cfg.Proxy.TunnelPublicAddr }

// Auth returns the cluster's auth service.
func (g *Gateway) Auth() *auth.Service { return g.auth }

// Run serves until ctx ends, then releases everything.
func (g *Gateway) Run(ctx context.Context) error {
	defer g.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 8)
	// One TCP port: tunnel agents to the tunnel (when it shares the port), other SSH
	// clients to the proxy's SSH entry, everything else to HTTPS.
	mux := g.mux
	go func() { errc <- mux.Serve(ctx) }()
	go func() { errc <- g.sshProxy.Serve(ctx, mux.SSH()) }()
	go func() { errc <- g.web.Serve(ctx, mux.TLS()) }()
	go func() { errc <- g.auth.Run(ctx) }()
	go func() { errc <- g.tunnel.Run(ctx) }()
	go func() { errc <- g.leaf.Run(ctx) }()
	running := 6
	if g.diag != nil {
		running++
		go func() { errc <- g.diag.Serve(ctx) }()
	}
	if g.cfg.Node.Enabled {
		// The node joins this cluster over its web API, which is serving now.
		agent, err := NewNodeAgent(ctx, g.cfg, g.log, g, g.auditor)
		if err != nil {
			cancel()
			for range running {
				<-errc
			}
			return err
		}
		running++
		go func() { errc <- agent.Run(ctx) }()
	}
	if g.cfg.Storage.Type == config.StorageRedis {
		go g.watchCARecord(ctx)
	}
	go func() {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := g.renewAdminIdentity(); err != nil {
					g.log.Error("renewing the admin identity", "err", err)
				}
			}
		}
	}()
	g.log.Info("tetherd running", "web", g.listener.Addr().String(), "public_addr", g.cfg.Proxy.PublicAddr, "tunnel_public_addr", g.cfg.Proxy.TunnelPublicAddr)
	var first error
	for range running {
		err := <-errc
		if err != nil && !errors.Is(err, context.Canceled) && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

func (g *Gateway) close() {
	if g.listener != nil {
		g.listener.Close()
	}
	if g.tunnel != nil {
		g.tunnel.Close()
	}
	if g.engine != nil {
		g.engine.Close()
	}
	if g.diag != nil {
		_ = g.diag.Close()
	}
	if g.declog != nil {
		closeDecisionLog(g.declog)
	}
	if g.store != nil {
		g.store.Close()
	}
}

func closeDecisionLog(l *decisionlog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = l.Close(ctx)
	cancel()
}
