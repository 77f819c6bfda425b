package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/tetherproject/tether/internal/startups"
	"github.com/tetherproject/tether/transport/frame"
)

// ServerConfig configures the root's tunnel server. VerifyLeaf and a certificate are
// required; every other zero field takes the default named beside it.
type ServerConfig struct {
	// Certificate is the root replica's TLS certificate (chain and key), presented to
	// leaves over QUIC and, as SSH host key plus chain, over the fallback.
	Certificate *tls.Certificate
	// GetCertificate, when set, is asked for the certificate on each handshake instead
	// (for rotation).
	GetCertificate func() (*tls.Certificate, error)
	// VerifyLeaf decides which leaf cluster a client certificate chain proves, or
	// refuses it. The gateway checks that the chain is issued by the X.509 CA it stored
	// for that name at trust time and names the cluster (PinnedClusters does this). It
	// is asked during the TLS handshake, so a refused leaf sees a TLS alert.
	VerifyLeaf func(chain []*x509.Certificate) (cluster string, err error)
	// Replica names this root replica in hello answers and logs.
	Replica string
	// Replicas, when set, lists every root replica's endpoint; leaves keep a tunnel to
	// each. Sent in hello answers and heartbeat replies.
	Replicas func() []Endpoint
	// KeepAliveInterval and KeepAliveCount are the root's side of the keep-alive
	// agreement (DefaultKeepAliveInterval, DefaultKeepAliveCount): the more patient of
	// root and leaf wins. A tunnel whose heartbeats stop for interval × count is closed.
	KeepAliveInterval time.Duration
	KeepAliveCount    int
	// MinVersion and MaxVersion bound the protocol versions spoken (frame.MinVersion,
	// frame.MaxVersion).
	MinVersion, MaxVersion uint16
	// HandshakeTimeout bounds the TLS or SSH handshake and the hello
	// (DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// DialTimeout bounds a dial's stream open and answer when the context has no
	// earlier deadline (DefaultDialTimeout).
	DialTimeout time.Duration
	// MaxConcurrentHellos bounds hellos in progress; beyond it a leaf is told to retry
	// after a random delay up to RetrySpread, so a crowd spreads out. Zero: 256.
	MaxConcurrentHellos int
	// MaxSSHStartups bounds SSH fallback connections in their handshake (SSH, chain
	// exchange, hello) at once; one over it is closed unanswered, and its agent backs off
	// as from any failed connect. Zero: DefaultMaxSSHStartups.
	MaxSSHStartups int
	// MaxSSHStartupsPerSource bounds them per source (startups.Source): leaves behind one
	// NAT share an address, so it is high. Zero: DefaultMaxSSHStartupsPerSource.
	MaxSSHStartupsPerSource int
	// MaxTunnelsPerCluster bounds the tunnels one leaf cluster may hold on this replica
	// (default 64: a few agents, each moving between carriers), so one leaf's credentials
	// cannot exhaust the root. Beyond it the hello is refused.
	MaxTunnelsPerCluster int
	// RetrySpread spreads refused and gone-away leaves' reconnects (default 5 s).
	RetrySpread time.Duration
	// ReconnectHint, when set, is sent in every heartbeat reply: how long the leaf
	// should wait before reconnecting should the tunnel drop.
	ReconnectHint func(cluster string) time.Duration
	// AcceptLoops is the number of QUIC accept loops (DefaultAcceptLoops): one loop
	// falls behind when a thousand leaves reconnect at once.
	AcceptLoops int
	// UDPBufferSize is the UDP socket buffer to ask for (DefaultUDPBufferSize).
	UDPBufferSize int
	// ResetKey, 32 secret bytes kept across restarts (derive it from a persisted
	// secret), lets a restarted replica answer its predecessor's QUIC connections with
	// stateless resets: leaves notice the restart at their next keep-alive instead of
	// after the heartbeat deadline. Nil: no resets.
	ResetKey []byte
	// OnConnect, OnHeartbeat and OnDisconnect report tunnel state, so the gateway can
	// set remote_cluster status. They run on the tunnel's goroutine: keep them short.
	OnConnect    func(TunnelInfo)
	OnHeartbeat  func(TunnelInfo)
	OnDisconnect func(info TunnelInfo, err error)
	// Logger receives the server's logs (slog.Default()).
	Logger *slog.Logger

	// legacyNoBulk answers hellos as a root that predates the Bulk mark (tests).
	legacyNoBulk bool
	// testAfterAdmit, when set, runs after a hello is admitted (tests: concurrent hellos).
	testAfterAdmit func()
}

// TunnelInfo describes one leaf tunnel as the root sees it.
type TunnelInfo struct {
	Cluster           string
	Transport         Transport
	Version           uint16
	RemoteAddr        string
	Agent             string
	ConnectedAt       time.Time
	LastHeartbeat     time.Time
	KeepAliveInterval time.Duration
	KeepAliveCount    int
	// State is the leaf's own account of its health from its last heartbeat.
	State string
	// ActiveStreams is what the leaf last reported.
	ActiveStreams uint64
	// Bulk: an SSH tunnel the leaf keeps beside its QUIC one for user session streams
	// (see Server.Dial); counting leaves, count it with the leaf's other tunnels.
	Bulk bool
	// Dials counts the dial streams this replica opened on the tunnel.
	Dials uint64
}

// Server is the root replica's tunnel server: a QUIC listener on UDP and the SSH fallback
// on TCP, the leaves connected to them, and Dial to reach a node through a leaf.
type Server struct {
	cfg  ServerConfig
	log  *slog.Logger
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	hellos chan struct{} // semaphore of hellos in progress
	// sshStartups bounds SSH fallback connections before their chain was verified.
	sshStartups *startups.Limit

	mu      sync.Mutex
	tunnels map[string][]*rootTunnel
	closers []func() error
	quicAd  net.Addr
	tcpAd   net.Addr
}

// errServerClosing refuses a hello that completes while the server closes.
var errServerClosing = errors.New("server closing")

type rootTunnel struct {
	*session
	dials atomic.Uint64 // dial streams opened on the tunnel
}

// NewServer checks the configuration and returns a server with no listener yet.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.VerifyLeaf == nil {
		return nil, errors.New("transport: ServerConfig.VerifyLeaf is required")
	}
	if cfg.Certificate == nil && cfg.GetCertificate == nil {
		return nil, errors.New("transport: ServerConfig needs a Certificate or GetCertificate")
	}
	if cfg.KeepAliveInterval == 0 {
		cfg.KeepAliveInterval = DefaultKeepAliveInterval
	}
	if cfg.KeepAliveCount == 0 {
		cfg.KeepAliveCount = DefaultKeepAliveCount
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = frame.MinVersion
	}
	if cfg.MaxVersion == 0 {
		cfg.MaxVersion = frame.MaxVersion
	}
	if cfg.MinVersion > cfg.MaxVersion {
		return nil, fmt.Errorf("transport: protocol versions [%d,%d] are empty", cfg.MinVersion, cfg.MaxVersion)
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.MaxConcurrentHellos == 0 {
		cfg.MaxConcurrentHellos = 256
	}
	if cfg.MaxSSHStartups <= 0 {
		cfg.MaxSSHStartups = DefaultMaxSSHStartups
	}
	if cfg.MaxSSHStartupsPerSource <= 0 {
		cfg.MaxSSHStartupsPerSource = DefaultMaxSSHStartupsPerSource
	}
	if cfg.MaxTunnelsPerCluster == 0 {
		cfg.MaxTunnelsPerCluster = 64
	}
	if cfg.RetrySpread == 0 {
		cfg.RetrySpread = 5 * time.Second
	}
	if cfg.AcceptLoops == 0 {
		cfg.AcceptLoops = DefaultAcceptLoops
	}
	if cfg.UDPBufferSize == 0 {
		cfg.UDPBufferSize = DefaultUDPBufferSize
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Server{cfg: cfg, log: log.With("component", "tunnel-server"), ctx: ctx, stop: stop,
		hellos: make(chan struct{}, cfg.MaxConcurrentHellos), sshStartups: startups.New(cfg.MaxSSHStartups, cfg.MaxSSHStartupsPerSource), tunnels: map[string][]*rootTunnel{}}, nil
}

func (s *Server) certificate() (*tls.Certificate, error) {
	if s.cfg.GetCertificate != nil {
		return s.cfg.GetCertificate()
	}
	return s.cfg.Certificate, nil
}

func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{ALPN},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.certificate()
		},
		ClientAuth: tls.RequireAnyClientCert,
		// Chain verification is the caller's: the CA to check against depends on the
		// name the certificate claims.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no client certificate")
			}
			_, err := s.cfg.VerifyLeaf(cs.PeerCertificates)
			return err
		},
	}
}

// ListenQUIC serves QUIC tunnels on a UDP address ("127.0.0.1:0" picks a port).
func (s *Server) ListenQUIC(addr string) error {
	udp, err := listenUDP(addr, s.cfg.UDPBufferSize, s.log)
	if err != nil {
		return err
	}
	return s.ServeQUIC(udp)
}

// ServeQUIC serves QUIC tunnels on an open UDP socket, which the server then owns.
func (s *Server) ServeQUIC(udp *net.UDPConn) error {
	tr := &quic.Transport{Conn: udp}
	if len(s.cfg.ResetKey) > 0 {
		if len(s.cfg.ResetKey) != len(quic.StatelessResetKey{}) {
			udp.Close()
			return fmt.Errorf("transport: ResetKey must be %d bytes", len(quic.StatelessResetKey{}))
		}
		var k quic.StatelessResetKey
		copy(k[:], s.cfg.ResetKey)
		tr.StatelessResetKey = &k
		// quic-go answers only packets longer than 42 bytes with a reset; long
		// connection IDs make a leaf's heartbeat packets long enough.
		tr.ConnectionIDLength = 16
	}
	ln, err := tr.Listen(s.tlsConfig(), quicConfig(s.cfg.KeepAliveInterval, s.cfg.HandshakeTimeout, 1))
	if err != nil {
		udp.Close()
		return fmt.Errorf("listening for QUIC tunnels: %w", err)
	}
	s.mu.Lock()
	s.quicAd = udp.LocalAddr()
	s.closers = append(s.closers, ln.Close, tr.Close, udp.Close)
	s.mu.Unlock()
	for range s.cfg.AcceptLoops {
		s.wg.Go(func() {
			for {
				conn, err := ln.Accept(s.ctx)
				if err != nil {
					return
				}
				s.wg.Go(func() { s.serveQUIC(conn) })
			}
		})
	}
	s.log.Info("serving QUIC tunnels", "addr", udp.LocalAddr().String(), "accept_loops", s.cfg.AcceptLoops)
	return nil
}

// ListenTCP serves the SSH fallback on a TCP address.
func (s *Server) ListenTCP(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for SSH tunnels: %w", err)
	}
	return s.ServeTCP(ln)
}

// ServeTCP serves the SSH fallback on an open listener, which the server then owns.
func (s *Server) ServeTCP(ln net.Listener) error {
	s.mu.Lock()
	s.tcpAd = ln.Addr()
	s.closers = append(s.closers, ln.Close)
	s.mu.Unlock()
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if s.ctx.Err() != nil {
					return
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				if errors.Is(err, net.ErrClosed) {
					return
				}
				s.log.Warn("accepting SSH tunnel connection", "err", err)
				time.Sleep(50 * time.Millisecond) // EMFILE and friends: do not spin
				continue
			}
			handshaken, ok := s.sshStartups.Admit(c, s.log, "max_ssh_startups", "SSH tunnel connections")
			if !ok {
				continue
			}
			s.wg.Go(func() { s.serveTCP(c, handshaken) })
		}
	})
	s.log.Info("serving SSH fallback tunnels", "addr", ln.Addr().String())
	return nil
}

// Endpoint returns where the server listens.
func (s *Server) Endpoint() Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ep Endpoint
	if s.quicAd != nil {
		ep.QUIC = s.quicAd.String()
	}
	if s.tcpAd != nil {
		ep.TCP = s.tcpAd.String()
	}
	return ep
}

func (s *Server) serveQUIC(conn *quic.Conn) {
	l := &quicLink{conn: conn}
	cluster, err := s.cfg.VerifyLeaf(l.peerChain())
	if err != nil { // VerifyConnection passed a moment ago; trust may have changed since
		l.close(codeRejected, "certificate refused")
		return
	}
	s.serveLink(l, cluster)
}

// handshaken is called once the SSH handshake and chain exchange have ended.
func (s *Server) serveTCP(c net.Conn, handshaken func()) {
	defer handshaken()
	cert, err := s.certificate()
	if err != nil {
		s.log.Error("no tunnel certificate", "err", err)
		c.Close()
		return
	}
	l, cluster, err := acceptSSH(c, cert, s.cfg.VerifyLeaf, s.cfg.HandshakeTimeout)
	handshaken()
	if err != nil {
		s.log.Info("refused SSH tunnel", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	s.serveLink(l, cluster)
}

func (s *Server) admit(cluster string) *frame.HelloAck {
	s.mu.Lock()
	n := len(s.tunnels[cluster])
	s.mu.Unlock()
	if n >= s.cfg.MaxTunnelsPerCluster {
		return s.tooManyTunnels(n)
	}
	select {
	case s.hellos <- struct{}{}:
		return nil
	default:
		return &frame.HelloAck{Reason: "root is busy", RetryAfter: s.spread()}
	}
}

// tooManyTunnels refuses a hello of a cluster that holds n tunnels, the bound.
func (s *Server) tooManyTunnels(n int) *frame.HelloAck {
	return &frame.HelloAck{Reason: fmt.Sprintf("cluster already holds %d tunnels to this proxy", n), RetryAfter: s.cfg.RetrySpread}
}

func (s *Server) spread() time.Duration {
	return s.cfg.RetrySpread/2 + rand.N(s.cfg.RetrySpread/2+1)
}

func (s *Server) serveLink(l link, cluster string) {
	var replicas []Endpoint
	if s.cfg.Replicas != nil {
		replicas = s.cfg.Replicas()
	}
	admitted := false
	var t *rootTunnel
	_, err := rootHello(s.ctx, l, cluster, rootHelloParams{
		minVersion: s.cfg.MinVersion, maxVersion: s.cfg.MaxVersion,
		interval: s.cfg.KeepAliveInterval, count: s.cfg.KeepAliveCount,
		replica: s.cfg.Replica, replicas: replicas, timeout: s.cfg.HandshakeTimeout, noBulk: s.cfg.legacyNoBulk,
		admit: func(c string) *frame.HelloAck {
			ack := s.admit(c)
			admitted = ack == nil
			if admitted && s.cfg.testAfterAdmit != nil {
				s.cfg.testAfterAdmit()
			}
			return ack
		},
		register: func(sess *session) (*frame.HelloAck, error) {
			// Listed and recorded before the leaf reads the answer: a leaf that says
			// "connected" is routable at once, here and (through OnConnect's record)
			// from the other replicas. The bound is checked again here, under the lock
			// that lists the tunnel: hellos admitted together cannot pass it together.
			s.mu.Lock()
			if s.ctx.Err() != nil {
				s.mu.Unlock()
				return nil, errServerClosing
			}
			if n := len(s.tunnels[cluster]); n >= s.cfg.MaxTunnelsPerCluster {
				s.mu.Unlock()
				return s.tooManyTunnels(n), nil
			}
			t = &rootTunnel{session: sess}
			s.tunnels[cluster] = append(s.tunnels[cluster], t)
			s.mu.Unlock()
			if s.cfg.OnConnect != nil {
				s.cfg.OnConnect(s.info(t))
			}
			return nil, nil
		},
	})
	if admitted {
		<-s.hellos
	}
	switch {
	case errors.Is(err, errServerClosing):
		l.close(codeGoAway, "server closing")
		return
	case err != nil && t == nil:
		s.log.Info("refused tunnel hello", "cluster", cluster, "transport", l.transport(), "remote", l.remoteAddr().String(), "err", err)
		// The reason rides in the close too: on QUIC the close can overtake the refusal
		// written on the control stream, and the (authenticated) leaf should still learn why.
		reason := "hello refused: " + err.Error()
		if len(reason) > 200 {
			reason = reason[:200]
		}
		l.close(codeRejected, reason)
		return
	}
	info := s.info(t)
	if err == nil {
		s.log.Info("leaf tunnel connected", "cluster", cluster, "transport", info.Transport, "version", info.Version, "remote", info.RemoteAddr,
			"cipher", t.link.cipher(), "keepalive_interval", info.KeepAliveInterval, "keepalive_count", info.KeepAliveCount)
		err = s.heartbeats(t)
	}
	t.end(codeHeartbeat, err)
	s.mu.Lock()
	s.tunnels[cluster] = slices.DeleteFunc(s.tunnels[cluster], func(x *rootTunnel) bool { return x == t })
	if len(s.tunnels[cluster]) == 0 {
		delete(s.tunnels, cluster)
	}
	s.mu.Unlock()
	s.log.Info("leaf tunnel disconnected", "cluster", cluster, "transport", info.Transport, "err", err)
	if s.cfg.OnDisconnect != nil {
		s.cfg.OnDisconnect(s.info(t), err)
	}
}

// heartbeats answers the leaf's heartbeats until the tunnel ends; a leaf silent for
// interval × count is cut.
func (s *Server) heartbeats(t *rootTunnel) error {
	for {
		typ, p, err := frame.ReadWithin(t.ctrl, t.deadTimeout(), t.ctrl.cutRead)
		if err != nil {
			if r := t.reason(); r != nil {
				return r
			}
			return fmt.Errorf("control stream: %w", err)
		}
		if typ != frame.TypeHeartbeat {
			return fmt.Errorf("%w: %s on the control stream", frame.ErrUnexpected, typ)
		}
		hb, err := frame.UnmarshalHeartbeat(t.version, p)
		if err != nil {
			return err
		}
		t.lastHeartbeat.Store(time.Now().UnixNano())
		t.state.Store(hb.State)
		t.active.Store(int64(hb.ActiveStreams))
		reply := &frame.HeartbeatReply{Seq: hb.Seq}
		if s.cfg.ReconnectHint != nil {
			reply.ReconnectAfter = s.cfg.ReconnectHint(t.cluster)
		}
		if s.cfg.Replicas != nil {
			reply.Replicas = s.cfg.Replicas()
		}
		if err := t.writeControl(frame.TypeHeartbeatReply, reply.Marshal(t.version)); err != nil {
			return fmt.Errorf("answering heartbeat: %w", err)
		}
		if s.cfg.OnHeartbeat != nil {
			s.cfg.OnHeartbeat(s.info(t))
		}
	}
}

func (s *Server) info(t *rootTunnel) TunnelInfo {
	st, _ := t.state.Load().(string)
	return TunnelInfo{
		Cluster: t.cluster, Transport: t.link.transport(), Version: t.version, RemoteAddr: t.link.remoteAddr().String(),
		Agent: t.agent, ConnectedAt: t.connectedAt, LastHeartbeat: time.Unix(0, t.lastHeartbeat.Load()),
		KeepAliveInterval: t.interval, KeepAliveCount: t.count, State: st, ActiveStreams: uint64(max(t.active.Load(), 0)),
		Bulk: t.bulk, Dials: t.dials.Load(),
	}
}

// Tunnels lists the tunnels connected to this replica.
func (s *Server) Tunnels() []TunnelInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []TunnelInfo
	for _, ts := range s.tunnels {
		for _, t := range ts {
			out = append(out, s.info(t))
		}
	}
	return out
}

// pick chooses the tunnel for a new stream: a healthy one (a heartbeat within two
// intervals) before a silent one — a leaf whose UDP just got blocked has already moved
// to SSH while its old QUIC tunnel waits out its heartbeat deadline here —; for a user
// session (userSession) an SSH tunnel the leaf keeps beside QUIC for sessions (bulk: the
// SSH carrier costs less CPU per byte), for anything else QUIC before SSH (a leaf that
// moved back to QUIC gets new streams there while an unmarked SSH tunnel drains); then
// the newest.
func (s *Server) pick(cluster string, userSession bool) *rootTunnel {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var best *rootTunnel
	bestRank := -1
	for _, t := range s.tunnels[cluster] {
		r := 0
		if now.Sub(time.Unix(0, t.lastHeartbeat.Load())) <= 2*t.interval+100*time.Millisecond {
			r += 4
		}
		if st, _ := t.state.Load().(string); st == StateClosing {
			r &^= 4 // closing for idleness: only when nothing else is there
		} else if userSession && t.bulk {
			r += 2
		}
		if t.link.transport() == QUIC {
			r++
		}
		if r > bestRank || r == bestRank && t.connectedAt.After(best.connectedAt) {
			best, bestRank = t, r
		}
	}
	return best
}

// Dial opens a stream to the leaf cluster and asks it to connect node, a registered node
// name (never an address), on behalf of the user whose certificate and address are
// given. It returns the connection once the leaf accepted, or a *DialDeniedError with the
// leaf's reason, or ErrNoTunnel. A user session goes over the leaf's healthy SSH tunnel
// marked Bulk when it has one (CarrierOf tells which carrier a connection rides), every
// other request over the usual pick: healthy first, QUIC before SSH, newest.
func (s *Server) Dial(ctx context.Context, cluster, node string, userCert []byte, clientAddr string) (net.Conn, error) {
	return s.DialTraced(ctx, cluster, &frame.DialRequest{Node: node, UserCert: userCert, ClientAddr: clientAddr})
}

// DialTraced is Dial with a whole request, TraceID included (sent to version 2 leaves),
// and Service (version 3 leaves): for a service other than frame.ServiceSSH the returned
// connection carries the leaf's answer. A leaf whose tunnel speaks an older version
// cannot be asked for a service: frame.ErrServiceUnsupported, before anything is sent.
func (s *Server) DialTraced(ctx context.Context, cluster string, req *frame.DialRequest) (net.Conn, error) {
	if err := req.Validate(); err != nil {
		s.log.Warn("refused a dial for something that is not a node name", "cluster", cluster, "target", req.Node, "service", req.Service.String())
		return nil, err
	}
	t := s.pick(cluster, req.Service == frame.ServiceSSH)
	if t == nil {
		return nil, fmt.Errorf("dialing %q in %q: %w", req.Node, cluster, ErrNoTunnel)
	}
	if req.Service != frame.ServiceSSH && t.version < frame.Version3 {
		return nil, fmt.Errorf("asking %q for its %s service: %w (it speaks version %d: upgrade the leaf)", cluster, req.Service, frame.ErrServiceUnsupported, t.version)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.DialTimeout)
		defer cancel()
	}
	before := t.link.received()
	conn, err := s.dialOn(ctx, t, req)
	var denied *DialDeniedError
	switch {
	case err == nil || errors.As(err, &denied):
		t.failures.Store(0)
	case t.link.transport() == QUIC && t.link.received() == before && !errors.Is(ctx.Err(), context.Canceled):
		// Nothing at all came back from the leaf while it should have answered (its QUIC
		// stack acknowledges the request even when its handler is slow): the path is
		// failing, not the handler.
		if n := t.failures.Add(1); n >= StreamFailureLimit {
			s.log.Warn("closing QUIC tunnel after repeated stream failures; the leaf falls back", "cluster", cluster, "failures", n, "err", err)
			t.end(codeStreamFailures, errors.New("repeated stream failures"))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dialing %q in %q over %s: %w", req.Node, cluster, t.link.transport(), err)
	}
	return conn, nil
}

func (s *Server) dialOn(ctx context.Context, t *rootTunnel, req *frame.DialRequest) (net.Conn, error) {
	p, err := req.Marshal(t.version)
	if err != nil {
		return nil, err
	}
	fr, err := frame.Append(nil, frame.TypeDialRequest, p)
	if err != nil {
		return nil, err
	}
	t.dials.Add(1)
	st, err := t.link.openStream(ctx, fr)
	if err != nil {
		return nil, fmt.Errorf("opening stream with the dial request: %w", err)
	}
	typ, ap, err := frame.ReadWithin(st, remaining(ctx), st.cutRead)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("reading dial answer: %w", err)
	}
	if typ != frame.TypeDialAnswer {
		st.Close()
		return nil, fmt.Errorf("%w: %s instead of a dial answer", frame.ErrUnexpected, typ)
	}
	ans, err := frame.UnmarshalDialAnswer(t.version, ap)
	if err != nil {
		st.Close()
		return nil, err
	}
	if !ans.Accepted {
		st.Close()
		return nil, &DialDeniedError{Cluster: t.cluster, Node: req.Node, Reason: denialReason(ans.Reason)}
	}
	return newStreamConn(st, t.link, nil), nil
}

// Disconnect closes every tunnel of the leaf cluster now (trust disabled or removed) and
// returns how many it closed. The leaf sees the close at once; whether it may come back
// is VerifyLeaf's decision.
func (s *Server) Disconnect(cluster, reason string) int {
	s.mu.Lock()
	ts := slices.Clone(s.tunnels[cluster])
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, t := range ts {
		wg.Go(func() { s.goAway(t, 0, reason, codeRevoked, 300*time.Millisecond) })
	}
	wg.Wait()
	return len(ts)
}

// goAway tells the leaf to go away and when to come back, gives it up to linger to close
// the tunnel itself (so the go-away is read before the close tears the streams down),
// then closes it.
func (s *Server) goAway(t *rootTunnel, after time.Duration, reason string, code uint64, linger time.Duration) {
	g := &frame.GoAway{ReconnectAfter: after, Reason: reason}
	sent := make(chan error, 1)
	go func() { sent <- t.writeControl(frame.TypeGoAway, g.Marshal(t.version)) }()
	timer := time.NewTimer(linger)
	defer timer.Stop()
	select {
	case err := <-sent:
		if err == nil {
			select {
			case <-t.link.done():
			case <-timer.C:
			}
		}
	case <-timer.C: // a stuck leaf does not hold a close
	}
	t.end(code, errors.New(reason))
}

// Shutdown tells every leaf to go away and come back after a random delay up to spread
// (so a restarting root is not stormed), closes the tunnels, and stops listening.
func (s *Server) Shutdown(spread time.Duration) error {
	s.mu.Lock()
	var all []*rootTunnel
	for _, ts := range s.tunnels {
		all = append(all, ts...)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, t := range all {
		wg.Go(func() {
			var after time.Duration
			if spread > 0 {
				after = rand.N(spread)
			}
			s.goAway(t, after, "root shutting down", codeGoAway, time.Second)
		})
	}
	wg.Wait()
	return s.Close()
}

// Close stops the listeners and closes every tunnel.
func (s *Server) Close() error {
	s.stop()
	s.mu.Lock()
	closers := s.closers
	s.closers = nil
	var all []*rootTunnel
	for _, ts := range s.tunnels {
		all = append(all, ts...)
	}
	s.mu.Unlock()
	for _, t := range all {
		t.end(codeGoAway, ErrClosed)
	}
	for _, c := range closers {
		_ = c()
	}
	s.wg.Wait()
	return nil
}
