package node_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/node"
)

// TestAnOldIdentityThatCannotHeartbeatAcceptsNothing: a node agent upgraded on an
// identity.json of the previous version (user_cas: the user CA's keys) whose cluster does
// not answer (down, or unreachable from the node) keeps node.token in its config, as the
// printed node section has it, so it tries to join again, fails, and serves on the old
// identity. It must not fall back to the user CA: a user's login certificate, and even a
// certificate of the user CA carrying the node-access extension (what the previous
// version's enforcement point issued), are refused, as is everything else until a
// heartbeat brings the openssh CA.
func TestAnOldIdentityThatCannotHeartbeatAcceptsNothing(t *testing.T) {
	g := startCluster(t)
	dir := t.TempDir()
	token := nodeToken(t, g, auth.TokenOptions{TTL: time.Hour})
	cfg := nodeConfig(t, g, "old2", token, dir)
	a, err := node.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)()
	writePreOpenSSHIdentity(t, g, dir)

	cfg.AuthServer = "127.0.0.1:1" // the cluster does not answer
	logger, buf := logBuffer()
	cfg.Logger = logger
	b, err := node.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("the node does not start on its old identity: %v", err)
	}
	runAgent(t, b)

	// The user CA's private key, to forge what the previous enforcement point signed.
	res, err := g.Auth().CA().User.Resource(true)
	if err != nil {
		t.Fatal(err)
	}
	userCA, err := ssh.ParsePrivateKey([]byte(res.Spec.ActiveKeys.SSH[0].PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := ssh.NewSignerFromKey(priv)
	now := time.Now()
	old := &ssh.Certificate{Key: key.PublicKey(), CertType: ssh.UserCert, KeyId: "alice@root via root", ValidPrincipals: []string{"root"},
		ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(5 * time.Minute).Unix()),
		Permissions: ssh.Permissions{Extensions: map[string]string{ca.ExtNodeAccess: "", "permit-pty": ""}}}
	if err := old.SignCert(rand.Reader, userCA); err != nil {
		t.Fatal(err)
	}
	dial := func(cert *ssh.Certificate, s ssh.Signer) error { return dialAsRoot(b.Addr().String(), cert, s) }
	login := loginCertificate(t, g.Auth().CA().User, "root")
	nodeKey := newUserKey(t, g.Auth().CA().OpenSSH, []string{"root"}, time.Minute)
	for name, tc := range map[string]struct {
		cert *ssh.Certificate
		s    ssh.Signer
	}{
		"a_login_certificate_of_the_user_CA":                        {login.Cert, login.Signer},
		"a_user_CA_certificate_with_the_node_access_extension":      {old, key},
		"a_node_certificate_of_the_openssh_CA_before_any_heartbeat": {nodeKey.Cert, nodeKey.Signer},
	} {
		if err := dial(tc.cert, tc.s); err == nil {
			t.Errorf("%s opens a node serving on an identity from before the openssh CA", name)
		}
	}
	if !strings.Contains(buf.String(), "joining with the new node.token failed") {
		t.Logf("log:\n%s", buf.String())
	}
}
