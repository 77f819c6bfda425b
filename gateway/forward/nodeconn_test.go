package forward

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// A node that fails the enforcement point is named with what failed, from real SSH
// handshakes: a plain host key where a host certificate was due, a server that refuses
// the login, and nothing listening.
func TestNodeFailureMessage(t *testing.T) {
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, _ := ssh.NewSignerFromSigner(hostPriv)
	_, userPriv, _ := ed25519.GenerateKey(rand.Reader)
	userSigner, _ := ssh.NewSignerFromSigner(userPriv)

	// handshake runs a client against an x/crypto SSH server that refuses every key.
	handshake := func(t *testing.T, hostKeys ssh.HostKeyCallback) error {
		t.Helper()
		srv := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
			return nil, errors.New("no")
		}}
		srv.AddHostKey(hostSigner)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			_, _, _, _ = ssh.NewServerConn(c, srv)
			c.Close()
		}()
		a, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		_ = a.SetDeadline(time.Now().Add(30 * time.Second))
		_, _, _, err = ssh.NewClientConn(a, "node", &ssh.ClientConfig{User: "visitor", Auth: []ssh.AuthMethod{ssh.PublicKeys(userSigner)},
			HostKeyCallback: nodeHostKeyCallback(hostKeys)})
		if err == nil {
			t.Fatal("the handshake succeeded")
		}
		return err
	}

	t.Run("a_plain_host_key_is_the_node's_fault", func(t *testing.T) {
		err := handshake(t, HostKeyCallback(nil, []string{"node"}, time.Now))
		msg := NodeFailureMessage("node1", "leaf", "visitor", err)
		if !strings.Contains(msg, `node "node1" in cluster leaf did not present a host certificate`) || !strings.Contains(msg, "tetherctl auth sign --host=node1") {
			t.Fatalf("%q (from %v)", msg, err)
		}
	})
	t.Run("a_node_refusing_the_login_names_the_login", func(t *testing.T) {
		err := handshake(t, ssh.InsecureIgnoreHostKey()) //nolint:gosec // the host key is not what this case tests
		msg := NodeFailureMessage("node1", "leaf", "visitor", err)
		if !strings.Contains(msg, `node "node1" in cluster leaf refused the login "visitor"`) || !strings.Contains(msg, "auth export --type=openssh") {
			t.Fatalf("%q (from %v)", msg, err)
		}
		// The usual cause first, for either kind of node: the Unix user is missing (a
		// Tether node agent has no TrustedUserCAKeys; found by the acceptance pass, where
		// ubuntu@node-east, an agent without the user ubuntu, was sent to sshd's settings).
		user, ca := strings.Index(msg, "has the Unix user visitor"), strings.Index(msg, "an OpenSSH server also")
		if user < 0 || ca < 0 || user > ca {
			t.Fatalf("the missing user is not named first, and TrustedUserCAKeys as OpenSSH's: %q", msg)
		}
	})
	t.Run("nothing_listening_is_unreachable", func(t *testing.T) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		_, err := net.DialTimeout("tcp", addr, 5*time.Second)
		msg := NodeFailureMessage("node1", "leaf", "visitor", err)
		if msg != `node "node1" in cluster leaf refused the connection or could not be reached; try again later or ask an admin` {
			t.Fatalf("%q (from %v)", msg, err)
		}
		if strings.Contains(msg, addr) {
			t.Fatal("the message shows the node's address")
		}
	})
}

// A session cut while its program runs asks the node to kill the program before closing;
// a session whose relay ended by itself just closes.
func TestCloseOnEndKillsTheProgramOfACutSession(t *testing.T) {
	for _, cut := range []bool{true, false} {
		t.Run(map[bool]string{true: "cut", false: "ended"}[cut], func(t *testing.T) {
			_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
			hostSigner, _ := ssh.NewSignerFromSigner(hostPriv)
			srv := &ssh.ServerConfig{NoClientAuth: true}
			srv.AddHostKey(hostSigner)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			got := make(chan []string, 1) // the requests the node saw until the channel closed
			go func() {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				_, chans, reqs, err := ssh.NewServerConn(c, srv)
				if err != nil {
					return
				}
				go ssh.DiscardRequests(reqs)
				nc := <-chans
				ch, creqs, err := nc.Accept()
				if err != nil {
					return
				}
				defer ch.Close()
				var seen []string
				for r := range creqs {
					var sig struct{ Signal string }
					_ = ssh.Unmarshal(r.Payload, &sig)
					seen = append(seen, r.Type+":"+sig.Signal)
				}
				got <- seen
			}()
			client, err := ssh.Dial("tcp", l.Addr().String(), &ssh.ClientConfig{User: "visitor", HostKeyCallback: ssh.InsecureIgnoreHostKey()}) //nolint:gosec // a local test server
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			nch, _, err := client.OpenChannel("session", nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			relayed := make(chan struct{})
			user := &closer{}
			done := make(chan struct{})
			go func() { closeOnEnd(ctx, relayed, user, nch); close(done) }()
			if cut {
				cancel()
			} else {
				close(relayed)
			}
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("closeOnEnd did not return")
			}
			want := map[bool]string{true: "signal:KILL", false: ""}[cut]
			select {
			case seen := <-got:
				if strings.Join(seen, ",") != want {
					t.Fatalf("the node saw %v, want %q", seen, want)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the node's channel was not closed")
			}
			if !user.closed.Load() {
				t.Fatal("the user's channel was not closed")
			}
		})
	}
}

type closer struct{ closed atomic.Bool }

func (c *closer) Close() error { c.closed.Store(true); return nil }
