package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/tetherproject/tether/internal/startups"
)

// SniffTimeout bounds how long a new connection may take to send its first bytes (and,
// when a Route is set, its whole SSH version line).
const SniffTimeout = 10 * time.Second

// Defaults of the bound on connections not yet routed (they have not sent their first
// bytes, or their SSH version line): each holds a goroutine and a descriptor for up to
// SniffTimeout, so without a bound anyone could open them until the process runs out.
const (
	DefaultMaxUnrouted          = 1024
	DefaultMaxUnroutedPerSource = 128
)

// MaxVersionLine is the longest SSH version line the mux reads before routing: RFC 4253
// §4.2 allows 255 characters including the CR LF.
const MaxVersionLine = 255

// Mux splits one listener into SSH connections (those that begin with "SSH-") and the
// rest (TLS). SSH connections whose version line starts with a routed prefix go to that
// route's listener instead (the reverse tunnel's SSH fallback). Create it with NewMux,
// add routes with Route, run it with Serve.
type Mux struct {
	ln     net.Listener
	log    *slog.Logger
	ssh    *chanListener
	tls    *chanListener
	routes []sshRoute
	sniff  time.Duration // SniffTimeout; shorter in tests
	limit  *startups.Limit
}

type sshRoute struct {
	prefix []byte
	l      *chanListener
}

// Route returns a listener of the SSH connections whose client version line starts with
// prefix (e.g. "SSH-2.0-tether-tunnel-agent"). Call it before Serve. With a route set,
// the mux reads each SSH client's whole version line (at most MaxVersionLine bytes,
// within SniffTimeout) before routing; the bytes read are replayed to the server.
func (m *Mux) Route(prefix string) net.Listener {
	l := newChanListener(m.ln.Addr())
	m.routes = append(m.routes, sshRoute{prefix: []byte(prefix), l: l})
	return l
}

// NewMux returns a Mux on ln.
func NewMux(ln net.Listener, log *slog.Logger) *Mux {
	if log == nil {
		log = slog.Default()
	}
	return &Mux{ln: ln, log: log, ssh: newChanListener(ln.Addr()), tls: newChanListener(ln.Addr()), sniff: SniffTimeout,
		limit: startups.New(DefaultMaxUnrouted, DefaultMaxUnroutedPerSource)}
}

// SetUnroutedLimits bounds the connections not yet routed: n at once, perSource of them
// from one source (startups.Source); one over is closed unanswered. Call it before Serve.
func (m *Mux) SetUnroutedLimits(n, perSource int) { m.limit = startups.New(n, perSource) }

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
			for _, rt := range m.routes {
				rt.l.Close()
			}
			return err
		}
		routed, ok := m.limit.Admit(conn, m.log, "web_max_unrouted", "connections to the web port")
		if !ok {
			continue
		}
		go m.route(ctx, conn, routed)
	}
}

// route reads what conn begins with and hands it to its listener; routed is called once
// that is known (or conn is dropped).
func (m *Mux) route(ctx context.Context, conn net.Conn, routed func()) {
	defer routed()
	_ = conn.SetReadDeadline(time.Now().Add(m.sniff))
	r := bufio.NewReaderSize(conn, 2*MaxVersionLine)
	head, err := r.Peek(4)
	if err != nil {
		conn.Close()
		return
	}
	to := m.tls
	if bytes.Equal(head, []byte("SSH-")) {
		to = m.ssh
		if len(m.routes) > 0 {
			line, err := peekLine(r)
			if err != nil {
				m.log.Debug("dropping an SSH connection without a version line", "remote", conn.RemoteAddr().String(), "err", err)
				conn.Close()
				return
			}
			for _, rt := range m.routes {
				if bytes.HasPrefix(line, rt.prefix) {
					to = rt.l
					break
				}
			}
		}
	}
	_ = conn.SetReadDeadline(time.Time{})
	routed()
	pc := &peekedConn{Conn: conn, r: r}
	select {
	case to.conns <- pc:
	case <-to.done:
		conn.Close()
	case <-ctx.Done():
		conn.Close()
	}
}

// errLongVersion is a version line without its LF within MaxVersionLine bytes.
var errLongVersion = errors.New("SSH version line longer than 255 bytes")

// peekLine returns the first line (through its LF) without consuming it: at most
// MaxVersionLine bytes, read under the connection's deadline.
func peekLine(r *bufio.Reader) ([]byte, error) {
	for n := 1; n <= MaxVersionLine; n++ {
		b, err := r.Peek(n)
		if err != nil {
			return nil, err
		}
		if b[n-1] == '\n' {
			return b, nil
		}
	}
	return nil, errLongVersion
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
