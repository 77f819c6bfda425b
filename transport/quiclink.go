package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
)

// quicLink is a link over one QUIC connection.
type quicLink struct {
	conn *quic.Conn
}

func (l *quicLink) openControl(ctx context.Context) (stream, error) { return l.openStream(ctx, nil) }
func (l *quicLink) acceptControl(ctx context.Context) (stream, error) {
	s, err := l.conn.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return &quicStream{s}, nil
}

func (l *quicLink) openStream(ctx context.Context, first []byte) (stream, error) {
	s, err := l.conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	if len(first) > 0 {
		if _, err := s.Write(first); err != nil {
			s.CancelWrite(0)
			s.CancelRead(0)
			return nil, err
		}
	}
	return &quicStream{s}, nil
}

func (l *quicLink) acceptStream(ctx context.Context) (stream, error) { return l.acceptControl(ctx) }

func (l *quicLink) peerChain() []*x509.Certificate {
	return l.conn.ConnectionState().TLS.PeerCertificates
}

func (l *quicLink) close(code uint64, reason string) {
	_ = l.conn.CloseWithError(quic.ApplicationErrorCode(code), reason)
}

func (l *quicLink) received() uint64      { return l.conn.ConnectionStats().BytesReceived }
func (l *quicLink) closeErr() error       { return context.Cause(l.conn.Context()) }
func (l *quicLink) done() <-chan struct{} { return l.conn.Context().Done() }
func (l *quicLink) transport() Transport  { return QUIC }
func (l *quicLink) cipher() string {
	return "TLS 1.3 " + tls.CipherSuiteName(l.conn.ConnectionState().TLS.CipherSuite)
}
func (l *quicLink) localAddr() net.Addr  { return l.conn.LocalAddr() }
func (l *quicLink) remoteAddr() net.Addr { return l.conn.RemoteAddr() }

// quicStream adapts a QUIC stream: Close ends both directions (the QUIC stream's own
// Close only ends the sending side).
type quicStream struct{ *quic.Stream }

func (s *quicStream) CloseWrite() error { return s.Stream.Close() }
func (s *quicStream) Close() error {
	s.Stream.CancelRead(0)
	return s.Stream.Close()
}
func (s *quicStream) cutRead() { s.Stream.CancelRead(0) }

// quicConfig is the QUIC configuration both ends use. It sets what quic-go's defaults get
// wrong for a long-lived tunnel: keep-alive is on, the idle timeout outlives a few missed
// keep-alives, the receiver allows far more than 100 concurrent streams, and the flow
// control windows let one stream fill a fast path.
func quicConfig(keepAlive, handshakeTimeout time.Duration, maxIncomingStreams int64) *quic.Config {
	ka := min(keepAlive, 15*time.Second)
	return &quic.Config{
		HandshakeIdleTimeout:           handshakeTimeout,
		MaxIdleTimeout:                 max(4*ka, 5*time.Second),
		KeepAlivePeriod:                ka,
		MaxIncomingStreams:             maxIncomingStreams,
		MaxIncomingUniStreams:          -1,
		InitialStreamReceiveWindow:     2 << 20,
		MaxStreamReceiveWindow:         16 << 20,
		InitialConnectionReceiveWindow: 4 << 20,
		MaxConnectionReceiveWindow:     32 << 20,
		// quic-go caps packets at 1452 bytes; start there on paths that carry it
		// (path MTU discovery stays on and would find it anyway, later).
		InitialPacketSize: 1452,
	}
}

// listenUDP binds a UDP socket and sizes its buffers, logging clearly when the OS caps
// them (quic-go drops packets under load with small buffers).
func listenUDP(addr string, bufSize int, log *slog.Logger) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("resolving UDP address %q: %w", addr, err)
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("listening on UDP %s: %w", addr, err)
	}
	sizeUDPBuffers(c, bufSize, log)
	return c, nil
}

var capLogOnce sync.Once

func sizeUDPBuffers(c *net.UDPConn, want int, log *slog.Logger) {
	if want <= 0 {
		return
	}
	_ = c.SetReadBuffer(want)
	_ = c.SetWriteBuffer(want)
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	var rcv, snd int
	_ = raw.Control(func(fd uintptr) {
		// Linux reports double the size asked for (bookkeeping overhead).
		rcv, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		snd, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
		if rcv < want {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, want)
			rcv, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		}
		if snd < want {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, want)
			snd, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
		}
	})
	if rcv < want || snd < want {
		capLogOnce.Do(func() {
			log.Warn("the OS capped the tunnel's UDP socket buffers; QUIC may drop packets under load: raise net.core.rmem_max and net.core.wmem_max",
				"wanted_bytes", want, "receive_bytes", rcv, "send_bytes", snd)
		})
	}
}

// QUIC failure classes, as logged and reported in ReplicaStatus.LastError.
const (
	failUDPRefused       = "udp refused locally"
	failHandshakeTimeout = "handshake timeout"
	failHandshakeRejects = "handshake rejected"
	failRefusedByRoot    = "refused by the root"
	failOther            = "quic error"
)

// classifyQUIC names the class of a failed QUIC connect.
func classifyQUIC(err error) string {
	var (
		hte *quic.HandshakeTimeoutError
		ite *quic.IdleTimeoutError
		te  *quic.TransportError
		ae  *quic.ApplicationError
		hr  *helloRefusedError
	)
	switch {
	case errors.As(err, &hr):
		return failRefusedByRoot
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ECONNREFUSED),
		// quic-go reports a failed sendmsg as an INTERNAL_ERROR carrying only its text.
		strings.Contains(err.Error(), "sendmsg: operation not permitted"), strings.Contains(err.Error(), "sendmsg: permission denied"):
		return failUDPRefused
	case errors.As(err, &hte), errors.As(err, &ite), errors.Is(err, context.DeadlineExceeded):
		return failHandshakeTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return failHandshakeTimeout // the hello answer did not come in time
	}
	if errors.As(err, &te) || errors.As(err, &ae) && ae.Remote {
		return failHandshakeRejects
	}
	return failOther
}
