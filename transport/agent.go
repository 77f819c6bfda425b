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
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/tetherproject/tether/transport/frame"
)

// DialHandler decides a dial request on the leaf. To accept it returns serve, which then
// owns the connection (it is closed when serve returns). To refuse it returns an error:
// a *Denial's reason reaches the root; any other error is reported as a generic refusal.
// The handler must check that req.Node is a registered node; the transport has already
// refused anything that is not a node name.
type DialHandler func(ctx context.Context, req *frame.DialRequest) (serve func(net.Conn), err error)

// AgentConfig configures a leaf's tunnel agent. Cluster, a certificate, RootCAs and
// Handler are required.
type AgentConfig struct {
	// Cluster is the leaf cluster's name, as its certificate names it.
	Cluster string
	// Certificate is the leaf's client certificate (chain and key) from its cluster's
	// X.509 CA; GetCertificate, when set, is asked on each connect instead.
	Certificate    *tls.Certificate
	GetCertificate func() (*tls.Certificate, error)
	// RootCAs is the pinned pool the root's certificate must verify against.
	RootCAs *x509.CertPool
	// ServerName is the name the root's certificate must carry (default: the host of
	// the endpoint dialled).
	ServerName string
	// Handler decides dial requests.
	Handler DialHandler
	// State, when set, is the leaf status each heartbeat carries (default "ok").
	State func() string
	// KeepAliveInterval and KeepAliveCount are the leaf's proposal; the root decides.
	KeepAliveInterval time.Duration
	KeepAliveCount    int
	// MinVersion and MaxVersion bound the protocol versions offered.
	MinVersion, MaxVersion uint16
	// HandshakeTimeout bounds a QUIC or SSH connect including the hello
	// (DefaultHandshakeTimeout); a black-holed UDP path falls back after it.
	HandshakeTimeout time.Duration
	// ProbeInterval is how often QUIC is tried again while on the SSH fallback
	// (DefaultProbeInterval, jittered ±50 %).
	ProbeInterval time.Duration
	// DrainTimeout bounds how long an SSH tunnel keeps its streams after the leaf moved
	// back to QUIC (default 1 minute).
	DrainTimeout time.Duration
	// BulkIdleTimeout closes the SSH tunnel for sessions (BulkSSH) once it carried no
	// session stream for this long (DefaultBulkIdleTimeout); sessions still on it keep it.
	BulkIdleTimeout time.Duration
	// Backoff spaces reconnects.
	Backoff Backoff
	// DisableQUIC or DisableSSH leaves a carrier out.
	DisableQUIC, DisableSSH bool
	// BulkSSH opens, per replica, an SSH-over-TCP tunnel beside the QUIC one while QUIC
	// is the carrier, for user session streams (bulk bytes: x/crypto/ssh over TCP costs
	// less CPU per byte than quic-go): on demand, when a session dial arrives over QUIC
	// (that session rides QUIC), and closed after BulkIdleTimeout without a session. It
	// is an ordinary tunnel (same identity, hello, heartbeats); a failed attempt or a
	// failed tunnel delays the next one by a backoff of its own; a root that does not
	// agree in its hello answer gets none. When QUIC fails the SSH tunnel becomes the
	// only one, and when QUIC returns it is kept instead of drained.
	BulkSSH bool
	// IgnoreAdvertisedReplicas keeps the agent to the replicas it was given instead of
	// also following the replica list the root advertises.
	IgnoreAdvertisedReplicas bool
	// UDPBufferSize is the UDP socket buffer to ask for (DefaultUDPBufferSize).
	UDPBufferSize int
	// MaxIncomingStreams bounds the dial streams the root may have open on one QUIC
	// tunnel (DefaultMaxIncomingStreams).
	MaxIncomingStreams int64
	// OnStatus, when set, is called whenever a replica's status changes.
	OnStatus func(ReplicaStatus)
	// Name describes the agent's software in the hello.
	Name string
	// Logger receives the agent's logs (slog.Default()).
	Logger *slog.Logger
}

// ReplicaStatus is the leaf's view of its tunnel to one root replica.
type ReplicaStatus struct {
	Endpoint  Endpoint
	Connected bool
	// Transport is the carrier in use while connected.
	Transport Transport
	Version   uint16
	// Replica is the name the root replica gave in its hello answer.
	Replica string
	// Since is when the current state began.
	Since time.Time
	// LastHeartbeat is when the root last answered a heartbeat.
	LastHeartbeat time.Time
	// KeepAliveInterval and KeepAliveCount are the values agreed with the root.
	KeepAliveInterval time.Duration
	KeepAliveCount    int
	// LastError is why the last connect or tunnel failed.
	LastError string
	// QUICFailure is the class of the last QUIC failure (empty when QUIC last worked).
	QUICFailure string
	// Bulk: an SSH tunnel for user sessions is up beside the QUIC one (BulkSSH).
	Bulk bool
	// BulkOnDemand: the next session dial may open one (BulkSSH on, and the root
	// agreed); false when the tunnel is not QUIC or the root does not take it.
	BulkOnDemand bool
	// BulkError is why the last attempt at that SSH tunnel failed, or why it ended.
	BulkError string
}

// Agent keeps the leaf's tunnels: one to every root replica it is given or learns of,
// each over QUIC when it can and SSH when it must.
type Agent struct {
	cfg AgentConfig
	log *slog.Logger
	ctx context.Context
	end context.CancelFunc

	mu       sync.Mutex
	replicas map[Endpoint]*replica

	udpMu sync.Mutex
	qtr   *quic.Transport
	udp   *net.UDPConn
}

// NewAgent checks the configuration and returns an agent with no replica yet.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	switch {
	case cfg.Cluster == "":
		return nil, errors.New("transport: AgentConfig.Cluster is required")
	case cfg.Certificate == nil && cfg.GetCertificate == nil:
		return nil, errors.New("transport: AgentConfig needs a Certificate or GetCertificate")
	case cfg.RootCAs == nil:
		return nil, errors.New("transport: AgentConfig.RootCAs is required (the pinned root CA)")
	case cfg.Handler == nil:
		return nil, errors.New("transport: AgentConfig.Handler is required")
	case cfg.DisableQUIC && cfg.DisableSSH:
		return nil, errors.New("transport: both carriers disabled")
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
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = time.Minute
	}
	if cfg.BulkIdleTimeout == 0 {
		cfg.BulkIdleTimeout = DefaultBulkIdleTimeout
	}
	if cfg.UDPBufferSize == 0 {
		cfg.UDPBufferSize = DefaultUDPBufferSize
	}
	if cfg.MaxIncomingStreams == 0 {
		cfg.MaxIncomingStreams = DefaultMaxIncomingStreams
	}
	if cfg.Name == "" {
		cfg.Name = "tether-transport"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, end := context.WithCancel(context.Background())
	return &Agent{cfg: cfg, log: log.With("component", "tunnel-agent", "cluster", cfg.Cluster), ctx: ctx, end: end, replicas: map[Endpoint]*replica{}}, nil
}

// AddReplica starts keeping a tunnel to a root replica (nothing if it already does).
func (a *Agent) AddReplica(ep Endpoint) { a.addReplica(ep, false) }

// addReplica starts a replica's tunnel; learned marks one known only from a root's
// advertisement (forgotten when no longer advertised). It reports whether it started one.
func (a *Agent) addReplica(ep Endpoint, learned bool) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addReplicaLocked(ep, learned)
}

// addReplicaLocked is addReplica with a.mu held.
func (a *Agent) addReplicaLocked(ep Endpoint, learned bool) bool {
	if a.ctx.Err() != nil {
		return false
	}
	if r := a.replicas[ep]; r != nil {
		r.learned = r.learned && learned // given by the caller: never forgotten
		return false
	}
	ctx, cancel := context.WithCancel(a.ctx)
	r := &replica{a: a, ep: ep, ctx: ctx, cancel: cancel, done: make(chan struct{}), log: a.log.With("replica", ep.QUIC+"|"+ep.TCP), learned: learned}
	r.st = ReplicaStatus{Endpoint: ep, Since: time.Now()}
	a.replicas[ep] = r
	go r.run()
	return true
}

// RemoveReplica closes the tunnel to a replica now and stops reconnecting to it.
func (a *Agent) RemoveReplica(ep Endpoint) {
	a.mu.Lock()
	r := a.replicas[ep]
	delete(a.replicas, ep)
	a.mu.Unlock()
	if r != nil {
		r.cancel()
		<-r.done
	}
}

// Status reports every replica's tunnel, ordered by endpoint.
func (a *Agent) Status() []ReplicaStatus {
	a.mu.Lock()
	rs := make([]*replica, 0, len(a.replicas))
	for _, r := range a.replicas {
		rs = append(rs, r)
	}
	a.mu.Unlock()
	out := make([]ReplicaStatus, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.status())
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Endpoint.QUIC+out[i].Endpoint.TCP < out[j].Endpoint.QUIC+out[j].Endpoint.TCP
	})
	return out
}

// Close closes every tunnel and stops the agent.
func (a *Agent) Close() error {
	a.end()
	a.mu.Lock()
	rs := a.replicas
	a.replicas = map[Endpoint]*replica{}
	a.mu.Unlock()
	for _, r := range rs {
		<-r.done
	}
	a.udpMu.Lock()
	defer a.udpMu.Unlock()
	if a.qtr != nil {
		a.qtr.Close()
		a.udp.Close()
		a.qtr, a.udp = nil, nil
	}
	return nil
}

func (a *Agent) certificate() (*tls.Certificate, error) {
	if a.cfg.GetCertificate != nil {
		return a.cfg.GetCertificate()
	}
	return a.cfg.Certificate, nil
}

// quicTransport is the agent's one UDP socket for all its QUIC tunnels.
func (a *Agent) quicTransport() (*quic.Transport, error) {
	a.udpMu.Lock()
	defer a.udpMu.Unlock()
	if a.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if a.qtr == nil {
		udp, err := listenUDP(":0", a.cfg.UDPBufferSize, a.log)
		if err != nil {
			return nil, err
		}
		a.udp, a.qtr = udp, &quic.Transport{Conn: udp}
	}
	return a.qtr, nil
}

func (a *Agent) hello() *frame.Hello {
	return &frame.Hello{MinVersion: a.cfg.MinVersion, MaxVersion: a.cfg.MaxVersion, KeepAliveInterval: a.cfg.KeepAliveInterval,
		KeepAliveCount: a.cfg.KeepAliveCount, Cluster: a.cfg.Cluster, Agent: a.cfg.Name, Bulk: a.cfg.BulkSSH}
}

// MaxLearnedReplicas bounds the replicas an agent keeps from the roots' advertisements,
// beyond those it was given (AddReplica): twice what one advertisement may list.
const MaxLearnedReplicas = 2 * frame.MaxReplicas

// learn follows a root's advertisement eps, as received by from: a learned replica that
// is neither advertised nor connected is forgotten (its tunnel goroutine ends), and new
// endpoints are taken while fewer than MaxLearnedReplicas are kept, so a root (or a root
// whose replicas come and go under new addresses) cannot make the leaf keep and dial an
// unbounded set of addresses.
func (a *Agent) learn(from *replica, eps []Endpoint) {
	if a.cfg.IgnoreAdvertisedReplicas {
		return
	}
	advertised := make(map[Endpoint]bool, len(eps))
	for _, ep := range eps {
		advertised[ep] = true
	}
	var stale []*replica
	kept := 0
	full := false
	// Forgetting, counting and adding under one lock: replicas that learn at the same
	// moment (each on its own goroutine) cannot each add up to the bound.
	a.mu.Lock()
	for ep, r := range a.replicas {
		if !r.learned {
			continue
		}
		if !advertised[ep] && r != from && !r.status().Connected {
			delete(a.replicas, ep)
			stale = append(stale, r)
			continue
		}
		kept++
	}
	for _, ep := range eps {
		if kept >= MaxLearnedReplicas {
			full = a.replicas[ep] == nil
			if full {
				break
			}
			continue
		}
		if a.addReplicaLocked(ep, true) {
			kept++
		}
	}
	a.mu.Unlock()
	for _, r := range stale {
		r.log.Info("forgetting a root replica no longer advertised")
		r.cancel() // not waited for: learn runs on a replica's own goroutine
	}
	if full {
		a.log.Warn("a root advertises more replicas than a leaf follows; the rest are left out", "limit", MaxLearnedReplicas)
	}
}

// replica keeps the tunnel to one root replica.
type replica struct {
	a      *Agent
	ep     Endpoint
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	log    *slog.Logger

	mu sync.Mutex
	st ReplicaStatus

	// learned: known only from a root's advertisement (guarded by a.mu).
	learned bool

	hint         atomic.Int64 // reconnect-after hint from the root, nanoseconds
	quicSuspend  time.Time    // no QUIC before this (owned by run)
	quicTimeouts int          // consecutive QUIC connects that timed out (owned by run)

	// The SSH tunnel for sessions (AgentConfig.BulkSSH), opened on demand.
	bulkMu        sync.Mutex
	bulkFor       *session    // the QUIC tunnel beside which it may open; nil: none
	bulk          *bulkTunnel // connecting or up; nil: none
	bulkBackoff   Backoff     // spaces attempts after failures
	bulkNotBefore time.Time   // no new attempt before this
}

func (r *replica) status() ReplicaStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

func (r *replica) update(f func(*ReplicaStatus)) {
	r.mu.Lock()
	f(&r.st)
	st := r.st
	r.mu.Unlock()
	if r.a.cfg.OnStatus != nil {
		r.a.cfg.OnStatus(st)
	}
}

func (r *replica) run() {
	defer close(r.done)
	bo := r.a.cfg.Backoff
	for r.ctx.Err() == nil {
		s, err := r.connect()
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			r.update(func(st *ReplicaStatus) {
				if st.Connected {
					st.Since = time.Now()
				}
				st.Connected, st.LastError = false, err.Error()
			})
			wait := bo.Next()
			var hr *helloRefusedError
			if errors.As(err, &hr) {
				wait = max(wait, hr.retryAfter)
			}
			wait = max(wait, time.Duration(r.hint.Swap(0)))
			r.log.Info("tunnel connect failed", "err", err, "retry_in", wait)
			sleep(r.ctx, wait)
			continue
		}
		up := r.serve(s)
		bo.Connected(up)
		if r.ctx.Err() != nil {
			return
		}
		wait := max(bo.Next(), time.Duration(r.hint.Swap(0)))
		sleep(r.ctx, wait)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// connect brings up a tunnel: QUIC first, SSH on any QUIC failure (but not when the root
// itself refused the hello: SSH would be refused the same way). While QUIC is suspended
// (it failed in use) SSH goes first, and QUIC is still the last resort when SSH fails too:
// a root that is simply down comes back on whichever carrier answers first.
func (r *replica) connect() (*session, error) {
	canQUIC := !r.a.cfg.DisableQUIC && r.ep.QUIC != ""
	canSSH := !r.a.cfg.DisableSSH && r.ep.TCP != ""
	suspended := time.Now().Before(r.quicSuspend)
	var qerr error
	tryQUIC := func() (*session, error) {
		// Each connect that timed out doubles the next one's handshake time (up to 4×):
		// a root starved by a crowd of returning leaves gets the time to answer instead
		// of redoing handshakes that are given up on. The first attempt, which decides
		// the fallback, keeps the configured timeout.
		timeout := r.a.cfg.HandshakeTimeout << min(r.quicTimeouts, 2)
		s, err := r.dialQUIC(r.ctx, timeout)
		if err == nil {
			r.quicTimeouts = 0
			return s, nil
		}
		if classifyQUIC(err) == failHandshakeTimeout {
			r.quicTimeouts++
		} else {
			r.quicTimeouts = 0
		}
		var hr *helloRefusedError
		if errors.As(err, &hr) || r.ctx.Err() != nil {
			return nil, err
		}
		class := classifyQUIC(err)
		r.update(func(st *ReplicaStatus) { st.QUICFailure = class })
		qerr = fmt.Errorf("QUIC (%s): %w", class, err)
		if canSSH && !suspended {
			r.log.Warn("QUIC tunnel failed; falling back to SSH over TCP", "class", class, "err", err)
		}
		return nil, nil
	}
	if canQUIC && (!suspended || !canSSH) {
		if s, err := tryQUIC(); s != nil || err != nil {
			return s, err
		}
	}
	if !canSSH {
		if qerr == nil {
			qerr = errors.New("no carrier available")
		}
		return nil, qerr
	}
	s, err := r.dialSSH(r.ctx)
	if err == nil {
		return s, nil
	}
	serr := fmt.Errorf("SSH: %w", err)
	if canQUIC && suspended && r.ctx.Err() == nil {
		if s, err := tryQUIC(); s != nil || err != nil {
			return s, err
		}
	}
	return nil, errors.Join(qerr, serr)
}

func (r *replica) serverName(addr string) string {
	if r.a.cfg.ServerName != "" {
		return r.a.cfg.ServerName
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// dialQUIC connects over QUIC with a handshake bounded by timeout.
func (r *replica) dialQUIC(ctx context.Context, timeout time.Duration) (*session, error) {
	cert, err := r.a.certificate()
	if err != nil {
		return nil, fmt.Errorf("leaf certificate: %w", err)
	}
	tr, err := r.a.quicTransport()
	if err != nil {
		return nil, err
	}
	addr, err := net.ResolveUDPAddr("udp", r.ep.QUIC)
	if err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{
		MinVersion:           tls.VersionTLS13,
		NextProtos:           []string{ALPN},
		RootCAs:              r.a.cfg.RootCAs,
		ServerName:           r.serverName(r.ep.QUIC),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil },
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := tr.Dial(hctx, addr, tlsConf, quicConfig(r.a.cfg.KeepAliveInterval, timeout, r.a.cfg.MaxIncomingStreams))
	if err != nil {
		return nil, err
	}
	l := &quicLink{conn: conn}
	// Once the carrier's handshake is done the root is reachable: a crowd may queue
	// the hello behind others, so it gets twice the time before the leaf gives up
	// (giving up early would only make a busy root redo the work).
	s, ack, err := leafHello(ctx, l, r.a.hello(), 2*timeout)
	if err != nil {
		l.close(codeRejected, "hello failed")
		if cause := l.closeErr(); cause != nil && !errors.Is(err, cause) && !errors.Is(cause, context.Canceled) {
			err = fmt.Errorf("%w (connection: %w)", err, cause)
		}
		return nil, err
	}
	r.a.learn(r, ack.Replicas)
	return s, nil
}

func (r *replica) dialSSH(ctx context.Context) (*session, error) {
	cert, err := r.a.certificate()
	if err != nil {
		return nil, fmt.Errorf("leaf certificate: %w", err)
	}
	hctx, cancel := context.WithTimeout(ctx, r.a.cfg.HandshakeTimeout)
	defer cancel()
	l, err := dialSSH(hctx, r.ep.TCP, cert, r.a.cfg.RootCAs, r.serverName(r.ep.TCP), r.a.cfg.Cluster, r.a.cfg.HandshakeTimeout)
	if err != nil {
		return nil, err
	}
	// Once the carrier's handshake is done the root is reachable: a crowd may queue
	// the hello behind others, so it gets twice the time before the leaf gives up
	// (giving up early would only make a busy root redo the work).
	s, ack, err := leafHello(ctx, l, r.a.hello(), 2*r.a.cfg.HandshakeTimeout)
	if err != nil {
		l.close(codeRejected, "hello failed")
		return nil, err
	}
	r.a.learn(r, ack.Replicas)
	return s, nil
}

func (r *replica) setUp(s *session) {
	r.update(func(st *ReplicaStatus) {
		st.Connected, st.Transport, st.Version, st.Replica = true, s.link.transport(), s.version, s.replica
		st.KeepAliveInterval, st.KeepAliveCount = s.interval, s.count
		st.Since, st.LastError, st.LastHeartbeat = time.Now(), "", time.Time{}
		if s.link.transport() == QUIC {
			st.QUICFailure = ""
		}
	})
	r.log.Info("tunnel connected", "transport", s.link.transport(), "cipher", s.link.cipher(), "version", s.version, "root_replica", s.replica,
		"keepalive_interval", s.interval, "keepalive_count", s.count)
}

// serve runs the tunnel until it ends, moving to QUIC when a probe finds it works again,
// and returns how long the replica was connected. While QUIC is the carrier and the root
// agreed, an SSH tunnel for user sessions may run beside it (bulk), opened on demand by
// the first session dial and closed when idle (see demandBulk); when the QUIC tunnel
// ends, a live bulk tunnel takes over as the only one, and when a probe brings QUIC back
// an SSH tunnel the root knows as bulk stays up beside it instead of draining.
func (r *replica) serve(s *session) time.Duration {
	start := time.Now()
	r.setUp(s)
	done := r.runSession(s)
	var probe chan *session
	stopProbe := func() {}
	r.allowBulk(s, nil, nil)
	if s.link.transport() == SSH && !r.a.cfg.DisableQUIC && r.ep.QUIC != "" {
		probe, stopProbe = r.startProbe()
	}
	defer func() { stopProbe() }()
	for {
		select {
		case <-r.ctx.Done():
			s.end(codeNormal, ErrClosed)
			<-done
			if b, bdone := r.stopBulk(); b != nil {
				b.end(codeNormal, ErrClosed)
				<-bdone
			}
			return time.Since(start)
		case <-done:
			r.ended(s)
			b, bdone := r.stopBulk()
			r.update(func(st *ReplicaStatus) { st.Bulk, st.BulkOnDemand = false, false })
			if b == nil {
				return time.Since(start)
			}
			select {
			case <-bdone:
				return time.Since(start)
			default:
			}
			r.log.Info("the QUIC tunnel ended; the SSH tunnel kept for sessions now carries everything")
			b.closing.Store(false) // it may have been closing for idleness: no more
			s, done = b, bdone
			r.setUp(s)
			if !r.a.cfg.DisableQUIC && r.ep.QUIC != "" {
				probe, stopProbe = r.startProbe()
			}
		case q := <-probe:
			r.log.Info("QUIC works again; new streams move back from SSH")
			stopProbe()
			probe = nil
			old, oldDone := s, done
			s, done = q, r.runSession(q)
			r.setUp(q)
			if r.wantBulk(q) && old.bulk {
				// The root already sends sessions to this SSH tunnel: keep it for them
				// (it closes when idle like one opened on demand).
				r.allowBulk(q, old, oldDone)
			} else {
				go r.drain(old, oldDone)
				r.allowBulk(q, nil, nil)
			}
		}
	}
}

// wantBulk: a QUIC session whose root agreed to session streams over an SSH tunnel beside
// it, with SSH allowed for this replica.
func (r *replica) wantBulk(s *session) bool {
	return r.a.cfg.BulkSSH && s.link.transport() == QUIC && s.bulk && !r.a.cfg.DisableSSH && r.ep.TCP != ""
}

// StateClosing is the state a leaf's heartbeat carries on an SSH tunnel for sessions it
// is closing for idleness: the root sends it no new session (Server.pick), and the leaf
// closes it once the root has read that and the tunnel's streams have ended.
const StateClosing = "closing: idle"

// errBulkIdle ends an SSH tunnel for sessions that carried none for BulkIdleTimeout.
var errBulkIdle = errors.New("idle: no session for the idle timeout")

// bulkTunnel is the SSH tunnel for user sessions beside a QUIC one, while it connects or
// runs: opened on demand, it never disturbs the QUIC tunnel, and it ends when idle.
type bulkTunnel struct {
	cancel   context.CancelFunc
	finished chan struct{}

	mu    sync.Mutex
	s     *session
	sdone <-chan struct{}
}

// allowBulk makes q (the replica's current tunnel) the one beside which an SSH tunnel
// for sessions may open, when it wants one, adopting s (already running, done when sdone
// closes) as that tunnel when given.
func (r *replica) allowBulk(q, s *session, sdone <-chan struct{}) {
	r.bulkMu.Lock()
	defer r.bulkMu.Unlock()
	r.bulkFor = nil
	want := r.wantBulk(q)
	r.update(func(st *ReplicaStatus) { st.BulkOnDemand = want })
	if !want {
		return
	}
	r.bulkFor = q
	if s != nil {
		r.bulk = r.startBulk(s, sdone)
	}
}

// demandBulk opens the SSH tunnel for sessions beside q, the QUIC tunnel a session dial
// just arrived on, unless it is open or opening, or a failed attempt's backoff has not
// run out. The session that asked rides QUIC: nothing waits for the SSH tunnel.
func (r *replica) demandBulk(q *session) {
	r.bulkMu.Lock()
	defer r.bulkMu.Unlock()
	if r.bulkFor != q || r.bulk != nil || time.Now().Before(r.bulkNotBefore) {
		return
	}
	r.bulk = r.startBulk(nil, nil)
}

// stopBulk stops the SSH tunnel for sessions from being opened or watched and hands
// back its live session, if any, with its done channel; the caller ends or serves it.
func (r *replica) stopBulk() (*session, <-chan struct{}) {
	r.bulkMu.Lock()
	b := r.bulk
	r.bulkFor, r.bulk = nil, nil
	r.bulkMu.Unlock()
	return b.stop()
}

// startBulk starts keeping a bulk tunnel (r.bulkMu held).
func (r *replica) startBulk(s *session, sdone <-chan struct{}) *bulkTunnel {
	ctx, cancel := context.WithCancel(r.ctx)
	b := &bulkTunnel{cancel: cancel, finished: make(chan struct{}), s: s, sdone: sdone}
	go r.keepBulk(ctx, b)
	return b
}

// stop stops watching and hands back the live session, if any, with its done channel;
// the caller ends it or serves it. A nil receiver has nothing.
func (b *bulkTunnel) stop() (*session, <-chan struct{}) {
	if b == nil {
		return nil, nil
	}
	b.cancel()
	<-b.finished
	b.mu.Lock()
	defer b.mu.Unlock()
	s, d := b.s, b.sdone
	b.s, b.sdone = nil, nil
	return s, d
}

// keepBulk connects the SSH tunnel for sessions (unless adopting one) and watches it
// until it ends, closes it when idle, or ctx ends (the session then stays for stop's
// caller). It does not reconnect: the next session dial opens it again, not before the
// backoff a failed attempt or a failed tunnel drew.
func (r *replica) keepBulk(ctx context.Context, b *bulkTunnel) {
	defer close(b.finished)
	defer func() {
		r.bulkMu.Lock()
		if r.bulk == b {
			r.bulk = nil
		}
		r.bulkMu.Unlock()
	}()
	retryLater := func(err error, connected time.Duration) {
		r.bulkMu.Lock()
		if connected > 0 {
			r.bulkBackoff.Connected(connected)
		}
		wait := r.bulkBackoff.Next()
		var hr *helloRefusedError
		if errors.As(err, &hr) {
			wait = max(wait, hr.retryAfter)
		}
		r.bulkNotBefore = time.Now().Add(wait)
		r.bulkMu.Unlock()
		r.update(func(st *ReplicaStatus) { st.Bulk, st.BulkError = false, err.Error() })
		r.log.Info("SSH tunnel for sessions down or refused; sessions go over QUIC", "err", err, "next_attempt_after", wait)
	}
	b.mu.Lock()
	s, sdone := b.s, b.sdone
	b.mu.Unlock()
	if s == nil {
		var err error
		s, err = r.dialSSH(ctx)
		if err == nil && !s.bulk {
			s.end(codeNormal, errors.New("the root does not take session streams on an SSH tunnel"))
			err = errors.New("the root did not agree to an SSH tunnel for sessions")
		}
		if err != nil {
			if ctx.Err() == nil {
				retryLater(err, 0)
			}
			return
		}
		sdone = r.runSession(s)
		b.mu.Lock()
		b.s, b.sdone = s, sdone
		b.mu.Unlock()
		r.log.Info("SSH tunnel for sessions connected beside QUIC", "cipher", s.link.cipher(), "version", s.version)
	}
	r.update(func(st *ReplicaStatus) { st.Bulk, st.BulkError = true, "" })
	idle := r.a.cfg.BulkIdleTimeout
	tick := time.NewTicker(min(max(idle/5, 20*time.Millisecond), 5*time.Second))
	defer tick.Stop()
	var closingSince, ackedAt time.Time
	for {
		select {
		case <-ctx.Done():
			return // the session stays for whoever stopped us
		case <-sdone:
			b.mu.Lock()
			b.s, b.sdone = nil, nil
			b.mu.Unlock()
			err := s.reason()
			if errors.Is(err, errBulkIdle) {
				r.update(func(st *ReplicaStatus) { st.Bulk, st.BulkError = false, "" })
				r.log.Info("SSH tunnel for sessions closed: idle", "idle_timeout", idle)
				return
			}
			if err == nil {
				err = s.link.closeErr()
			}
			if err == nil {
				err = errors.New("tunnel closed")
			}
			retryLater(err, time.Since(s.connectedAt))
			return
		case now := <-tick.C:
			busy := s.streams.Load() > 0 || s.active.Load() > 0
			switch {
			case closingSince.IsZero():
				if !busy && now.Sub(time.Unix(0, s.lastUse.Load())) >= idle {
					// Ask the root to send no new session here, then close once it
					// answered a heartbeat after that (it read the mark) and every
					// stream it sent before has ended.
					closingSince = now
					s.closing.Store(true)
					s.heartbeatNow()
				}
			case ackedAt.IsZero():
				if seq := s.closingSeq.Load(); seq != 0 && s.repliedSeq.Load() >= seq {
					ackedAt = now
				}
			case !busy && now.Sub(ackedAt) >= 200*time.Millisecond:
				// The grace covers a session the root picked just before it read the
				// mark; its stream is counted busy by now.
				s.end(codeDrained, errBulkIdle)
			}
		}
	}
}

// ended records why a session ended; a QUIC tunnel that failed in use (heartbeats lost,
// repeated stream failures) suspends QUIC for a probe interval, so the next connect goes
// straight to SSH and a probe brings QUIC back.
func (r *replica) ended(s *session) {
	err := s.reason()
	if err == nil {
		err = s.link.closeErr()
	}
	if err == nil {
		err = errors.New("tunnel closed")
	}
	var ae *quic.ApplicationError
	suspend := false
	if s.link.transport() == QUIC {
		switch {
		case errors.As(err, &ae) && ae.Remote && ae.ErrorCode == codeStreamFailures:
			suspend = true
		case errors.Is(err, errHeartbeatLost), errors.Is(err, errStreamFailures):
			suspend = true
		default:
			var ite *quic.IdleTimeoutError
			suspend = errors.As(err, &ite)
		}
	}
	if suspend {
		r.quicSuspend = time.Now().Add(r.a.cfg.ProbeInterval)
		r.update(func(st *ReplicaStatus) { st.QUICFailure = "failed in use: " + err.Error() })
	}
	r.update(func(st *ReplicaStatus) {
		st.Connected, st.Since, st.LastError = false, time.Now(), err.Error()
	})
	r.log.Info("tunnel down", "transport", s.link.transport(), "err", err, "quic_suspended", suspend)
}

var (
	errHeartbeatLost  = errors.New("heartbeat answers stopped")
	errStreamFailures = errors.New("repeated stream failures")
	errGoneAway       = errors.New("root went away")
)

// runSession starts the session's goroutines (dial stream accept loop, heartbeats, the
// control reader) and returns a channel closed when all have stopped.
func (r *replica) runSession(s *session) <-chan struct{} {
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		for {
			st, err := s.link.acceptStream(r.ctx)
			if err != nil {
				s.end(codeNormal, err)
				return
			}
			go r.handleStream(s, st)
		}
	})
	wg.Go(func() {
		t := time.NewTicker(s.interval)
		defer t.Stop()
		var seq uint64
		for {
			seq++
			state := "ok"
			if r.a.cfg.State != nil {
				state = r.a.cfg.State()
			}
			closing := s.closing.Load()
			if closing {
				state = StateClosing
			}
			hb := &frame.Heartbeat{Seq: seq, State: state, ActiveStreams: uint64(max(s.active.Load(), 0))}
			if err := s.writeControl(frame.TypeHeartbeat, hb.Marshal(s.version)); err != nil {
				s.end(codeNormal, fmt.Errorf("sending heartbeat: %w", err))
				return
			}
			if closing {
				s.closingSeq.CompareAndSwap(0, seq)
			} else {
				s.closingSeq.Store(0)
			}
			select {
			case <-t.C:
			case <-s.kick:
			case <-s.link.done():
				return
			}
		}
	})
	wg.Go(func() {
		for {
			typ, p, err := frame.ReadWithin(s.ctrl, s.deadTimeout(), s.ctrl.cutRead)
			if err != nil {
				var ne net.Error
				if errors.Is(err, frame.ErrTimeout) || errors.As(err, &ne) && ne.Timeout() {
					err = fmt.Errorf("%w for %v: %w", errHeartbeatLost, s.deadTimeout(), err)
					s.end(codeHeartbeat, err)
				}
				s.end(codeNormal, err)
				return
			}
			switch typ {
			case frame.TypeHeartbeatReply:
				rep, err := frame.UnmarshalHeartbeatReply(s.version, p)
				if err != nil {
					s.end(codeRejected, err)
					return
				}
				r.hint.Store(int64(rep.ReconnectAfter))
				s.repliedSeq.Store(rep.Seq)
				r.update(func(st *ReplicaStatus) { st.LastHeartbeat = time.Now() })
				r.a.learn(r, rep.Replicas)
			case frame.TypeGoAway:
				g, err := frame.UnmarshalGoAway(s.version, p)
				if err != nil {
					s.end(codeRejected, err)
					return
				}
				r.hint.Store(int64(g.ReconnectAfter))
				if g.ReconnectAfter > 0 {
					s.end(codeNormal, fmt.Errorf("%w: %s (come back after %v)", errGoneAway, g.Reason, g.ReconnectAfter))
				} else {
					s.end(codeNormal, fmt.Errorf("%w: %s", errGoneAway, g.Reason))
				}
				return
			default:
				s.end(codeRejected, fmt.Errorf("%w: %s on the control stream", frame.ErrUnexpected, typ))
				return
			}
		}
	})
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

// handleStream reads a dial request, asks the handler, answers, and hands the stream to
// the handler's serve function. Dial requests that do not arrive whole in time count as
// stream failures; StreamFailureLimit in a row close a QUIC tunnel.
func (r *replica) handleStream(s *session, st stream) {
	s.streams.Add(1)
	s.lastUse.Store(time.Now().UnixNano())
	defer func() {
		s.lastUse.Store(time.Now().UnixNano())
		s.streams.Add(-1)
	}()
	req, err := readDialRequest(st, s.version, r.a.cfg.HandshakeTimeout)
	if err != nil {
		st.Close()
		var ne net.Error
		if errors.Is(err, frame.ErrTimeout) || errors.As(err, &ne) && ne.Timeout() {
			if n := s.failures.Add(1); n >= StreamFailureLimit && s.link.transport() == QUIC {
				s.end(codeStreamFailures, fmt.Errorf("%w: %d dial requests timed out", errStreamFailures, n))
			}
		}
		if errors.Is(err, frame.ErrNotANodeName) {
			r.log.Warn("refused a dial request for something that is not a node name", "err", err)
		} else {
			r.log.Info("bad dial stream", "err", err)
		}
		return
	}
	s.failures.Store(0)
	serve, herr := r.a.cfg.Handler(r.ctx, req)
	if herr == nil && serve == nil {
		herr = errors.New("handler accepted without a serve function")
	}
	if herr != nil {
		reason := genericDenial
		var d *Denial
		if errors.As(herr, &d) && d.Reason != "" {
			reason = fitDialAnswer(d.Reason)
		}
		r.log.Info("denied dial", "node", req.Node, "client", req.ClientAddr, "reason", herr)
		_ = frame.Write(st, frame.TypeDialAnswer, (&frame.DialAnswer{Reason: reason}).Marshal(s.version))
		_ = st.CloseWrite()
		st.Close()
		return
	}
	if err := frame.Write(st, frame.TypeDialAnswer, (&frame.DialAnswer{Accepted: true}).Marshal(s.version)); err != nil {
		st.Close()
		return
	}
	if req.Service == frame.ServiceSSH && s.link.transport() == QUIC {
		r.demandBulk(s) // a user session: the next ones ride the SSH tunnel for sessions
	}
	s.active.Add(1)
	conn := newStreamConn(st, s.link, func() {
		s.lastUse.Store(time.Now().UnixNano())
		s.active.Add(-1)
	})
	defer conn.Close()
	serve(conn)
}

// startProbe tries QUIC in the background every ProbeInterval (±50 %) and delivers the
// first session that says hello.
func (r *replica) startProbe() (chan *session, func()) {
	ctx, cancel := context.WithCancel(r.ctx)
	out := make(chan *session)
	go func() {
		for {
			iv := r.a.cfg.ProbeInterval
			sleep(ctx, iv/2+rand.N(iv+1))
			if ctx.Err() != nil {
				return
			}
			s, err := r.dialQUIC(ctx, r.a.cfg.HandshakeTimeout)
			if err != nil {
				r.log.Debug("QUIC probe failed", "class", classifyQUIC(err), "err", err)
				continue
			}
			select {
			case out <- s:
			case <-ctx.Done():
				s.end(codeNormal, ErrClosed)
			}
			return
		}
	}()
	return out, cancel
}

// drain closes a tunnel the leaf moved away from once its streams are done (or after
// DrainTimeout).
func (r *replica) drain(s *session, done <-chan struct{}) {
	deadline := time.Now().Add(r.a.cfg.DrainTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	grace := time.Now().Add(500 * time.Millisecond)
	for {
		select {
		case <-done:
			return
		case <-r.ctx.Done():
			s.end(codeNormal, ErrClosed)
			<-done
			return
		case now := <-tick.C:
			if now.After(grace) && s.active.Load() == 0 || now.After(deadline) {
				s.end(codeDrained, errors.New("moved to QUIC"))
				<-done
				return
			}
		}
	}
}
