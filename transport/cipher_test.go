package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestSSHCipherNamesWhatWasNegotiated: SSHCipher reads the negotiated cipher (and the MAC
// where the cipher has none of its own) from a server connection, a client and a bare
// ssh.Conn alike.
func TestSSHCipherNamesWhatWasNegotiated(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, err := ssh.NewSignerFromSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ciphers, macs []string
		want          string
	}{
		{[]string{"chacha20-poly1305@openssh.com"}, nil, "chacha20-poly1305@openssh.com"},
		{[]string{"aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"}, nil, "aes128-gcm@openssh.com"},
		{[]string{"aes256-ctr"}, []string{"hmac-sha2-256-etm@openssh.com"}, "aes256-ctr hmac-sha2-256-etm@openssh.com"},
	} {
		// A TCP pair: both ends write their version line first, which net.Pipe would block.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		b, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		a, err := l.Accept()
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		scfg := &ssh.ServerConfig{NoClientAuth: true}
		scfg.AddHostKey(hostKey)
		type result struct {
			conn *ssh.ServerConn
			err  error
		}
		done := make(chan result, 1)
		go func() {
			sc, chans, reqs, err := ssh.NewServerConn(a, scfg)
			if err == nil {
				go ssh.DiscardRequests(reqs)
				go func() {
					for range chans {
					}
				}()
			}
			done <- result{sc, err}
		}()
		ccfg := &ssh.ClientConfig{User: "u", HostKeyCallback: ssh.InsecureIgnoreHostKey()} //nolint:gosec // a test pair
		ccfg.Ciphers, ccfg.MACs = c.ciphers, c.macs
		cc, chans, reqs, err := ssh.NewClientConn(b, "pipe", ccfg)
		if err != nil {
			t.Fatalf("%v: %v", c.ciphers, err)
		}
		client := ssh.NewClient(cc, chans, reqs)
		r := <-done
		if r.err != nil {
			t.Fatalf("%v: %v", c.ciphers, r.err)
		}
		for name, conn := range map[string]ssh.Conn{"server": r.conn, "client": client, "conn": cc} {
			if got := SSHCipher(conn); got != c.want {
				t.Errorf("%v, %s side: %q, want %q", c.ciphers, name, got, c.want)
			}
		}
		client.Close()
		r.conn.Close()
	}
}
