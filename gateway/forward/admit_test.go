package forward

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/internal/testenv"
)

// The login is decided at authentication, and only for a client that proved it holds the
// certificate's key: a certificate is public, so one offered with another key is refused
// with nothing said (no banner, no decision), and the identity recorded is always that of
// the key that signed.
func TestServerConfigAdmitsOnlyAProvenKey(t *testing.T) {
	t.Parallel()
	cluster, err := ca.NewCluster("root.example.com", ca.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, _ := ssh.NewSignerFromSigner(hostPriv)
	certSigner := func(t *testing.T, user string, priv ed25519.PrivateKey) ssh.Signer {
		t.Helper()
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		key := pub
		if priv != nil {
			key = priv.Public().(ed25519.PublicKey)
		}
		sshPub, _ := ssh.NewPublicKey(key)
		cert, err := cluster.User.IssueUser(ca.UserCertRequest{PublicKey: sshPub, Username: user, Logins: []string{"visitor"}, TTL: time.Hour, MaxTTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if priv == nil { // someone else's certificate, signed with a key of our own
			_, priv, _ = ed25519.GenerateKey(rand.Reader)
		}
		s, _ := ssh.NewSignerFromSigner(priv)
		cs, err := ssh.NewCertSigner(cert, s)
		if err == nil {
			return cs
		}
		// NewCertSigner refuses a key that is not the certificate's: sign with the
		// wrong key anyway, as an attacker's client would.
		return forgedCertSigner{cert: cert, Signer: s}
	}
	_, alicePriv, _ := ed25519.GenerateKey(rand.Reader)

	for _, tc := range []struct {
		name       string
		signer     func(t *testing.T) ssh.Signer
		admit      string // what admit answers
		wantOK     bool
		wantUser   string
		wantBanner string
		wantAdmits int32
	}{
		{"allowed_login_records_the_identity", func(t *testing.T) ssh.Signer { return certSigner(t, "alice", alicePriv) }, "", true, "alice", "", 1},
		{"denied_login_is_refused_at_authentication_with_the_reason", func(t *testing.T) ssh.Signer { return certSigner(t, "alice", alicePriv) },
			"user alice@root.example.com is not authorized to login as visitor@root.example.com: no role", false, "", "is not authorized to login as visitor@", 1},
		{"the_reason_cannot_drive_the_terminal", func(t *testing.T) ssh.Signer { return certSigner(t, "alice", alicePriv) },
			"locked: \x1b[2J\x1b]0;pwned\x07", false, "", "locked:  [2J ]0;pwned ", 1},
		{"someone_elses_certificate_without_its_key_is_told_nothing", func(t *testing.T) ssh.Signer { return certSigner(t, "alice", nil) },
			"user alice@root.example.com is not authorized: secret reasons", false, "", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var admits atomic.Int32
			var id *Identity
			cfg := ServerConfig(context.Background(), hostSigner,
				func(context.Context) ([]ca.TrustedKey, error) { return cluster.User.TrustedKeys(), nil },
				time.Now, slog.New(slog.DiscardHandler),
				func(login string, got *Identity) string {
					admits.Add(1)
					if login != "visitor" || got.ID.Username != "alice" {
						t.Errorf("admit asked for %s as %s", got.ID.Username, login)
					}
					return tc.admit
				}, &id)
			cc, sc := testenv.TCPPair(t)
			done := make(chan error, 1)
			go func() {
				defer sc.Close()
				_, _, _, err := ssh.NewServerConn(sc, cfg)
				done <- err
			}()
			var banner strings.Builder
			_, _, _, err := ssh.NewClientConn(cc, "node1", &ssh.ClientConfig{
				User: "visitor", Auth: []ssh.AuthMethod{ssh.PublicKeys(tc.signer(t))},
				HostKeyCallback: ssh.InsecureIgnoreHostKey(),
				BannerCallback:  func(m string) error { banner.WriteString(m); return nil },
			})
			cc.Close()
			serr := <-done
			if ok := err == nil && serr == nil; ok != tc.wantOK {
				t.Fatalf("client %v, server %v; want success %v", err, serr, tc.wantOK)
			}
			if tc.wantOK && (id == nil || id.ID.Username != tc.wantUser) {
				t.Fatalf("identity %+v", id)
			}
			if !tc.wantOK && id != nil {
				t.Fatalf("a refused connection recorded the identity %+v", id.ID)
			}
			if tc.wantBanner == "" && banner.Len() > 0 || !strings.Contains(banner.String(), tc.wantBanner) {
				t.Fatalf("banner %q, want %q", banner.String(), tc.wantBanner)
			}
			if strings.ContainsAny(banner.String(), "\x1b\x07") {
				t.Fatalf("banner carries terminal controls: %q", banner.String())
			}
			if n := admits.Load(); n != tc.wantAdmits {
				t.Fatalf("admit asked %d times, want %d", n, tc.wantAdmits)
			}
		})
	}
}

// forgedCertSigner presents cert but signs with another key.
type forgedCertSigner struct {
	cert *ssh.Certificate
	ssh.Signer
}

func (f forgedCertSigner) PublicKey() ssh.PublicKey { return f.cert }
