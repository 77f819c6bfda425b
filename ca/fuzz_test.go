package ca_test

import (
	"slices"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/policy"
)

// fuzzFixture is a user CA, its signing key as an ssh.Signer, and a user's key.
type fuzzFixture struct {
	a      *ca.Authority
	signer ssh.Signer
	pub    ssh.PublicKey
}

var fuzzCA = sync.OnceValue(func() fuzzFixture {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	a, err := ca.NewAuthority("root.example.com", ca.UserCA, "")
	must(err)
	r, err := a.Resource(true)
	must(err)
	signer, err := ssh.ParsePrivateKey([]byte(r.Spec.ActiveKeys.SSH[0].PrivateKey))
	must(err)
	priv, err := ca.GenerateKey("")
	must(err)
	pub, err := ssh.NewPublicKey(priv.Public())
	must(err)
	return fuzzFixture{a: a, signer: signer, pub: pub}
})

// FuzzCertFromSSH signs certificates whose extension values, key id, principal and times
// are arbitrary, sends them through the wire form, VerifyUser and CertFromSSH. Nothing may
// panic, every such certificate must verify (it is genuinely signed), and whatever
// CertFromSSH accepts must make a decision input the policy accepts.
func FuzzCertFromSSH(f *testing.F) {
	f.Add("alice", `["access","auditor"]`, `{"logins":["visitor"],"groups":[]}`, "leaf.example.com", "oidc/okta", "", true, "alice", "visitor", uint64(1795000000), uint64(1795030000))
	f.Add("", `[]`, `{}`, "", "", "", false, "", "", uint64(0), uint64(ssh.CertTimeInfinity))
	f.Add("bob", `[""]`, `{"":[]}`, "\xff", "x", "true", true, "k", "", uint64(1<<63), uint64(1))
	f.Add("bob", `["a"] `, `{"a":["b"],"a":["c"]}`, "", "", "", false, "k", "root", uint64(10), uint64(5))
	f.Add("bob", `["\ud800",1]`, `{"a":null}`, "", "", "", false, "k", "root", uint64(10), uint64(5))
	f.Fuzz(func(t *testing.T, user, roles, traits, route, issuedVia, mfa string, hasMFA bool, keyID, principal string, validAfter, validBefore uint64) {
		fx := fuzzCA()
		a, pub := fx.a, fx.pub
		ext := map[string]string{ca.ExtUser: user, ca.ExtRoles: roles, ca.ExtTraits: traits, ca.ExtRouteToCluster: route, ca.ExtIssuedVia: issuedVia, "permit-pty": ""}
		if hasMFA {
			ext[ca.ExtMFAVerified] = mfa
		}
		cert := &ssh.Certificate{
			Key: pub, CertType: ssh.UserCert, KeyId: keyID, ValidPrincipals: []string{principal},
			ValidAfter: validAfter, ValidBefore: validBefore, Permissions: ssh.Permissions{Extensions: ext},
		}
		if err := signCert(cert, fx.signer); err != nil {
			t.Fatal(err)
		}
		parsed, err := ssh.ParsePublicKey(cert.Marshal())
		if err != nil {
			t.Fatalf("our own certificate does not parse: %v", err)
		}
		got := parsed.(*ssh.Certificate)
		signer, err := ca.VerifyUser(got, a.TrustedKeys())
		if err != nil {
			t.Fatalf("a genuinely signed certificate does not verify: %v", err)
		}
		c, err := policy.CertFromSSH(got, signer)
		if err != nil {
			return
		}
		in := policy.Input{Action: policy.ActionSSHSession, Cluster: "leaf.example.com", Now: testNow, Cert: c, Login: principal,
			Node: &policy.Node{Name: "node1", Labels: map[string]string{"env": "stage"}}}
		if err := in.Validate(); err != nil {
			t.Fatalf("CertFromSSH accepted a certificate the policy input refuses: %v", err)
		}
		_ = c.Value()
		if c.Username != user || c.KeyID != keyID || !slices.Equal(c.Principals, []string{principal}) || c.MFAVerified != hasMFA ||
			c.RouteToCluster != route || c.IssuedVia != issuedVia || c.SigningCA.Fingerprint != ca.Fingerprint(a.SigningKey()) {
			t.Fatalf("CertFromSSH changed what the certificate says: %+v", c)
		}
		if validAfter <= validBefore && c.ValidAfter.After(c.ValidBefore) {
			t.Fatalf("validity order changed: %d..%d became %v..%v", validAfter, validBefore, c.ValidAfter, c.ValidBefore)
		}
	})
}

// FuzzVerifyUser feeds arbitrary bytes as a certificate: parsing, VerifyUser and
// CertFromSSH must never panic, and nothing but the one genuine certificate verifies.
func FuzzVerifyUser(f *testing.F) {
	a, pub := fuzzCA().a, fuzzCA().pub
	genuine, err := a.IssueUser(aliceRequest(pub))
	if err != nil {
		f.Fatal(err)
	}
	blob := genuine.Marshal()
	f.Add(blob)
	f.Add(blob[:len(blob)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		key, err := ssh.ParsePublicKey(b)
		if err != nil {
			return
		}
		cert, ok := key.(*ssh.Certificate)
		if !ok {
			return
		}
		signer, err := ca.VerifyUser(cert, a.TrustedKeys())
		if err != nil {
			return
		}
		if !slices.Equal(cert.Marshal(), blob) {
			t.Fatalf("a certificate other than the genuine one verifies")
		}
		if _, err := policy.CertFromSSH(cert, signer); err != nil {
			t.Fatalf("the genuine certificate: %v", err)
		}
	})
}
