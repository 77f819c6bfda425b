package gateway

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
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

// A signed-in user could open session and direct-tcpip channels without bound on one
// connection to the proxy's SSH entry, each a goroutine and, once routed, a tunnel stream
// and an SSH handshake at a leaf that the user may leave stalled: one connection tied up
// the leaf's tunnel. With proxy.ssh_max_sessions such channels open at once, the next is
// refused; a channel closed frees its place.
func TestProxySSHChannelsPerConnectionAreBounded(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tether.yaml")
	yaml := "cluster_name: root.example.com\ndata_dir: " + filepath.Join(dir, "data") +
		"\nproxy:\n  web_listen_addr: 127.0.0.1:0\n  ssh_max_sessions: 2\n"
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	run(t, cfg, func(g *Gateway) {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		signer, err := ssh.NewSignerFromKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := g.auth.CA().User.IssueUser(ca.UserCertRequest{PublicKey: signer.PublicKey(), Username: "alice", Logins: []string{"admin"},
			Roles: []string{"access"}, TTL: 5 * time.Minute, MaxTTL: 5 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		certSigner, err := ssh.NewCertSigner(cert, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := ssh.Dial("tcp", g.Addr(), &ssh.ClientConfig{User: "alice", Auth: []ssh.AuthMethod{ssh.PublicKeys(certSigner)},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A session that asks for nothing, and a direct-tcpip channel being decided, each
		// hold a place.
		s1, _, err := c.OpenChannel("session", nil)
		if err != nil {
			t.Fatal(err)
		}
		s2, _, err := c.OpenChannel("session", nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = c.OpenChannel("session", nil)
		var oe *ssh.OpenChannelError
		if !errors.As(err, &oe) || oe.Reason != ssh.ResourceShortage {
			t.Fatalf("a session over ssh_max_sessions=2: %v, want a resource-shortage refusal", err)
		}
		_, _, err = c.OpenChannel("direct-tcpip", ssh.Marshal(struct {
			Host     string
			Port     uint32
			OrigHost string
			OrigPort uint32
		}{"web1", 22, "127.0.0.1", 1}))
		if !errors.As(err, &oe) || oe.Reason != ssh.ResourceShortage {
			t.Fatalf("a direct-tcpip channel over ssh_max_sessions=2: %v, want a resource-shortage refusal", err)
		}
		s1.Close()
		s2.Close()
		deadline := time.Now().Add(10 * time.Second)
		for {
			ch, _, err := c.OpenChannel("session", nil)
			if err == nil {
				ch.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no session after the others closed: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
