package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/gateway/trust"
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
