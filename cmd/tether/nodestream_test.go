package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/gateway/trust"
	"github.com/tetherproject/tether/internal/testenv"
)

// streamProfile is a profile for the proxy at srv whose CA file pins caPEM, with a
// client certificate and an SSH certificate file (their content is not checked here).
func streamProfile(t *testing.T, srv *httptest.Server, caPEM []byte) *Profile {
	t.Helper()
	p := &Profile{Proxy: srv.Listener.Addr().String(), User: "alice"}
	p.dir = t.TempDir()
	p.CAFile = filepath.Join(p.dir, "ca.pem")
	der, priv := selfSigned(t, "alice")
	keyDER, _ := x509.MarshalPKCS8PrivateKey(priv)
	if err := os.MkdirAll(filepath.Dir(p.TLSCertPath()), 0o700); err != nil {
		t.Fatal(err)
	}
	for path, data := range map[string][]byte{
		p.CAFile:        caPEM,
		p.TLSCertPath(): pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		p.TLSKeyPath():  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		p.CertPath():    []byte("ssh-ed25519-cert-v01@openssh.com AAAA alice\n"),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// selfSigned is a certificate for name signed by its own key (a client certificate, or
// a CA no server here chains to).
func selfSigned(t *testing.T, name string) ([]byte, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	return der, priv
}

func certPEM(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

// What tether proxy ssh and tether ssh make of a proxy's answer to the node stream
// request, before any byte of the user's SSH connection is sent.
func TestNodeStreamAnswers(t *testing.T) {
	t.Parallel()
	refuse := func(status int, msg string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(trust.ErrorResponse{Error: msg})
		}
	}
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		// pin pins another CA than the server's.
		pin        bool
		want       string // in the error
		wantStderr string
		wantNo     bool // errNoNodeStream: fall back to the SSH entry
	}{
		{name: "a proxy of another TLS CA is no proxy to retry", handler: refuse(http.StatusForbidden, "x"), pin: true,
			want: "Someone may be intercepting the connection"},
		{name: "a proxy without node streams falls back to its SSH entry", handler: http.NotFound, wantNo: true},
		{name: "a refused route is printed as the SSH entry prints it", handler: refuse(http.StatusForbidden, "cluster leaf-east is offline\x1b[2J"),
			want: "exit status 1", wantStderr: "ERROR: cluster leaf-east is offline"},
		{name: "an expired sign-in says to sign in again", handler: refuse(http.StatusUnauthorized, "not signed in"), want: "run tether login again"},
		{name: "a busy proxy says to try again", handler: refuse(http.StatusTooManyRequests, "too many"), want: "try again"},
		{name: "a switch to another protocol is refused", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Upgrade", "websocket")
			w.WriteHeader(http.StatusSwitchingProtocols)
		}, want: "another protocol"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewTLSServer(tc.handler)
			t.Cleanup(srv.Close)
			pin := certPEM(srv)
			if tc.pin {
				der, _ := selfSigned(t, "another CA")
				pin = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
			}
			p := streamProfile(t, srv, pin)
			var stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			conn, _, err := tlsNodeStream(ctx, p, "node", 22, "leaf-east", &stderr)
			if err == nil {
				conn.Close()
				t.Fatal("a stream was opened")
			}
			if tc.wantNo != errors.Is(err, errNoNodeStream) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q (fall back: %v)", err, tc.want, tc.wantNo)
			}
			if tc.pin && strings.Contains(err.Error(), "try again") {
				t.Fatalf("err = %v: never 'try again' for a certificate that does not check", err)
			}
			if got := stderr.String(); !strings.Contains(got, tc.wantStderr) || strings.Contains(got, "\x1b") {
				t.Fatalf("stderr %q, want %q and nothing raw", got, tc.wantStderr)
			}
		})
	}
}

// connectProxy is an HTTP proxy that serves CONNECT only, to the address asked for,
// when the request carries auth as its Proxy-Authorization (any, when auth is empty);
// it records the targets asked for.
func connectProxy(t *testing.T, auth string) (addr string, asked *testenv.Buffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	asked = &testenv.Buffer{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				fmt.Fprintln(asked, req.Method, req.Host)
				if req.Method != http.MethodConnect || auth != "" && req.Header.Get("Proxy-Authorization") != auth {
					_, _ = io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
					return
				}
				up, err := net.Dial("tcp", req.Host)
				if err != nil {
					_, _ = io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
					return
				}
				defer up.Close()
				_, _ = io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
				go func() { _, _ = io.Copy(up, c) }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String(), asked
}

// Behind a corporate proxy (HTTPS_PROXY), tether reaches the web port with HTTP CONNECT,
// with the proxy's credentials from the URL, as tsh and curl do; a proxy that refuses is
// named with its answer and without the credentials.
func TestNodeStreamThroughAnHTTPProxy(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "through") }))
	t.Cleanup(srv.Close)
	target := srv.Listener.Addr().String()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d := &net.Dialer{Timeout: 5 * time.Second}

	addr, asked := connectProxy(t, "Basic "+base64.StdEncoding.EncodeToString([]byte("corp:s3cret")))
	raw, err := connectVia(ctx, d, &url.URL{Scheme: "http", Host: addr, User: url.UserPassword("corp", "s3cret")}, target)
	if err != nil {
		t.Fatal(err)
	}
	conn := tls.Client(raw, cfg)
	defer conn.Close()
	req, _ := http.NewRequest(http.MethodGet, "https://"+target+"/", nil)
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "through" || asked.String() != "CONNECT "+target+"\n" {
		t.Fatalf("through the proxy: %q; the proxy was asked %q", body, asked.String())
	}

	_, err = connectVia(ctx, d, &url.URL{Scheme: "http", Host: addr, User: url.UserPassword("corp", "wrong")}, target)
	var perr *proxyError
	if !errors.As(err, &perr) || !strings.Contains(err.Error(), "refused to connect to "+target+": 407 Proxy Authentication Required") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("wrong proxy credentials: %v", err)
	}
	if _, err := connectVia(ctx, d, &url.URL{Scheme: "socks5", Host: addr}, target); !errors.As(err, &perr) || !strings.Contains(err.Error(), "HTTP CONNECT only") {
		t.Fatalf("a socks5 proxy: %v", err)
	}
}

// The SSH entry goes through HTTPS_PROXY as the web port does (dialRoot, used by both), and
// NO_PROXY and loopback addresses go direct. The test proxy cannot resolve the name it is
// asked for, so a request that went through it is refused with the proxy's own answer.
func TestRootPortsGoThroughHTTPSProxy(t *testing.T) {
	addr, asked := connectProxy(t, "")
	t.Setenv("HTTPS_PROXY", "http://"+addr)
	t.Setenv("NO_PROXY", "direct.tether.invalid")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d := &net.Dialer{Timeout: 5 * time.Second}

	_, err := dialRoot(ctx, d, "root.tether.invalid:3023")
	var perr *proxyError
	if !errors.As(err, &perr) || !strings.Contains(err.Error(), "refused to connect to root.tether.invalid:3023: 502") {
		t.Fatalf("through the proxy: %v", err)
	}
	if asked.String() != "CONNECT root.tether.invalid:3023\n" {
		t.Fatalf("the proxy was asked %q", asked.String())
	}

	// The SSH entry (dialProxy) takes the same way and says the proxy's refusal as is.
	_, hostCA, _ := ed25519.GenerateKey(rand.Reader)
	caKey, err := ssh.NewPublicKey(hostCA.Public())
	if err != nil {
		t.Fatal(err)
	}
	p := &Profile{dir: t.TempDir(), Proxy: "root.tether.invalid:3023", User: "alice"}
	if err := os.WriteFile(p.KnownHostsPath(), []byte("@cert-authority root.tether.invalid "+string(ssh.MarshalAuthorizedKey(caKey))), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(hostCA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialProxy(ctx, p, signer); !errors.As(err, &perr) || !strings.Contains(err.Error(), "refused to connect to root.tether.invalid:3023: 502") {
		t.Fatalf("the SSH entry through the proxy: %v", err)
	}
	if asked.String() != "CONNECT root.tether.invalid:3023\nCONNECT root.tether.invalid:3023\n" {
		t.Fatalf("the proxy was asked %q", asked.String())
	}

	// SSH's server speaks first: its banner, which may come in the proxy's own reply packet,
	// must reach the client whole.
	sshd, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sshd.Close()
	go func() {
		for {
			c, err := sshd.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "SSH-2.0-Tether_test\r\n")
			c.Close()
		}
	}()
	for i := 0; i < 20; i++ {
		c, err := connectVia(ctx, d, &url.URL{Scheme: "http", Host: addr}, sshd.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		banner, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if banner != "SSH-2.0-Tether_test\r\n" {
			t.Fatalf("the banner through the proxy: %q, %v", banner, err)
		}
	}

	if _, err := dialRoot(ctx, d, "direct.tether.invalid:3023"); err == nil || errors.As(err, &perr) {
		t.Fatalf("NO_PROXY: want a direct dial that fails to resolve, got %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := dialRoot(ctx, d, ln.Addr().String())
	if err != nil {
		t.Fatalf("loopback: %v", err)
	}
	c.Close()
	if strings.Count(asked.String(), "CONNECT") != 22 {
		t.Fatalf("NO_PROXY or loopback went through the proxy: it was asked %q", asked.String())
	}
}
