package node_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/gateway/node"
	"github.com/tetherproject/tether/internal/testenv"
)

// One host on the node's network could hold every MaxStartups place and keep the
// cluster's enforcement point, from which every user's connection comes, out. With
// MaxStartupsPerSource from one address, the next from it is closed unanswered and
// another address still gets in.
func TestConnectionsInTheHandshakeAreBoundedPerSource(t *testing.T) {
	n := startSSHNode(t, func(c *node.Config) { c.MaxStartups, c.MaxStartupsPerSource = 10, 2 })
	testenv.CheckSSHHandshakesBoundedPerSource(t, n.agent.Addr().String(), 2, "MaxStartupsPerSource")
}

// An unauthenticated peer that opens TCP connections to the node and sends nothing held
// a goroutine and a connection for 30 s each, with no bound on how many: enough of them
// exhaust the agent's descriptors and memory (OpenSSH's answer is MaxStartups). With
// MaxStartups connections in the handshake, the next one is closed unanswered; honest
// logins that finished their handshake do not count, and a slot freed is usable again.
func TestConnectionsInTheHandshakeAreBounded(t *testing.T) {
	const limit = 4
	n := startSSHNode(t, func(c *node.Config) { c.MaxStartups = limit })
	login := n.user.Username
	key := n.key(t, login)

	// Authenticated connections hold no handshake slot.
	for i := 0; i < limit+1; i++ {
		n.dial(t, key, login)
	}

	var idle []net.Conn
	for i := 0; i < limit; i++ {
		c, err := net.Dial("tcp", n.agent.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		// Wait for the banner: the agent has taken the connection into the handshake.
		if line := readBanner(t, c); !strings.HasPrefix(line, "SSH-2.0-") {
			t.Fatalf("connection %d within the limit: banner %q", i, line)
		}
		idle = append(idle, c)
	}

	over, err := net.Dial("tcp", n.agent.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	if line := readBanner(t, over); line != "" {
		t.Fatalf("a connection over MaxStartups=%d was answered %q; want it closed unanswered", limit, line)
	}

	// A slot freed by a peer leaving serves the next login.
	idle[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		signer, err := ssh.NewCertSigner(key.Cert, key.Signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := ssh.Dial("tcp", n.agent.Addr().String(), n.clientConfig(t, login, ssh.PublicKeys(signer)))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no login after a handshake slot was freed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readBanner reads the server's version line, or "" when the server closes the
// connection without one.
func readBanner(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	buf := make([]byte, 1)
	for {
		_, err := c.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("no answer and no close within 5 s (read so far %q)", b.String())
			}
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") {
				return b.String()
			}
			t.Fatal(err)
		}
		if buf[0] == '\n' {
			return strings.TrimRight(b.String(), "\r")
		}
		b.WriteByte(buf[0])
	}
}

// One authenticated connection could open session channels without bound, each a
// goroutine, an audit record and (once started) a program. As OpenSSH's MaxSessions, at
// most MaxSessions are open at once on one connection; more are refused, and a session
// closed frees its place.
func TestSessionsPerConnectionAreBounded(t *testing.T) {
	const limit = 2
	n := startSSHNode(t, func(c *node.Config) { c.MaxSessions = limit })
	login := n.user.Username
	c := n.dial(t, n.key(t, login), login)

	var open []ssh.Channel
	for i := 0; i < limit; i++ {
		ch, _, err := c.OpenChannel("session", nil)
		if err != nil {
			t.Fatalf("session %d within MaxSessions=%d: %v", i, limit, err)
		}
		open = append(open, ch)
	}
	_, _, err := c.OpenChannel("session", nil)
	var oe *ssh.OpenChannelError
	if !errors.As(err, &oe) || oe.Reason != ssh.ResourceShortage {
		t.Fatalf("session over MaxSessions=%d: %v, want a resource-shortage refusal", limit, err)
	}

	open[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ch, _, err := c.OpenChannel("session", nil)
		if err == nil {
			ch.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session after one was closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(n.log.String(), "MaxSessions") {
		t.Fatalf("the refusal was not logged:\n%s", n.log.String())
	}
}

// Each remote forward (ssh -R) of a root agent is a helper process of the login's
// (`tetherd node-net listen`, ≈ 4 MB) for the forward's life. A user whose certificate
// permits port forwarding asked for as many as they liked on one connection, each on port
// 0, until the node ran out of memory or processes. At most MaxRemoteForwards live at once
// on one connection; more are refused, and a cancelled forward frees its place.
func TestRemoteForwardsPerConnectionAreBounded(t *testing.T) {
	const limit = 2
	n := startSSHNode(t, func(c *node.Config) { c.MaxRemoteForwards = limit })
	login := n.user.Username
	c := n.dial(t, n.key(t, login), login)

	var open []net.Listener
	for i := 0; i < limit; i++ {
		l, err := c.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("forward %d within MaxRemoteForwards=%d: %v\nnode log:\n%s", i, limit, err, n.log.String())
		}
		open = append(open, l)
	}
	if l, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		l.Close()
		t.Fatalf("a remote forward over MaxRemoteForwards=%d was granted", limit)
	}
	if err := open[0].Close(); err != nil {
		t.Fatal(err)
	}
	l, err := c.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("no forward after one was cancelled: %v", err)
	}
	l.Close()
	if !strings.Contains(n.log.String(), "max_remote_forwards") {
		t.Fatalf("the refusal was not logged:\n%s", n.log.String())
	}
}

// Authenticated connections are not bounded on the node (the enforcement point opens one
// per user connection), and each that forwards holds a helper process of ≈ 4 MB: a dial
// helper for up to a minute idle, a listen helper per ssh -R. Many users' connections (or
// one user's many) grew them without bound. At most MaxNetHelpers run at once on the
// node; a forward over it is refused, and a helper that ended frees its place.
func TestNetHelpersAreBoundedOnTheNode(t *testing.T) {
	n := startSSHNode(t, func(c *node.Config) { c.MaxNetHelpers = 1 })
	login := n.user.Username
	key := n.key(t, login)
	first, second := n.dial(t, key, login), n.dial(t, key, login)

	l, err := first.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("the first forward: %v\nnode log:\n%s", err, n.log.String())
	}
	if l2, err := second.Listen("tcp", "127.0.0.1:0"); err == nil {
		l2.Close()
		t.Fatal("a second helper was started over MaxNetHelpers=1")
	}
	if _, err := second.Dial("tcp", l.Addr().String()); err == nil {
		t.Fatal("a dial helper was started over MaxNetHelpers=1")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		l2, err := second.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			l2.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no forward after the helper ended: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(n.log.String(), "max_net_helpers") {
		t.Fatalf("the refusal was not logged:\n%s", n.log.String())
	}
}

// A session kept every env request it accepted: one session could send LC_* variables
// without bound (each up to a packet) and grow the agent's memory until the program
// started, or forever if none did. As sshd (session_env_req), at most 128 are kept; a name
// sent again replaces its value.
func TestEnvironmentRequestsAreBounded(t *testing.T) {
	n := startSSHNode(t)
	login := n.user.Username
	c := n.dial(t, n.key(t, login), login)
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 128; i++ {
		if err := s.Setenv(fmt.Sprintf("LC_X%d", i), "v"); err != nil {
			t.Fatalf("variable %d of 128: %v", i, err)
		}
	}
	if err := s.Setenv("LC_X0", "again"); err != nil {
		t.Fatalf("a name sent again: %v", err)
	}
	if err := s.Setenv("LC_ONE_MORE", "v"); err == nil {
		t.Fatal("a 129th variable was accepted")
	}
	out, err := s.Output("echo $LC_X0 $LC_X127 ${LC_ONE_MORE-unset}")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "again v unset" {
		t.Fatalf("environment %q, want %q", got, "again v unset")
	}
}
