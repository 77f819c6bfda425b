package tunnel

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetherproject/tether/internal/listenerr"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/state"
	"github.com/tetherproject/tether/transport"
	"github.com/tetherproject/tether/transport/frame"
)

// RootConfig configures a cluster's tunnel server.
type RootConfig struct {
	// Auth is the cluster's auth service (trust, remote clusters, status records).
	Auth *auth.Service
	// Store is the cluster's state store (replica registry, tunnel claims).
	Store state.Store
	// ListenAddr is where the tunnel listens: QUIC on UDP and the SSH fallback on TCP,
	// both at this port. Port 0 picks a port free on both.
	ListenAddr string
	// FallbackListen, when ListenAddr cannot be bound, listens on a free port instead
	// (ListenAddr was a default, not the operator's choice); the advertised address
	// follows the port actually bound when PublicAddr's port is 0.
	FallbackListen bool
	// Listener, when set, is where the SSH fallback is served instead of a TCP socket of
	// its own: the web port's mux route for the tunnel agent's SSH version line (one port
	// for web, user SSH and the tunnel). QUIC then binds UDP at ListenAddr, whose port
	// is the web port's (not 0). The root owns Listener: it is closed when NewRoot fails.
	Listener net.Listener
	// PublicAddr is the address leaves reach this replica's tunnel at (what
	// /webapi/ping advertises and trusted_cluster tunnel_addr holds); a port of 0 means
	// the bound port.
	PublicAddr string
	// DisableQUIC serves the SSH fallback only (no UDP socket): for roots behind
	// networks that drop UDP. The advertised endpoint still names the port; agents find
	// UDP refused and use SSH.
	DisableQUIC bool
	// ResetKeyFile keeps the 32-byte QUIC stateless reset key across restarts (created
	// 0600 at first start), so a restarted replica resets its predecessor's connections.
	ResetKeyFile string
	// CAExchangeEvery is how often the root exchanges SSH CAs with each connected leaf
	// (zero: DefaultCAExchangeEvery).
	CAExchangeEvery time.Duration
	// KeepAliveInterval and KeepAliveCount: the root's side of the keep-alive agreement
	// (zero: transport's defaults, 15 s × 3).
	KeepAliveInterval time.Duration
	KeepAliveCount    int
	Logger            *slog.Logger
}

// Root is a cluster's tunnel server: leaves connect to it, and DialLeaf reaches a node of
// a leaf through it.
type Root struct {
	cfg     RootConfig
	log     *slog.Logger
	srv     *transport.Server
	replica string
	public  string

	certMu sync.Mutex
	cert   *tls.Certificate

	repMu    sync.Mutex
	replicas []transport.Endpoint

	// Counters for the metrics: every tunnel that completed its hello, and those of a
	// leaf that had connected to this process before.
	connMu     sync.Mutex
	seen       map[string]bool
	connects   atomic.Uint64
	reconnects atomic.Uint64

	// Lock replication (locks.go) and CA exchanges (trustcas.go) with each leaf.
	lockRounds, caRounds rounds
	lockMu               sync.Mutex // guards docCache
	docCache             lockDocCache
}

// noteConnect counts a tunnel that came up (OnConnect): every tunnel is a connect; a
// reconnect is a leaf coming back — one that had been connected to this process before
// and has no other tunnel here now (its SSH tunnel for sessions beside QUIC, or a
// carrier change, is not a return).
func (r *Root) noteConnect(i transport.TunnelInfo) {
	r.connects.Add(1)
	alone := true
	for _, t := range r.srv.Tunnels() {
		if t.Cluster == i.Cluster && !t.ConnectedAt.Equal(i.ConnectedAt) {
			alone = false
		}
	}
	r.connMu.Lock()
	defer r.connMu.Unlock()
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	if r.seen[i.Cluster] && alone {
		r.reconnects.Add(1)
	}
	r.seen[i.Cluster] = true
}

// Connects returns how many leaf tunnels came up since start, and how many of them
// brought back a leaf that had been connected before (reconnects; see noteConnect).
func (r *Root) Connects() (connects, reconnects uint64) {
	return r.connects.Load(), r.reconnects.Load()
}

// ConnectedLeaves counts the leaves with a tunnel to this replica, once each, by the
// transport of their tunnel (quic when a leaf has one of each, as it does while it keeps
// an SSH tunnel for sessions beside QUIC).
func (r *Root) ConnectedLeaves() map[string]int {
	out := map[string]int{}
	for _, tr := range leafTransports(r.srv.Tunnels()) {
		out[string(tr)]++
	}
	return out
}

// leafTransports is each leaf's transport as status shows it: quic when any of its
// tunnels is QUIC, else ssh.
func leafTransports(ts []transport.TunnelInfo) map[string]transport.Transport {
	by := map[string]transport.Transport{}
	for _, t := range ts {
		if cur, ok := by[t.Cluster]; !ok || cur != transport.QUIC {
			by[t.Cluster] = t.Transport
		}
	}
	return by
}

// replicaRecord is what each root replica heartbeats under state.HeartbeatProxy.
type replicaRecord struct {
	Tunnel transport.Endpoint `json:"tunnel"`
}

// NewRoot binds the tunnel's sockets (so the advertised address is known before Run).
func NewRoot(cfg RootConfig) (*Root, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Root{cfg: cfg, log: cfg.Logger.With("component", "tunnel")}
	var resetKey []byte
	if cfg.ResetKeyFile != "" {
		k, err := loadResetKey(cfg.ResetKeyFile)
		if err != nil {
			return nil, err
		}
		resetKey = k
	}
	bindHost, bindPort, err := net.SplitHostPort(cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("proxy.tunnel_listen_addr %q: %w", cfg.ListenAddr, err)
	}
	pubHost, pubPort, err := net.SplitHostPort(cfg.PublicAddr)
	if err != nil {
		return nil, fmt.Errorf("proxy.tunnel_public_addr %q: %w", cfg.PublicAddr, err)
	}
	if cfg.Listener != nil {
		if bindPort == "0" {
			cfg.Listener.Close()
			return nil, errors.New("tunnel: a shared listener needs the port it is bound to, not 0")
		}
		if err := r.start(bindHost, bindPort, pubHost, pubPort, resetKey); err != nil {
			return nil, err
		}
		return r, nil
	}
	for attempt := 0; ; attempt++ {
		err := r.start(bindHost, bindPort, pubHost, pubPort, resetKey)
		if err == nil {
			return r, nil
		}
		switch {
		case bindPort == "0" && attempt < 20:
			continue // the UDP port of a free TCP port was taken: another pair
		case bindPort != "0" && cfg.FallbackListen:
			r.log.Warn("the default tunnel port is taken; listening on a free port instead (set proxy.tunnel_listen_addr to choose one)", "wanted", cfg.ListenAddr, "err", err)
			bindPort = "0"
			continue
		}
		return nil, err
	}
}

// start binds TCP (or takes the shared Listener) then UDP at the same port and starts
// the server there.
func (r *Root) start(bindHost, bindPort, pubHost, pubPort string, resetKey []byte) error {
	ln, port := r.cfg.Listener, bindPort
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(bindHost, bindPort))
		if err != nil {
			return listenerr.Wrap("proxy.tunnel_listen_addr (TCP, for SSH fallback tunnels)", net.JoinHostPort(bindHost, bindPort), err)
		}
		port = strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	}
	if pubPort == "0" {
		pubPort = port
	}
	r.public = net.JoinHostPort(pubHost, pubPort)
	r.replica = r.public
	r.replicas = []transport.Endpoint{r.endpoint()}
	srv, err := transport.NewServer(transport.ServerConfig{
		GetCertificate:    r.certificate,
		VerifyLeaf:        r.verifyLeaf,
		Replica:           r.replica,
		Replicas:          r.replicaList,
		KeepAliveInterval: r.cfg.KeepAliveInterval,
		KeepAliveCount:    r.cfg.KeepAliveCount,
		ResetKey:          resetKey,
		OnConnect:         func(i transport.TunnelInfo) { r.noteConnect(i); r.record(i, false) },
		OnHeartbeat:       func(i transport.TunnelInfo) { r.record(i, false) },
		OnDisconnect:      func(i transport.TunnelInfo, _ error) { r.record(i, true) },
		Logger:            r.cfg.Logger,
	})
	if err != nil {
		ln.Close()
		return err
	}
	if !r.cfg.DisableQUIC {
		if err := srv.ListenQUIC(net.JoinHostPort(bindHost, port)); err != nil {
			ln.Close()
			srv.Close()
			return fmt.Errorf("listening for QUIC tunnels on UDP %s: %w", net.JoinHostPort(bindHost, port), err)
		}
	}
	if err := srv.ServeTCP(ln); err != nil {
		srv.Close()
		return err
	}
	r.srv = srv
	return nil
}

// PublicAddr is the tunnel address leaves should use (trusted_cluster tunnel_addr).
func (r *Root) PublicAddr() string { return r.public }

// Server is the transport server (for tests and status).
func (r *Root) Server() *transport.Server { return r.srv }

func (r *Root) endpoint() transport.Endpoint {
	return transport.Endpoint{QUIC: r.public, TCP: r.public}
}

// certificate is this replica's server certificate from the cluster's TLS CA, naming
// the advertised host and loopback; renewed at half its life and when the TLS CA's
// signing certificate changed (a rotation).
func (r *Root) certificate() (*tls.Certificate, error) {
	r.certMu.Lock()
	defer r.certMu.Unlock()
	if r.cert != nil && time.Until(r.cert.Leaf.NotAfter) > ca.DefaultTLSTTL/2 && r.cfg.Auth.CA().TLS.IssuedBySigning(r.cert.Leaf) {
		return r.cert, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	req := ca.TLSCertRequest{PublicKey: key.Public(), CommonName: "tunnel." + r.cfg.Auth.ClusterName(), Server: true,
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
	for _, a := range []string{r.public, r.cfg.ListenAddr} {
		host, _, _ := net.SplitHostPort(a)
		if ip := net.ParseIP(host); ip != nil {
			if !ip.IsUnspecified() {
				req.IPAddresses = append(req.IPAddresses, ip)
			}
		} else if host != "" {
			req.DNSNames = append(req.DNSNames, host)
		}
	}
	cert, err := r.cfg.Auth.CA().TLS.IssueTLS(req)
	if err != nil {
		return nil, err
	}
	r.cert = &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	return r.cert, nil
}

// verifyLeaf accepts a leaf whose certificate verifies against the TLS CA stored for the
// name it claims, while that leaf's remote_cluster exists.
func (r *Root) verifyLeaf(chain []*x509.Certificate) (string, error) {
	pinned := transport.PinnedClusters{Pool: func(cluster string) *x509.CertPool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		pool, err := r.cfg.Auth.RemoteClusterTLSPool(ctx, cluster)
		if err != nil {
			r.log.Error("reading the TLS CA of a leaf", "leaf", cluster, "err", err)
			return nil
		}
		return pool
	}}
	cluster, err := pinned.Verify(chain)
	if err != nil {
		r.log.Info("refused a leaf's tunnel certificate", "err", err)
	}
	return cluster, err
}

// record writes the tunnel's status record and claim (OnConnect, OnHeartbeat,
// OnDisconnect).
func (r *Root) record(i transport.TunnelInfo, closed bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// One record per leaf and replica, whatever number of tunnels the leaf holds here
	// (its SSH tunnel for sessions beside QUIC, or the old carrier draining): it names
	// the leaf's preferred carrier, is online until the freshest tunnel's deadline, and
	// is closed only when the last tunnel went.
	ts := r.srv.Tunnels()
	tr, connected := leafTransports(ts)[i.Cluster]
	if !connected {
		tr = i.Transport
	}
	last := i.LastHeartbeat
	if last.Before(i.ConnectedAt) {
		last = i.ConnectedAt
	}
	window := i.KeepAliveInterval * time.Duration(i.KeepAliveCount)
	for _, t := range ts {
		if t.Cluster == i.Cluster {
			last = latest(last, t.LastHeartbeat, t.ConnectedAt)
			window = max(window, t.KeepAliveInterval*time.Duration(t.KeepAliveCount))
		}
	}
	rec := auth.TunnelRecord{Replica: r.replica, Transport: string(tr), RemoteAddr: i.RemoteAddr,
		LastHeartbeat: last.UTC(), OnlineUntil: last.Add(window).UTC(), Closed: closed && !connected}
	if err := r.cfg.Auth.RecordTunnel(ctx, i.Cluster, rec); err != nil {
		r.log.Warn("recording a leaf's tunnel status", "leaf", i.Cluster, "err", err)
	}
	if rec.Closed {
		if err := state.ReleaseTunnel(ctx, r.cfg.Store, i.Cluster, r.replica); err != nil {
			r.log.Debug("releasing a tunnel claim", "leaf", i.Cluster, "err", err)
		}
		return
	}
	var other *state.TunnelClaimedError
	if _, err := state.ClaimTunnel(ctx, r.cfg.Store, i.Cluster, r.replica, window); err != nil && !errors.As(err, &other) {
		r.log.Warn("claiming a leaf's tunnel", "leaf", i.Cluster, "err", err)
	}
}

func latest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}

func (r *Root) replicaList() []transport.Endpoint {
	r.repMu.Lock()
	defer r.repMu.Unlock()
	return append([]transport.Endpoint(nil), r.replicas...)
}

// ErrOffline is what DialLeaf wraps when no replica holds a tunnel of the leaf.
var ErrOffline = errors.New("offline")

// OfflineError: the leaf has no tunnel to any root replica.
type OfflineError struct{ Cluster string }

func (e *OfflineError) Error() string { return "cluster " + e.Cluster + " is offline" }

// Unwrap makes errors.Is(err, ErrOffline) hold.
func (e *OfflineError) Unwrap() error { return ErrOffline }

// ElsewhereError: the leaf's tunnel is held by another root replica; route there.
type ElsewhereError struct{ Cluster, Replica string }

func (e *ElsewhereError) Error() string {
	return fmt.Sprintf("cluster %s is connected to proxy replica %s, not this one", e.Cluster, e.Replica)
}

// DialLeaf connects to the registered node nodeName of leaf cluster leaf through its
// tunnel, on behalf of the user whose certificate and address are given. A leaf with no
// tunnel here is an *OfflineError ("cluster <leaf> is offline") or, when another replica
// holds its tunnel, an *ElsewhereError naming that replica. The leaf's refusal is a
// *transport.DialDeniedError.
func (r *Root) DialLeaf(ctx context.Context, leaf, nodeName string, userCert []byte, clientAddr string) (net.Conn, error) {
	return r.dial(ctx, leaf, &frame.DialRequest{Node: nodeName, UserCert: userCert, ClientAddr: clientAddr})
}

func (r *Root) dial(ctx context.Context, leaf string, req *frame.DialRequest) (net.Conn, error) {
	conn, err := r.srv.DialTraced(ctx, leaf, req)
	if !errors.Is(err, transport.ErrNoTunnel) {
		return conn, err
	}
	claim, cerr := state.TunnelOwner(ctx, r.cfg.Store, leaf)
	if cerr == nil && claim.ProxyID != r.replica {
		return nil, &ElsewhereError{Cluster: leaf, Replica: claim.ProxyID}
	}
	return nil, &OfflineError{Cluster: leaf}
}

// Run keeps the replica registered, refreshes the replica list leaves are told, and
// closes the tunnels of leaves whose remote_cluster was removed; when ctx ends it tells
// the leaves to come back after a random delay and closes.
func (r *Root) Run(ctx context.Context) error {
	iv := r.cfg.KeepAliveInterval
	if iv == 0 {
		iv = transport.DefaultKeepAliveInterval
	}
	regTTL := 3 * iv
	register := func() {
		data, _ := json.Marshal(replicaRecord{Tunnel: r.endpoint()})
		if _, err := state.PutHeartbeat(ctx, r.cfg.Store, state.HeartbeatProxy, r.replica, regTTL, data); err != nil && ctx.Err() == nil {
			r.log.Warn("registering this proxy replica", "err", err)
		}
		hbs, err := state.ListHeartbeats(ctx, r.cfg.Store, state.HeartbeatProxy)
		if err != nil {
			return
		}
		eps := []transport.Endpoint{r.endpoint()}
		for _, hb := range hbs {
			var rec replicaRecord
			if hb.Name == r.replica || json.Unmarshal(hb.Data, &rec) != nil || rec.Tunnel.TCP == "" {
				continue
			}
			eps = append(eps, rec.Tunnel)
		}
		r.repMu.Lock()
		r.replicas = eps
		r.repMu.Unlock()
	}
	register()
	regTick := time.NewTicker(min(iv, 5*time.Second))
	defer regTick.Stop()
	revoke := time.NewTicker(250 * time.Millisecond)
	defer revoke.Stop()
	locks := time.NewTicker(lockPushEvery)
	defer locks.Stop()
	for {
		select {
		case <-locks.C:
			r.pushLocks(ctx)
			r.exchangeCAs(ctx)
		case <-ctx.Done():
			err := r.srv.Shutdown(5 * time.Second)
			r.deregister()
			return err
		case <-regTick.C:
			register()
		case <-revoke.C:
			r.revoke(ctx)
		}
	}
}

func (r *Root) deregister() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = state.PutHeartbeat(ctx, r.cfg.Store, state.HeartbeatProxy, r.replica, time.Millisecond, nil)
}

// revoke closes the tunnels of leaves that no longer have a remote_cluster (rm rc),
// whichever replica the removal was made on.
func (r *Root) revoke(ctx context.Context) {
	ts := r.srv.Tunnels()
	if len(ts) == 0 {
		return
	}
	names, err := r.cfg.Auth.RemoteClusterNames(ctx)
	if err != nil {
		return // fail safe on a store hiccup: the next tick looks again
	}
	done := map[string]bool{}
	for _, t := range ts {
		if names[t.Cluster] || done[t.Cluster] {
			continue
		}
		done[t.Cluster] = true
		n := r.srv.Disconnect(t.Cluster, "the root removed this cluster's trust")
		r.log.Info("closed the tunnels of a removed leaf", "leaf", t.Cluster, "tunnels", n)
	}
}

// Close closes the server at once.
func (r *Root) Close() error { return r.srv.Close() }

func loadResetKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err == nil && len(data) == 32 {
		return data, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading the tunnel reset key: %w", err)
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, k, 0o600); err != nil {
		return nil, fmt.Errorf("writing the tunnel reset key: %w", err)
	}
	return k, nil
}
