package web

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/state"
)

type loginFixture struct {
	web   *Server
	auth  *auth.Service
	users *auth.Users
	addr  string
}

func startLogin(t *testing.T, ucfg auth.UsersConfig) *loginFixture {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := state.OpenEmbedded(state.EmbeddedConfig{Dir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := ca.NewCluster("root.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.New(policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(context.Background(), auth.Config{ClusterName: "root.example.com", CA: c, Store: st, Engine: eng, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := resource.Parse([]byte(`kind: role
version: v5
metadata: {name: access}
spec:
  allow:
    logins: ["{{internal.logins}}"]
---
kind: user
version: v2
metadata: {name: alice}
spec: {roles: [access], traits: {logins: [visitor]}}
---
kind: user
version: v2
metadata: {name: bob}
spec: {roles: [access], traits: {logins: [bob]}}
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Create(context.Background(), rs, false); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Auth: a, PublicAddr: l.Addr().String(), Logger: quiet})
	users := auth.NewUsers(a, ucfg)
	s.HandleLogin(users)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done; eng.Close() })
	return &loginFixture{web: s, auth: a, users: users, addr: l.Addr().String()}
}

// clientFrom verifies the server with the cluster's TLS CA, dials from the loopback
// address src (127.0.0.0/8 is all local on Linux) and presents cert, if any.
func (f *loginFixture) clientFrom(src string, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: f.auth.CA().TLS.CertPool(), ServerName: "127.0.0.1"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DialContext: d.DialContext}}
}

func call(t *testing.T, c *http.Client, url string, body any, h http.Header) (*http.Response, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	method := http.MethodPost
	var rd io.Reader = bytes.NewReader(b)
	if body == nil {
		method, rd = http.MethodGet, nil
	}
	req, _ := http.NewRequest(method, url, rd)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

// signUp completes alice's (or another user's) sign-up over HTTP and returns the secret.
func (f *loginFixture) signUp(t *testing.T, c *http.Client, user string) []byte {
	t.Helper()
	token, _, err := f.users.IssueSignup(context.Background(), user, 0)
	if err != nil {
		t.Fatal(err)
	}
	resp, data := call(t, c, "https://"+f.addr+SignupInfoPath, SignupTokenBody{Token: token}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("signup info: HTTP %d %s", resp.StatusCode, data)
	}
	var info auth.SignupInfo
	_ = json.Unmarshal(data, &info)
	secret, err := auth.DecodeTOTPSecret(info.TOTPSecret)
	if err != nil {
		t.Fatal(err)
	}
	req := SignupRequest{Token: token, Password: "correct horse", OTP: auth.TOTPCode(secret, time.Now())}
	if resp, data := call(t, c, "https://"+f.addr+SignupPath, req, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("signup: HTTP %d %s", resp.StatusCode, data)
	}
	if resp, data := call(t, c, "https://"+f.addr+SignupPath, req, nil); resp.StatusCode != http.StatusForbidden || !strings.Contains(string(data), "not valid") {
		t.Fatalf("sign-up token reuse: HTTP %d %s", resp.StatusCode, data)
	}
	return secret
}

// signIn signs user up and in with a new key over c and returns the TLS client
// certificate with its key, and the answer (its SSHCert is the SSH certificate).
func (f *loginFixture) signIn(t *testing.T, c *http.Client, user string) (*tls.Certificate, LoginResponse) {
	t.Helper()
	secret := f.signUp(t, c, user)
	priv, key := sshKey(t)
	resp, data := call(t, c, "https://"+f.addr+LoginPath, LoginRequest{User: user, Password: "correct horse", OTP: auth.TOTPCode(secret, time.Now().Add(auth.TOTPPeriod)), PublicKey: key, TTL: "1h"}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: HTTP %d %s", resp.StatusCode, data)
	}
	var lr LoginResponse
	if err := json.Unmarshal(data, &lr); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(lr.TLSCert))
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: priv, Leaf: leaf}, lr
}

func sshKey(t *testing.T) (ed25519.PrivateKey, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ssh.NewPublicKey(pub)
	return priv, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

func TestFailedLoginsGet429PerUserAndPerAddress(t *testing.T) {
	t.Parallel()
	f := startLogin(t, auth.UsersConfig{UserFailures: 3, AddrFailures: 6, FailureWindow: time.Minute})
	attacker, other := f.clientFrom("127.0.0.2", nil), f.clientFrom("127.0.0.3", nil)
	alice := f.signUp(t, other, "alice")
	bob := f.signUp(t, other, "bob")
	_, key := sshKey(t)
	url := "https://" + f.addr + LoginPath

	// An unknown user's answer is byte for byte a wrong password's.
	r1, wrong := call(t, attacker, url, LoginRequest{User: "alice", Password: "guess one", OTP: "000000", PublicKey: key}, nil)
	r2, unknown := call(t, attacker, url, LoginRequest{User: "nobody", Password: "guess one", OTP: "000000", PublicKey: key}, nil)
	if r1.StatusCode != http.StatusUnauthorized || r2.StatusCode != r1.StatusCode || !bytes.Equal(wrong, unknown) {
		t.Fatalf("wrong password: %d %s; unknown user: %d %s", r1.StatusCode, wrong, r2.StatusCode, unknown)
	}
	call(t, attacker, url, LoginRequest{User: "alice", Password: "guess two", OTP: "000000", PublicKey: key}, nil)
	call(t, attacker, url, LoginRequest{User: "alice", Password: "guess three", OTP: "000000", PublicKey: key}, nil)
	// alice is locked, for every address, even with the right password.
	resp, data := call(t, other, url, LoginRequest{User: "alice", Password: "correct horse", OTP: auth.TOTPCode(alice, time.Now().Add(auth.TOTPPeriod)), PublicKey: key}, nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("locked user: HTTP %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), data)
	}
	// The attacker's address guesses other names until it is locked as an address.
	for _, n := range []string{"carol", "dave", "erin"} {
		call(t, attacker, url, LoginRequest{User: n, Password: "guess", OTP: "000000", PublicKey: key}, nil)
	}
	resp, _ = call(t, attacker, url, LoginRequest{User: "bob", Password: "correct horse", OTP: auth.TOTPCode(bob, time.Now().Add(auth.TOTPPeriod)), PublicKey: key}, nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("locked address: HTTP %d", resp.StatusCode)
	}
	// bob from another address is unaffected.
	resp, data = call(t, other, url, LoginRequest{User: "bob", Password: "correct horse", OTP: auth.TOTPCode(bob, time.Now().Add(auth.TOTPPeriod)), PublicKey: key}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("another user from another address: HTTP %d %s", resp.StatusCode, data)
	}
}

func TestUserCertificatesOpenTheClusterListButNotTheAdminAPI(t *testing.T) {
	t.Parallel()
	f := startLogin(t, auth.UsersConfig{})
	c := f.clientFrom("127.0.0.1", nil)
	cert, lr := f.signIn(t, c, "alice")
	if lr.Cluster != "root.example.com" || len(lr.KnownHosts) == 0 || !strings.HasPrefix(lr.KnownHosts[0], "@cert-authority *.root.example.com,root.example.com ssh-") || !strings.Contains(lr.TLSCA, "BEGIN CERTIFICATE") {
		t.Fatalf("login response %+v", lr)
	}
	user := f.clientFrom("127.0.0.1", cert)

	resp, _ := call(t, user, "https://"+f.addr+"/v1/admin/tokens", nil, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a user's certificate on the admin API: HTTP %d, want 403", resp.StatusCode)
	}
	h := http.Header{SSHCertHeader: {lr.SSHCert}}
	resp, data := call(t, user, "https://"+f.addr+ClustersPath, nil, h)
	var cl ClustersResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &cl) != nil || len(cl.Clusters) != 1 || cl.Clusters[0].Name != "root.example.com" || cl.Clusters[0].Type != "root" {
		t.Fatalf("cluster list: HTTP %d %s", resp.StatusCode, data)
	}
	resp, data = call(t, c, "https://"+f.addr+ClustersPath, nil, h)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(data), "run tether login again") {
		t.Fatalf("cluster list with the SSH certificate but no client certificate: HTTP %d %s", resp.StatusCode, data)
	}
}

func TestSignupTokensTravelInBodiesOnly(t *testing.T) {
	t.Parallel()
	f := startLogin(t, auth.UsersConfig{})
	c := f.clientFrom("127.0.0.1", nil)
	for _, body := range []string{`{"token": "` + strings.Repeat("ab", 32) + `"}`, `{"token": ""}`, `{"token": 1}`, `{"tokn": "x"}`} {
		resp, err := c.Post("https://"+f.addr+SignupInfoPath, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d", body, resp.StatusCode)
		}
	}
	resp, err := c.Get("https://" + f.addr + SignupInfoPath + "?token=abc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET with the token in the URL: HTTP %d", resp.StatusCode)
	}
}
