package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetherproject/tether/transport/frame"
)

// session is a link after a successful hello: the agreed version and keep-alive values,
// and the control stream heartbeats run on.
type session struct {
	link     link
	ctrl     stream
	version  uint16
	interval time.Duration
	count    int
	cluster  string // the verified leaf cluster (root side)
	replica  string // the root replica's name (leaf side)
	agent    string
	// bulk: an SSH tunnel the leaf keeps beside QUIC for user session streams (root
	// side: the hello's mark; leaf side: the root's answer agreed to it).
	bulk bool

	connectedAt   time.Time
	lastHeartbeat atomic.Int64 // unix nanoseconds
	active        atomic.Int64 // dial streams in use
	failures      atomic.Int32 // consecutive stream failures
	state         atomic.Value // string: the leaf's last reported state

	// Leaf side, for the SSH tunnel for sessions's idle close (see keepBulk).
	streams    atomic.Int64  // dial streams being answered (then counted in active)
	lastUse    atomic.Int64  // unix nanoseconds: the last dial stream's start or end
	closing    atomic.Bool   // heartbeats carry StateClosing
	closingSeq atomic.Uint64 // the first heartbeat that carried it
	repliedSeq atomic.Uint64 // the last heartbeat the root answered
	kick       chan struct{} // a heartbeat now (heartbeatNow)

	writeMu sync.Mutex // serialises control frames
	endOnce sync.Once
	endErr  atomic.Pointer[error]
}

// reason is why the session was ended, or nil while it runs.
func (s *session) reason() error {
	if p := s.endErr.Load(); p != nil {
		return *p
	}
	return nil
}

// heartbeatNow has the heartbeat loop send one now rather than at its next tick.
func (s *session) heartbeatNow() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// deadTimeout is how long a side waits for the peer's next control frame.
func (s *session) deadTimeout() time.Duration { return time.Duration(s.count) * s.interval }

// writeControl writes one control frame. A write that the peer does not take within the
// keep-alive deadline (it stopped reading) ends the session: writes are bounded like reads.
func (s *session) writeControl(t frame.Type, payload []byte) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	stall := time.AfterFunc(s.deadTimeout(), func() {
		s.end(codeHeartbeat, errors.New("the peer stopped taking control frames"))
	})
	defer stall.Stop()
	return frame.Write(s.ctrl, t, payload)
}

// end closes the session's link once, recording why.
func (s *session) end(code uint64, err error) {
	s.endOnce.Do(func() {
		if err == nil {
			err = ErrClosed
		}
		s.endErr.Store(&err)
		reason := err.Error()
		s.link.close(code, reason)
	})
}

// helloRefusedError is a root's refusal of the hello.
type helloRefusedError struct {
	reason     string
	retryAfter time.Duration
}

func (e *helloRefusedError) Error() string {
	if e.retryAfter > 0 {
		return fmt.Sprintf("root refused the tunnel: %s (retry after %v)", e.reason, e.retryAfter)
	}
	return "root refused the tunnel: " + e.reason
}

// leafHello opens the control stream, sends the hello and reads the answer. The link
// counts as connected only when this returns a session.
func leafHello(ctx context.Context, l link, h *frame.Hello, timeout time.Duration) (*session, *frame.HelloAck, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ctrl, err := l.openControl(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the control stream: %w", err)
	}
	if err := frame.Write(ctrl, frame.TypeHello, h.Marshal()); err != nil {
		return nil, nil, fmt.Errorf("sending hello: %w", err)
	}
	t, p, err := frame.ReadWithin(ctrl, remaining(ctx), ctrl.cutRead)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the hello answer: %w", err)
	}
	if t != frame.TypeHelloAck {
		return nil, nil, fmt.Errorf("reading the hello answer: %w: %s", frame.ErrUnexpected, t)
	}
	ack, err := frame.UnmarshalHelloAck(p)
	if err != nil {
		return nil, nil, err
	}
	if ack.Reason != "" {
		return nil, ack, &helloRefusedError{reason: ack.Reason, retryAfter: ack.RetryAfter}
	}
	if ack.Version < h.MinVersion || ack.Version > h.MaxVersion {
		return nil, ack, fmt.Errorf("root chose protocol version %d outside the offered [%d,%d]", ack.Version, h.MinVersion, h.MaxVersion)
	}
	if ack.KeepAliveInterval < minKeepAliveInterval || ack.KeepAliveInterval > maxKeepAliveInterval || ack.KeepAliveCount > maxKeepAliveCount {
		return nil, ack, fmt.Errorf("root chose keep-alive %v × %d outside the bounds", ack.KeepAliveInterval, ack.KeepAliveCount)
	}
	s := &session{link: l, ctrl: ctrl, version: ack.Version, interval: ack.KeepAliveInterval, count: ack.KeepAliveCount, replica: ack.Replica,
		bulk: h.Bulk && ack.Bulk, connectedAt: time.Now(), kick: make(chan struct{}, 1)}
	s.lastHeartbeat.Store(time.Now().UnixNano())
	s.lastUse.Store(time.Now().UnixNano())
	return s, ack, nil
}

func remaining(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return DefaultHandshakeTimeout
}

// rootHelloParams is what the root decides a hello with.
type rootHelloParams struct {
	minVersion, maxVersion uint16
	interval               time.Duration
	count                  int
	replica                string
	replicas               []Endpoint
	timeout                time.Duration
	noBulk                 bool // answer as a root that predates the Bulk mark (tests)
	// admit is asked last; a non-nil refusal is sent as the answer.
	admit func(cluster string) *frame.HelloAck
	// register makes the accepted tunnel routable before the answer is written, so a
	// leaf that reads the answer (and says "connected") is already listed and recorded;
	// a non-nil answer refuses the hello with it, an error is returned as is and no
	// answer is written.
	register func(*session) (*frame.HelloAck, error)
}

// rootHello accepts the control stream and answers the hello. cluster is the name the
// leaf's certificate verified for; a hello claiming another name is refused. When the
// answer cannot be written after register accepted the tunnel, the session is returned
// with the error so the caller can undo the registration.
func rootHello(ctx context.Context, l link, cluster string, p rootHelloParams) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	ctrl, err := l.acceptControl(ctx)
	if err != nil {
		return nil, fmt.Errorf("accepting the control stream: %w", err)
	}
	t, payload, err := frame.ReadWithin(ctrl, remaining(ctx), ctrl.cutRead)
	if err != nil {
		return nil, fmt.Errorf("reading hello: %w", err)
	}
	refuse := func(ack *frame.HelloAck, err error) (*session, error) {
		_ = frame.Write(ctrl, frame.TypeHelloAck, ack.Marshal())
		_ = ctrl.CloseWrite()
		return nil, err
	}
	if t != frame.TypeHello {
		return refuse(&frame.HelloAck{Reason: "expected a hello"}, fmt.Errorf("%w: %s before hello", frame.ErrUnexpected, t))
	}
	h, err := frame.UnmarshalHello(payload)
	if err != nil {
		return refuse(&frame.HelloAck{Reason: "malformed hello"}, err)
	}
	if h.Cluster != cluster {
		return refuse(&frame.HelloAck{Reason: "the hello's cluster name does not match the certificate"},
			fmt.Errorf("leaf certificate for %q claims cluster %q in its hello", cluster, h.Cluster))
	}
	v, err := frame.Negotiate(h.MinVersion, h.MaxVersion, p.minVersion, p.maxVersion)
	if err != nil {
		return refuse(&frame.HelloAck{Reason: err.Error()}, err)
	}
	if p.admit != nil {
		if ack := p.admit(cluster); ack != nil {
			return refuse(ack, &helloRefusedError{reason: ack.Reason, retryAfter: ack.RetryAfter})
		}
	}
	iv, n := negotiateKeepAlive(h.KeepAliveInterval, h.KeepAliveCount, p.interval, p.count)
	// A root of this version sends session dials to a leaf's healthy SSH tunnel marked
	// Bulk (Server.pick), so it agrees to every leaf that asks.
	ack := &frame.HelloAck{Version: v, KeepAliveInterval: iv, KeepAliveCount: n, Replica: p.replica, Replicas: p.replicas, Bulk: h.Bulk}
	if p.noBulk {
		ack.Bulk, h.Bulk = false, false
	}
	s := &session{link: l, ctrl: ctrl, version: v, interval: iv, count: n, cluster: cluster, agent: h.Agent,
		bulk: h.Bulk && l.transport() == SSH, connectedAt: time.Now()}
	s.lastHeartbeat.Store(time.Now().UnixNano())
	s.state.Store("")
	if p.register != nil {
		ack, err := p.register(s)
		if ack != nil {
			return refuse(ack, &helloRefusedError{reason: ack.Reason, retryAfter: ack.RetryAfter})
		}
		if err != nil {
			return nil, err
		}
	}
	if err := frame.Write(ctrl, frame.TypeHelloAck, ack.Marshal()); err != nil {
		return s, fmt.Errorf("answering hello: %w", err)
	}
	return s, nil
}

// readDialRequest reads the dial request that opens a dial stream.
func readDialRequest(st stream, version uint16, timeout time.Duration) (*frame.DialRequest, error) {
	t, p, err := frame.ReadWithin(st, timeout, st.cutRead)
	if err != nil {
		return nil, err
	}
	if t != frame.TypeDialRequest {
		return nil, fmt.Errorf("%w: %s on a dial stream", frame.ErrUnexpected, t)
	}
	return frame.UnmarshalDialRequest(version, p)
}

// isCleanEnd tells a stream that ended normally from one that failed.
func isCleanEnd(err error) bool {
	return err == nil || errors.Is(err, io.EOF) || errors.Is(err, context.Canceled)
}
