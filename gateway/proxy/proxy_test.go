package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/transport"
	"github.com/tetherproject/tether/transport/frame"
)

func TestParseTarget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, node, cluster, err string
	}{
		{in: "node1:22@leaf.example.com", node: "node1", cluster: "leaf.example.com"},
		{in: "node1.leaf.example.com:22@leaf.example.com", node: "node1", cluster: "leaf.example.com"},
		{in: "node1:22@LEAF.example.com.", node: "node1", cluster: "leaf.example.com"},
		{in: "node1:22", node: "node1", cluster: "root.example.com"},
		{in: "node1@", node: "node1", cluster: "root.example.com"},
		{in: "user@x:22@leaf", node: "user@x", cluster: "leaf"},
		{in: ":22@leaf", err: "no node"},
		{in: "", err: "no node"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			node, cluster, err := ParseTarget(tc.in, "root.example.com")
			if tc.err != "" {
				if err == nil {
					t.Fatalf("accepted as %s@%s", node, cluster)
				}
				return
			}
			if err != nil || node != tc.node || cluster != tc.cluster {
				t.Fatalf("got %q %q %v, want %q %q", node, cluster, err, tc.node, tc.cluster)
			}
		})
	}
}

// TestMuxSplitsSSHFromTLS proves the one-port rule: a connection that starts with "SSH-"
// reaches the SSH listener with its first bytes intact, anything else the TLS listener.
func TestMuxSplitsSSHFromTLS(t *testing.T) {
	t.Parallel()
	m, addr := serveMux(t, nil)
	for _, tc := range []struct {
		name, first string
		to          net.Listener
	}{
		{"ssh_banner_goes_to_ssh", "SSH-2.0-OpenSSH_9.6\r\n", m.SSH()},
		{"tls_client_hello_goes_to_tls", "\x16\x03\x01\x02\x00hello", m.TLS()},
		{"anything_else_goes_to_tls", "GET / HTTP/1.1\r\n", m.TLS()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, tc.first); err != nil {
				t.Fatal(err)
			}
			got := make(chan string, 1)
			go func() {
				conn, err := tc.to.Accept()
				if err != nil {
					got <- err.Error()
					return
				}
				defer conn.Close()
				buf := make([]byte, len(tc.first))
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, _ = io.ReadFull(bufio.NewReader(conn), buf)
				got <- string(buf)
			}()
			select {
			case s := <-got:
				if s != tc.first {
					t.Fatalf("got %q, want %q", s, tc.first)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the connection did not reach its listener")
			}
		})
	}
}

// What the user reads when a leaf cannot be reached: the leaf's refusal as the leaf said
// it, a name that is no node name refused before anything is sent, and otherwise offline —
// never the transport's error chain.
func TestLeafDialMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"the_leaf_refused_an_unknown_node",
			fmt.Errorf("dialing: %w", &transport.DialDeniedError{Cluster: "leaf", Node: "ghost", Reason: `node "ghost" not found in cluster leaf`}),
			`cluster leaf refused the connection: node "ghost" not found in cluster leaf`},
		{"an_address_is_not_a_node_name",
			fmt.Errorf("%w: %q", frame.ErrNotANodeName, "127.0.0.1"),
			`node "127.0.0.1" not found in cluster leaf: give a node's name, not an address`},
		{"no_tunnel", fmt.Errorf("dialing %q in %q: %w", "ghost", "leaf", transport.ErrNoTunnel), "cluster leaf is offline"},
		{"a_broken_stream", errors.New("reading dial answer: EOF"), "cluster leaf is offline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node := "ghost"
			if strings.Contains(tc.name, "address") {
				node = "127.0.0.1"
			}
			if got := LeafDialMessage("leaf", node, tc.err); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// The tunnel agent's version line goes to the tunnel route (even when it arrives in
// pieces); every other SSH client, including one whose line merely contains the agent's
// name, goes to the user SSH entry; the bytes read to decide are replayed.
func TestMuxRoutesTunnelAgentVersion(t *testing.T) {
	t.Parallel()
	var tun net.Listener
	m, addr := serveMux(t, func(m *Mux) { tun = m.Route("SSH-2.0-tether-tunnel-agent") })
	for _, tc := range []struct {
		name   string
		pieces []string
		to     net.Listener
	}{
		{"agent_to_tunnel", []string{"SSH-2.0-tether-tunnel-agent\r\n\x00\x00\x01kexinit"}, tun},
		{"agent_in_pieces_to_tunnel", []string{"SSH-2.0-teth", "er-tunnel-agent\r\n"}, tun},
		{"openssh_to_ssh", []string{"SSH-2.0-OpenSSH_9.6\r\n"}, m.SSH()},
		{"agent_name_later_to_ssh", []string{"SSH-2.0-Go SSH-2.0-tether-tunnel-agent\r\n"}, m.SSH()},
		{"tls_to_tls", []string{"\x16\x03\x01\x02\x00hello"}, m.TLS()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			want := strings.Join(tc.pieces, "")
			go func() {
				for _, p := range tc.pieces {
					_, _ = io.WriteString(c, p)
					time.Sleep(20 * time.Millisecond)
				}
			}()
			got := make(chan string, 1)
			go func() {
				conn, err := tc.to.Accept()
				if err != nil {
					got <- err.Error()
					return
				}
				defer conn.Close()
				buf := make([]byte, len(want))
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, _ = io.ReadFull(conn, buf)
				got <- string(buf)
			}()
			select {
			case s := <-got:
				if s != want {
					t.Fatalf("got %q, want %q", s, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the connection did not reach its listener")
			}
		})
	}
}

// A client that sends "SSH-" and then nothing, or a version line that never ends, is
// dropped (at the deadline, at 255 bytes) and holds up no other connection meanwhile.
func TestMuxDropsStalledAndEndlessVersionLines(t *testing.T) {
	t.Parallel()
	var tun net.Listener
	m, addr := serveMux(t, func(m *Mux) {
		m.sniff = 2 * time.Second
		tun = m.Route("SSH-2.0-tether-tunnel-agent")
	})
	for _, l := range []net.Listener{tun, m.SSH()} {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				t.Errorf("a bad version line was routed to %v", c.RemoteAddr())
				c.Close()
			}
		}()
	}
	dial := func(first string) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, first); err != nil {
			t.Fatal(err)
		}
		return c
	}
	stalled := dial("SSH-2.0-tether-tunnel-ag")
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	endless := dial("SSH-2.0-tether-tunnel-agent" + strings.Repeat("x", 400))
	// Meanwhile a TLS client is served at once.
	dial("\x16\x03\x01\x02\x00hello")
	tlsGot := make(chan error, 1)
	go func() {
		c, err := m.TLS().Accept()
		if err == nil {
			c.Close()
		}
		tlsGot <- err
	}()
	select {
	case err := <-tlsGot:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(1500 * time.Millisecond):
		t.Fatal("a TLS client waited behind stalled SSH clients")
	}
	for name, c := range map[string]net.Conn{"endless": endless, "stalled": stalled, "silent": silent} {
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: the mux did not drop it (read %d, %v)", name, n, err)
		}
	}
}

// peekLine never returns more than MaxVersionLine bytes, nor a line without its LF, nor
// anything that is not a prefix of the input; it consumes nothing.
func FuzzPeekLine(f *testing.F) {
	f.Add([]byte("SSH-2.0-tether-tunnel-agent\r\n"))
	f.Add([]byte("SSH-2.0-OpenSSH_9.6\r\nrest"))
	f.Add([]byte(strings.Repeat("x", 300)))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(in), 2*MaxVersionLine)
		line, err := peekLine(r)
		if err != nil {
			if i := bytes.IndexByte(in, '\n'); i >= 0 && i < MaxVersionLine {
				t.Fatalf("line of %d bytes refused: %v", i+1, err)
			}
			return
		}
		if len(line) > MaxVersionLine || !bytes.HasSuffix(line, []byte("\n")) || !bytes.HasPrefix(in, line) || bytes.Count(line, []byte("\n")) != 1 {
			t.Fatalf("peekLine(%q) = %q", in, line)
		}
		if r.Buffered() < len(line) {
			t.Fatal("peekLine consumed input")
		}
	})
}

// BenchmarkMuxRoute is one connection's trip through the mux on loopback (dial, version
// line, routing, accept, first bytes read): "plain" splits on the first four bytes only,
// "tunnel_route" reads the whole version line, as tetherd does with the tunnel on the web
// port; "agent" is a tunnel agent's connection, "user" an OpenSSH client's.
func BenchmarkMuxRoute(b *testing.B) {
	for _, tc := range []struct {
		name, line string
		route      bool
	}{
		{"plain/user", "SSH-2.0-OpenSSH_9.6\r\n", false},
		{"tunnel_route/user", "SSH-2.0-OpenSSH_9.6\r\n", true},
		{"tunnel_route/agent", transport.SSHClientVersion + "\r\n", true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var to net.Listener
			_, addr := serveMux(b, func(m *Mux) {
				to = m.SSH()
				if tc.route {
					tun := m.Route(transport.SSHClientVersion)
					if strings.HasPrefix(tc.line, transport.SSHClientVersion) {
						to = tun
					}
				}
			})
			buf := make([]byte, len(tc.line))
			b.ResetTimer()
			for b.Loop() {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.WriteString(c, tc.line); err != nil {
					b.Fatal(err)
				}
				s, err := to.Accept()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(s, buf); err != nil {
					b.Fatal(err)
				}
				s.Close()
				c.Close()
			}
		})
	}
}

// Each connection to the web port holds a goroutine and a descriptor until it has sent
// its first bytes (up to SniffTimeout): anyone could open them without bound until the
// process ran out. With the bound reached, a new connection is closed unanswered; with
// one source's share reached, that source's are, and another's are still taken; a
// connection routed frees its place.
func TestMuxBoundsConnectionsNotYetRouted(t *testing.T) {
	t.Parallel()
	m, addr := serveMux(t, func(m *Mux) { m.SetUnroutedLimits(3, 2) })
	go func() {
		for {
			c, err := m.TLS().Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	dial := func(from string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closed says whether the mux closed c within a moment (held: still open).
	closed := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
	a1, a2 := dial("127.0.0.1"), dial("127.0.0.1")
	if closed(a1) || closed(a2) {
		t.Fatal("connections within the source's share were closed")
	}
	if !closed(dial("127.0.0.1")) {
		t.Fatal("a third silent connection from one source was held, share 2")
	}
	b1 := dial("127.0.0.2")
	if closed(b1) {
		t.Fatal("another source was refused while the first held only its share")
	}
	if !closed(dial("127.0.0.3")) {
		t.Fatal("a fourth silent connection was held, bound 3")
	}
	// a1 sends its first bytes: it is routed, and its place serves 127.0.0.1 again.
	if _, err := a1.Write([]byte("\x16\x03\x01\x00\x05hello")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if closed(dial("127.0.0.1")) {
			return errors.New("a routed connection's place was not given back")
		}
		return nil
	})
}

// serveMux serves a Mux on a new loopback listener until the test ends; set, when not
// nil, configures it (routes, limits, the sniff timeout) before it serves. It returns the
// mux and the listener's address.
func serveMux(tb testing.TB, set func(*Mux)) (*Mux, string) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := NewMux(ln, nil)
	if set != nil {
		set(m)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Serve(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	return m, ln.Addr().String()
}
