package node_test

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/agent"
)

// echoServer answers every line it reads with the same line, until the test ends.
func echoServer(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return l
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != msg+"\n" {
		t.Fatalf("read %q, %v; want %q", line, err, msg)
	}
}

// TestPortAndAgentForwardingWithThePermits: with permit-port-forwarding, the node
// connects to what -L names and listens for -R on loopback; with
// permit-agent-forwarding, a session's SSH_AUTH_SOCK reaches the client's agent.
func TestPortAndAgentForwardingWithThePermits(t *testing.T) {
	n := startSSHNode(t)
	login := n.user.Username
	key := n.key(t, login)
	c := n.dial(t, key, login)
	t.Run("local_forward", func(t *testing.T) {
		echo := echoServer(t)
		conn, err := c.Dial("tcp", echo.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		roundTrip(t, conn, "through the node")
	})
	t.Run("local_forward_to_a_closed_port_says_so", func(t *testing.T) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		if _, err := c.Dial("tcp", addr); err == nil || !strings.Contains(err.Error(), "connect to "+addr+" failed") {
			t.Fatalf("dial a closed port: %v", err)
		}
	})
	t.Run("remote_forward", func(t *testing.T) {
		l, err := c.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("tcpip-forward: %v\n%s", err, n.log.String())
		}
		defer l.Close()
		go func() {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = io.Copy(conn, conn)
		}()
		// The node listens on loopback: connect there as a process on the node would.
		conn, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		roundTrip(t, conn, "back from the node")
	})
	t.Run("agent_forward", func(t *testing.T) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keyring := agent.NewKeyring()
		if err := keyring.Add(agent.AddedKey{PrivateKey: priv, Comment: "forwarded-key"}); err != nil {
			t.Fatal(err)
		}
		if err := agent.ForwardToAgent(c, keyring); err != nil {
			t.Fatal(err)
		}
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := agent.RequestAgentForwarding(s); err != nil {
			t.Fatalf("auth-agent-req: %v\n%s", err, n.log.String())
		}
		out, err := s.CombinedOutput("ssh-add -l")
		if err != nil || !strings.Contains(string(out), "forwarded-key") {
			t.Fatalf("ssh-add -l on the node: %v\n%s", err, out)
		}
	})
}
