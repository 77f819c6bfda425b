package transport

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"time"
)

// link is one authenticated carrier connection between a leaf and a root replica, QUIC or
// SSH, before and after the hello. The leaf opens the control stream and accepts dial
// streams; the root accepts the control stream and opens dial streams.
type link interface {
	openControl(ctx context.Context) (stream, error)
	acceptControl(ctx context.Context) (stream, error)
	// openStream opens a dial stream whose first bytes are first: over SSH they ride in
	// the channel-open message, so a dial costs one round trip on either carrier.
	openStream(ctx context.Context, first []byte) (stream, error)
	acceptStream(ctx context.Context) (stream, error)
	// peerChain is the peer's verified certificate chain.
	peerChain() []*x509.Certificate
	close(code uint64, reason string)
	done() <-chan struct{}
	// closeErr is why the link closed, as the carrier reports it (nil if unknown).
	closeErr() error
	// received counts the bytes that arrived from the peer so far (0 where unknown).
	received() uint64
	transport() Transport
	// cipher names the carrier's negotiated encryption, for the log.
	cipher() string
	localAddr() net.Addr
	remoteAddr() net.Addr
}

// stream is one bidirectional byte stream of a link.
type stream interface {
	io.ReadWriter
	// CloseWrite ends the sending side; the peer reads EOF.
	CloseWrite() error
	// Close ends both sides.
	Close() error
	// cutRead unblocks a pending read for good (for readers without deadlines).
	cutRead()
}

// streamConn is a dial stream handed to the caller as a net.Conn.
type streamConn struct {
	stream
	carrier       Transport
	local, remote net.Addr
	onClose       func()
	closed        chan struct{}
}

func newStreamConn(s stream, l link, onClose func()) *streamConn {
	return &streamConn{stream: s, carrier: l.transport(), local: l.localAddr(), remote: l.remoteAddr(), onClose: onClose, closed: make(chan struct{})}
}

// CarrierOf names the carrier a dial's connection rides (on the root: what Server.Dial
// returned; on the leaf: what a DialHandler's serve function is given), or "" for any
// other connection.
func CarrierOf(c net.Conn) Transport {
	if sc, ok := c.(*streamConn); ok {
		return sc.carrier
	}
	return ""
}

func (c *streamConn) Close() error {
	select {
	case <-c.closed:
		return nil
	default:
		close(c.closed)
	}
	err := c.stream.Close()
	if c.onClose != nil {
		c.onClose()
	}
	return err
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

type deadlines interface {
	SetDeadline(time.Time) error
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

var errNoDeadlines = errors.New("transport: deadlines are not supported on SSH fallback streams")

func (c *streamConn) SetDeadline(t time.Time) error {
	if d, ok := c.stream.(deadlines); ok {
		return d.SetDeadline(t)
	}
	return errNoDeadlines
}

func (c *streamConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.stream.(deadlines); ok {
		return d.SetReadDeadline(t)
	}
	return errNoDeadlines
}

func (c *streamConn) SetWriteDeadline(t time.Time) error {
	if d, ok := c.stream.(deadlines); ok {
		return d.SetWriteDeadline(t)
	}
	return errNoDeadlines
}

// CloseWrite half-closes the conn: the peer reads EOF and may still answer.
func (c *streamConn) CloseWrite() error { return c.stream.CloseWrite() }
