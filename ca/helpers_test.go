package ca_test

import (
	"crypto"
	"crypto/rand"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
)

// testNow is the clock every test authority reads unless a test says otherwise.
var testNow = time.Date(2026, 11, 23, 19, 45, 35, 0, time.UTC)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// newAuthority makes an authority on the test clock.
func newAuthority(t testing.TB, cluster string, typ ca.Type, alg ca.Algorithm) *ca.Authority {
	t.Helper()
	a, err := ca.NewAuthority(cluster, typ, alg)
	if err != nil {
		t.Fatal(err)
	}
	a.Clock = fixedClock(testNow)
	return a
}

// newKey makes a user's or host's key pair.
func newKey(t testing.TB, alg ca.Algorithm) (crypto.Signer, ssh.PublicKey) {
	t.Helper()
	priv, err := ca.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// aliceRequest is a complete user certificate request.
func aliceRequest(pub ssh.PublicKey) ca.UserCertRequest {
	return ca.UserCertRequest{
		PublicKey:      pub,
		Username:       "alice",
		KeyID:          "alice@root.example.com",
		Logins:         []string{"visitor", "ubuntu"},
		Roles:          []string{"access", "auditor"},
		Traits:         map[string][]string{"logins": {"visitor", "ubuntu"}, "groups": {"sre"}, "empty": {}},
		RouteToCluster: "leaf.example.com",
		IssuedVia:      "oidc/okta",
		MFAVerified:    true,
		TTL:            8 * time.Hour,
		MaxTTL:         12 * time.Hour,
	}
}

func issue(t testing.TB, a *ca.Authority, req ca.UserCertRequest) *ssh.Certificate {
	t.Helper()
	cert, err := a.IssueUser(req)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// reparse sends a certificate through its wire form, as a server receives it.
func reparse(t testing.TB, cert *ssh.Certificate) *ssh.Certificate {
	t.Helper()
	pub, err := ssh.ParsePublicKey(cert.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	c, ok := pub.(*ssh.Certificate)
	if !ok {
		t.Fatalf("parsed %T, want a certificate", pub)
	}
	return c
}

// signCert signs c as ssh.Certificate.SignCert does, without its refusal of certificates
// with no principal or an empty one (x/crypto v0.59): ssh-keygen and other CAs sign such
// certificates, x/crypto still parses them, and Tether's own checks must refuse them.
func signCert(c *ssh.Certificate, authority ssh.Signer) error {
	c.Nonce = make([]byte, 32)
	if _, err := rand.Read(c.Nonce); err != nil {
		return err
	}
	c.SignatureKey = authority.PublicKey()
	unsigned := *c
	unsigned.Signature = nil
	data := unsigned.Marshal()
	data = data[:len(data)-4] // the empty signature's length prefix
	var err error
	if as, ok := authority.(ssh.AlgorithmSigner); ok && authority.PublicKey().Type() == ssh.KeyAlgoRSA {
		c.Signature, err = as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA512)
	} else {
		c.Signature, err = authority.Sign(rand.Reader, data)
	}
	return err
}
