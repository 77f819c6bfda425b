package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tetherproject/tether/gateway/config"
	"github.com/tetherproject/tether/internal/testenv"
)

// The packages' own attacker tests set their bounds in code (web.Config, proxy.Mux,
// node.Config); these set them in tether.yaml and attack the running process, so a key
// that is validated and documented but never reaches its server fails here. The attacker
// and the other host dial from 127.0.0.7 and 127.0.0.8: the gateway's own connections
// come from 127.0.0.1.
const (
	attackerSource = "127.0.0.7"
	otherSource    = "127.0.0.8"
)

// dialFrom opens a TCP connection to addr from the loopback address from, closed when
// the test ends.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedUnanswered says whether the server closed c, sending nothing, within a moment;
// false means c is still held open.
func closedUnanswered(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := c.Read(make([]byte, 1))
	if n > 0 {
		t.Fatal("the server answered a connection that sent nothing")
	}
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// A host could open connections to the web port and send nothing, each held for the 10 s
// sniff. proxy.web_max_unrouted_per_source from one source and proxy.web_max_unrouted in
// all are held; one more is closed unanswered.
func TestWebPortConnectionsNotYetRoutedAreBounded(t *testing.T) {
	cfg := loadWith(t, t.TempDir(), "  web_max_unrouted: 3\n  web_max_unrouted_per_source: 2\n")
	run(t, cfg, func(g *Gateway) {
		a1, a2 := dialFrom(t, attackerSource, g.Addr()), dialFrom(t, attackerSource, g.Addr())
		if closedUnanswered(t, a1) || closedUnanswered(t, a2) {
			t.Fatal("connections within web_max_unrouted_per_source=2 were closed")
		}
		if !closedUnanswered(t, dialFrom(t, attackerSource, g.Addr())) {
			t.Fatal("a third silent connection from one source was held, web_max_unrouted_per_source=2")
		}
		if closedUnanswered(t, dialFrom(t, otherSource, g.Addr())) {
			t.Fatal("another source was refused while the first held only its web_max_unrouted_per_source")
		}
		if !closedUnanswered(t, dialFrom(t, "127.0.0.9", g.Addr())) {
			t.Fatal("a fourth silent connection was held, web_max_unrouted=3")
		}
	})
}

// A host could hold HTTPS connections (and node streams) to the proxy without bound. With
// proxy.web_max_connections_per_source open from one source, its next is closed
// unanswered; another source is still served.
func TestWebConnectionsPerSourceAreBounded(t *testing.T) {
	cfg := loadWith(t, t.TempDir(), "  web_max_connections_per_source: 2\n")
	run(t, cfg, func(g *Gateway) {
		var open []net.Conn
		// Closed before the gateway stops, whose shutdown waits for them.
		defer func() {
			for _, c := range open {
				c.Close()
			}
		}()
		handshake := func(from string) error {
			c := dialFrom(t, from, g.Addr())
			open = append(open, c)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return tls.Client(c, &tls.Config{RootCAs: g.auth.CA().TLS.CertPool(), ServerName: "127.0.0.1"}).HandshakeContext(ctx)
		}
		for i := range 2 {
			if err := handshake(attackerSource); err != nil {
				t.Fatalf("connection %d within web_max_connections_per_source=2: %v", i, err)
			}
		}
		if err := handshake(attackerSource); err == nil {
			t.Fatal("a third connection from one source was served, web_max_connections_per_source=2")
		}
		if err := handshake(otherSource); err != nil {
			t.Fatalf("another source was refused: %v", err)
		}
	})
}

// One host on the node's network could hold every handshake place of a node agent run by
// tetherd. With node.max_startups_per_source from one source, its next connection is
// closed unanswered and another source still gets in.
func TestNodeAgentHandshakesAreBoundedPerSource(t *testing.T) {
	dir := t.TempDir()
	cfg := loadWith(t, dir, "")
	p := filepath.Join(dir, "node.yaml")
	// The node's section as tetherd reads it beside its cluster, in a data directory of its
	// own: it joins the running gateway.
	if err := os.WriteFile(p, []byte("cluster_name: root.example.com\ndata_dir: "+filepath.Join(dir, "node-data")+
		"\nnode:\n  enabled: true\n  name: n1\n  listen_addr: 127.0.0.1:0\n  max_startups: 10\n  max_startups_per_source: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nodeCfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	run(t, cfg, func(g *Gateway) {
		ctx, cancel := context.WithCancel(context.Background())
		a, err := NewNodeAgent(ctx, nodeCfg, slog.New(slog.NewTextHandler(io.Discard, nil)), g, nil)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		defer func() { cancel(); <-done }()
		testenv.CheckSSHHandshakesBoundedPerSource(t, a.Addr().String(), 2, "node.max_startups_per_source")
	})
}
