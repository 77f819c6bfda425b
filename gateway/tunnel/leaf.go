package tunnel

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/transport"
	"github.com/tetherproject/tether/transport/frame"
)

// ForwardFunc serves one accepted tunnel dial on the leaf: conn carries the user's SSH
// connection to nodeName, a registered node of this cluster. The SSH forwarding server
// installs it with Leaf.SetForward.
type ForwardFunc func(ctx context.Context, conn net.Conn, nodeName string, userCert []byte, clientAddr string)

// LeafConfig configures a cluster's tunnel agents (its side as a leaf).
type LeafConfig struct {
	Auth *auth.Service
	// PollInterval is how often the trusts are read (default 250 ms): a disabled or
	// removed trust closes its tunnel within about this long.
	PollInterval time.Duration
	// KeepAliveInterval and KeepAliveCount are the leaf's keep-alive proposal.
	KeepAliveInterval time.Duration
	KeepAliveCount    int
	// ProbeInterval is how often QUIC is retried while on the SSH fallback.
	ProbeInterval time.Duration
	// BulkSSH opens an SSH-over-TCP tunnel beside each QUIC tunnel for user sessions
	// while the leaf carries sessions (proxy.tunnel_bulk_ssh, on by default in tetherd;
	// see transport.AgentConfig.BulkSSH).
	BulkSSH bool
	Logger  *slog.Logger
}

// Leaf keeps one transport.Agent per enabled trust whose root TLS CA is stored.
type Leaf struct {
	cfg      LeafConfig
	log      *slog.Logger
	forward  atomic.Pointer[ForwardFunc]
	services atomic.Pointer[ServiceFunc]

	certMu sync.Mutex
	cert   *tls.Certificate

	mu     sync.Mutex
	agents map[string]*leafAgent
	// blocked: enabled trusts that cannot have a tunnel, and why.
	blocked map[string]string

	// lockSlots and caSlots: per root, the lock push and the CA exchange being read
	// (receivePush).
	lockSlots, caSlots pushSlots
}

type leafAgent struct {
	root, addr, fp string
	agent          *transport.Agent
}

// NewLeaf returns the leaf side; Run starts it.
func NewLeaf(cfg LeafConfig) *Leaf {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 250 * time.Millisecond
	}
	l := &Leaf{cfg: cfg, log: cfg.Logger.With("component", "tunnel-leaf"), agents: map[string]*leafAgent{}, blocked: map[string]string{}}
	cfg.Auth.SetTunnelStatus(l.Status)
	return l
}

// SetForward installs the handler accepted dials are given to (nil: dials are denied).
func (l *Leaf) SetForward(f ForwardFunc) {
	if f == nil {
		l.forward.Store(nil)
		return
	}
	l.forward.Store(&f)
}

// Run follows the trusts until ctx ends, then closes every agent.
func (l *Leaf) Run(ctx context.Context) error {
	t := time.NewTicker(l.cfg.PollInterval)
	defer t.Stop()
	for {
		l.sync(ctx)
		select {
		case <-ctx.Done():
			l.mu.Lock()
			as := l.agents
			l.agents = map[string]*leafAgent{}
			l.mu.Unlock()
			for _, a := range as {
				a.agent.Close()
			}
			return nil
		case <-t.C:
		}
	}
}

// sync starts an agent for every enabled trust with a stored root TLS CA and stops the
// others (disabled, removed, re-established with other CAs or another address).
func (l *Leaf) sync(ctx context.Context) {
	roots, err := l.cfg.Auth.TrustedRoots(ctx)
	if err != nil {
		if ctx.Err() == nil {
			l.log.Warn("reading trusted clusters", "err", err)
		}
		return
	}
	want := map[string]auth.TrustedRoot{}
	blocked := map[string]string{}
	for _, r := range roots {
		switch {
		case !r.Enabled:
		case r.Pool == nil:
			blocked[r.Name] = "the root's TLS CA is not stored (trust established by an older version): remove the trusted_cluster and join again"
		case r.TunnelAddr == "":
			blocked[r.Name] = "the trusted_cluster has no tunnel_addr"
		default:
			want[r.Name] = r
		}
	}
	var stop []*leafAgent
	l.mu.Lock()
	for name, msg := range blocked {
		if l.blocked[name] != msg {
			l.log.Warn("no tunnel to a trusted root", "root", name, "reason", msg)
		}
	}
	l.blocked = blocked
	for name, a := range l.agents {
		if w, ok := want[name]; !ok || w.TunnelAddr != a.addr || w.CAFingerprint != a.fp {
			stop = append(stop, a)
			delete(l.agents, name)
		}
	}
	l.mu.Unlock()
	for _, a := range stop {
		a.agent.Close()
		l.log.Info("tunnel to root closed: the trust was disabled, removed or changed", "root", a.root)
	}
	for name, r := range want {
		l.mu.Lock()
		_, running := l.agents[name]
		l.mu.Unlock()
		if running {
			continue
		}
		ag, err := transport.NewAgent(transport.AgentConfig{
			Cluster:           l.cfg.Auth.ClusterName(),
			GetCertificate:    l.certificate,
			RootCAs:           r.Pool,
			Handler:           l.handlerFor(name),
			KeepAliveInterval: l.cfg.KeepAliveInterval,
			KeepAliveCount:    l.cfg.KeepAliveCount,
			ProbeInterval:     l.cfg.ProbeInterval,
			BulkSSH:           l.cfg.BulkSSH,
			Name:              "tetherd",
			Logger:            l.cfg.Logger.With("root", name),
		})
		if err != nil {
			l.log.Error("starting the tunnel agent", "root", name, "err", err)
			continue
		}
		ag.AddReplica(transport.Endpoint{QUIC: r.TunnelAddr, TCP: r.TunnelAddr})
		l.mu.Lock()
		l.agents[name] = &leafAgent{root: name, addr: r.TunnelAddr, fp: r.CAFingerprint, agent: ag}
		l.mu.Unlock()
		l.log.Info("tunnel agent started", "root", name, "tunnel_addr", r.TunnelAddr)
	}
}

// certificate is the leaf's client certificate from its own TLS CA, naming the cluster
// in its tether://cluster/NAME URI; renewed at half its life and when the TLS CA's
// signing certificate changed (a rotation).
func (l *Leaf) certificate() (*tls.Certificate, error) {
	l.certMu.Lock()
	defer l.certMu.Unlock()
	if l.cert != nil && time.Until(l.cert.Leaf.NotAfter) > ca.DefaultTLSTTL/2 && l.cfg.Auth.CA().TLS.IssuedBySigning(l.cert.Leaf) {
		return l.cert, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	name := l.cfg.Auth.ClusterName()
	cert, err := l.cfg.Auth.CA().TLS.IssueTLS(ca.TLSCertRequest{PublicKey: key.Public(), CommonName: "tunnel-agent." + name,
		URIs: []*url.URL{ca.ClusterURI(name)}, Client: true})
	if err != nil {
		return nil, err
	}
	l.cert = &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	return l.cert, nil
}

// handlerFor decides the dials and service requests that arrive on root's tunnel.
func (l *Leaf) handlerFor(root string) transport.DialHandler {
	return func(ctx context.Context, req *frame.DialRequest) (func(net.Conn), error) {
		switch req.Service {
		case frame.ServiceSSH:
			return l.handle(ctx, req)
		case frame.ServiceNodeList, frame.ServiceUserRoles:
			return l.serve(ctx, root, req)
		case frame.ServiceRootLocks:
			return l.receiveLocks(root)
		case frame.ServiceTrustCAs:
			return l.receiveCAs(root)
		}
		l.log.Warn("refused a tunnel request for an unknown service", "root", root, "service", req.Service.String())
		return nil, transport.Deny("unknown service " + req.Service.String())
	}
}

// handle decides a dial from a root: only a registered node of this cluster, and only
// when the SSH forwarding server is there to take it (DESIGN §5.1: never an address).
func (l *Leaf) handle(ctx context.Context, req *frame.DialRequest) (func(net.Conn), error) {
	ok, err := l.cfg.Auth.NodeRegistered(ctx, req.Node)
	if err != nil {
		l.log.Error("checking a tunnel dial's node", "node", req.Node, "err", err)
		return nil, err
	}
	if !ok {
		l.log.Warn("refused a tunnel dial for a name that is not a registered node", "node", req.Node, "client", req.ClientAddr)
		return nil, transport.Deny(fmt.Sprintf("node %q not found in cluster %s", req.Node, l.cfg.Auth.ClusterName()))
	}
	f := l.forward.Load()
	if f == nil {
		l.log.Warn("refused a tunnel dial: no SSH forwarding server runs on this leaf", "node", req.Node, "client", req.ClientAddr)
		return nil, transport.Deny("this leaf cluster has no SSH forwarding server to take the connection")
	}
	node, cert, client := req.Node, req.UserCert, req.ClientAddr
	return func(c net.Conn) { (*f)(ctx, c, node, cert, client) }, nil
}

// Status lists the leaf's tunnels, one row per root replica, and the enabled trusts
// that cannot have one.
func (l *Leaf) Status() []auth.TunnelStatus {
	l.mu.Lock()
	as := make([]*leafAgent, 0, len(l.agents))
	for _, a := range l.agents {
		as = append(as, a)
	}
	var out []auth.TunnelStatus
	for name, why := range l.blocked {
		out = append(out, auth.TunnelStatus{Root: name, State: "no tunnel", LastError: why})
	}
	l.mu.Unlock()
	for _, a := range as {
		for _, st := range a.agent.Status() {
			ts := auth.TunnelStatus{Root: a.root, Endpoint: st.Endpoint.QUIC, Replica: st.Replica, State: "connecting", Since: st.Since.UTC(), LastError: st.LastError}
			if st.Endpoint.TCP != st.Endpoint.QUIC {
				ts.Endpoint = st.Endpoint.QUIC + " (ssh " + st.Endpoint.TCP + ")"
			}
			if st.Connected {
				ts.State, ts.Transport, ts.LastError = "connected", string(st.Transport), ""
				if st.Transport == transport.QUIC && l.cfg.BulkSSH {
					ts.SessionsOverSSH, ts.SessionsError = st.Bulk, st.BulkError
					ts.SessionsIdle = st.BulkOnDemand && !st.Bulk && st.BulkError == ""
				}
			}
			out = append(out, ts)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Root != out[j].Root {
			return out[i].Root < out[j].Root
		}
		return out[i].Endpoint < out[j].Endpoint
	})
	return out
}
