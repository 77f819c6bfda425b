package proxy

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"time"
)

// SniffTimeout bounds how long a new connection may take to send its first bytes.
const SniffTimeout = 10 * time.Second

// Mux splits one listener into SSH connections (those that begin with "SSH-") and the
// rest (TLS). Create it with NewMux, run it with Serve.
type Mux struct {
	ln  net.Listener
	log *slog.Logger
	ssh *chanListener
	tls *chanListener
}

// NewMux returns a Mux on ln.
func NewMux(ln net.Listener, log *slog.Logger) *Mux {
	if log == nil {
		log = slog.Default()
	}
	return &Mux{ln: ln, log: log, ssh: newChanListener(ln.Addr()), tls: newChanListener(ln.Addr())}
}

// SSH is the listener of the SSH connections.
func (m *Mux) SSH() net.Listener { return m.ssh }

// TLS is the listener of every other connection.
func (m *Mux) TLS() net.Listener { return m.tls }

// Serve accepts connections until ctx ends or the listener fails. When the listener
// fails, both listeners are closed; when ctx ends, their servers close them as they stop.
func (m *Mux) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		m.ln.Close()
	}()
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			m.ssh.Close()
			m.tls.Close()
			return err
		}
		go m.route(ctx, conn)
	}
}

func (m *Mux) route(ctx context.Context, conn net.Conn) {
	_ = conn.SetReadDeadline(time.Now().Add(SniffTimeout))
	r := bufio.NewReader(conn)
	head, err := r.Peek(4)
	if err != nil {
		conn.Close()
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: conn, r: r}
	to := m.tls
	if bytes.Equal(head, []byte("SSH-")) {
		to = m.ssh
	}
	select {
	case to.conns <- pc:
	case <-to.done:
		conn.Close()
	case <-ctx.Done():
		conn.Close()
	}
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
