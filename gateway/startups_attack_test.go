package gateway

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/internal/testenv"
)

// The proxy's user SSH entry faces anyone on the network. A peer that sent a version line
// and then nothing held a goroutine and a descriptor for 20 s per connection, with no
// bound on how many, until the process ran out of descriptors (web, tunnel and all). With
// proxy.ssh_max_startups connections in the SSH handshake, the next is closed unanswered;
// a place freed serves the next connection.
func TestProxySSHHandshakesAreBounded(t *testing.T) {
	const limit = 3
	cfg := loadWith(t, t.TempDir(), "  ssh_max_startups: 3\n")
	run(t, cfg, func(g *Gateway) {
		// Its connections are closed before the gateway stops: it waits for connections in
		// their handshake.
		testenv.CheckSSHHandshakesBounded(t, g.Addr(), limit, "ssh_max_startups")
	})
}

// One host could hold all ssh_max_startups places of the user SSH entry (connections that
// send a version line and stall) and lock every other user out. With
// ssh_max_startups_per_source from one address, the next from it is closed unanswered
// and another address still gets in.
func TestProxySSHHandshakesAreBoundedPerSource(t *testing.T) {
	cfg := loadWith(t, t.TempDir(), "  ssh_max_startups: 10\n  ssh_max_startups_per_source: 2\n")
	run(t, cfg, func(g *Gateway) {
		testenv.CheckSSHHandshakesBoundedPerSource(t, g.Addr(), 2, "ssh_max_startups_per_source")
	})
}

// A signed-in user could open session and direct-tcpip channels without bound on one
// connection to the proxy's SSH entry, each a goroutine and, once routed, a tunnel stream
// and an SSH handshake at a leaf that the user may leave stalled: one connection tied up
// the leaf's tunnel. With proxy.ssh_max_sessions such channels open at once, the next is
// refused; a channel closed frees its place.
func TestProxySSHChannelsPerConnectionAreBounded(t *testing.T) {
	cfg := loadWith(t, t.TempDir(), "  ssh_max_sessions: 2\n")
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
