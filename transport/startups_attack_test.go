package transport

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// The SSH fallback accepts any key and learns which cluster it speaks for only from the
// chain exchange, so anyone reaching the tunnel port (the web port, by default) could hold
// a goroutine and a descriptor per connection for the handshake timeout, without bound.
// With MaxSSHStartups connections in the handshake, the next is closed unanswered; a place
// freed serves the next connection.
func TestSSHTunnelHandshakesAreBounded(t *testing.T) {
	const limit = 2
	s := startServer(t, testPKI(t), func(c *ServerConfig) {
		c.MaxSSHStartups = limit
		c.HandshakeTimeout = 30 * time.Second
	})
	var all []net.Conn
	defer func() {
		for _, c := range all {
			c.Close()
		}
	}()
	stall := func() (net.Conn, string) {
		t.Helper()
		c, err := net.Dial("tcp", s.Endpoint().TCP)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, c)
		if _, err := c.Write([]byte("SSH-2.0-attacker\r\n")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil && strings.Contains(err.Error(), "timeout") {
			t.Fatalf("no answer and no close within 5 s: %v", err)
		}
		return c, line
	}
	var held []net.Conn
	for i := 0; i < limit; i++ {
		c, line := stall()
		if !strings.HasPrefix(line, "SSH-2.0-") {
			t.Fatalf("connection %d within the limit: %q", i, line)
		}
		held = append(held, c)
	}
	if _, line := stall(); line != "" {
		t.Fatalf("a connection over MaxSSHStartups=%d was answered %q; want it closed unanswered", limit, line)
	}
	held[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, line := stall(); strings.HasPrefix(line, "SSH-2.0-") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no handshake after a place was freed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
