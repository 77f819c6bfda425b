package gateway

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/gateway/config"
)

// The proxy's user SSH entry faces anyone on the network. A peer that sent a version line
// and then nothing held a goroutine and a descriptor for 20 s per connection, with no
// bound on how many, until the process ran out of descriptors (web, tunnel and all). With
// proxy.ssh_max_startups connections in the SSH handshake, the next is closed unanswered;
// a place freed serves the next connection.
func TestProxySSHHandshakesAreBounded(t *testing.T) {
	const limit = 3
	dir := t.TempDir()
	p := filepath.Join(dir, "tether.yaml")
	yaml := "cluster_name: root.example.com\ndata_dir: " + filepath.Join(dir, "data") +
		"\nproxy:\n  web_listen_addr: 127.0.0.1:0\n  ssh_max_startups: 3\n"
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	run(t, cfg, func(g *Gateway) {
		// Closed before the gateway stops: it waits for connections in their handshake.
		var all []net.Conn
		defer func() {
			for _, c := range all {
				c.Close()
			}
		}()
		stall := func() (net.Conn, string) {
			t.Helper()
			c, err := net.Dial("tcp", g.Addr())
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
			t.Fatalf("a connection over ssh_max_startups=%d was answered %q; want it closed unanswered", limit, line)
		}
		held[0].Close()
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, line := stall()
			if strings.HasPrefix(line, "SSH-2.0-") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no handshake after a place was freed")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
