package auth

import (
	"context"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
)

// TestWebAPIRefusesAnOpenSSHCACertificate: the web API's Tether-SSH-Certificate header
// (AuthenticateUser) takes only a certificate of the cluster's user CA. A certificate the
// openssh CA signed for the same user and the very key of the user's TLS client
// certificate (all a node ever sees, plus the node-access extension) is refused.
func TestWebAPIRefusesAnOpenSSHCACertificate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newUsersFixture(t, UsersConfig{})
	secret := f.signUp(t, "alice")
	res, err := f.u.Login(ctx, LoginRequest{User: "alice", Password: goodPassword, OTP: f.nextCode(secret), PublicKey: newKey(t), TTL: time.Hour, Remote: "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	peer := []*x509.Certificate{res.TLSCert}
	if _, err := f.u.AuthenticateUser(peer, string(ssh.MarshalAuthorizedKey(res.SSHCert))); err != nil {
		t.Fatalf("control: %v", err)
	}
	node, err := f.s.CA().OpenSSH.IssueUser(ca.UserCertRequest{PublicKey: res.SSHCert.Key, Username: "alice",
		Logins: res.SSHCert.ValidPrincipals, Roles: []string{"access"}, Traits: map[string][]string{"logins": res.SSHCert.ValidPrincipals},
		TTL: 5 * time.Minute, MaxTTL: 5 * time.Minute, NodeAccess: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.u.AuthenticateUser(peer, string(ssh.MarshalAuthorizedKey(node))); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("AuthenticateUser with an openssh CA certificate = %v, want ErrUnauthenticated", err)
	}
}
