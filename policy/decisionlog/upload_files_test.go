package decisionlog

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUploadTokenFileAndCAFile: the bearer token comes from a file and the
// service's TLS certificate is checked against the CA file, not the system
// roots; a service whose certificate the CA file does not vouch for gets
// nothing.
func TestUploadTokenFileAndCAFile(t *testing.T) {
	t.Parallel()
	c := &collector{t: t, status: alwaysOK}
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(c.serve))
	c.srv.StartTLS()
	t.Cleanup(c.srv.Close)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("delivered_with_the_token_from_the_file", func(t *testing.T) {
		cfg := uploadConfig(t, c)
		cfg.Upload.Token = ""
		cfg.Upload.TokenFile = tokenFile
		cfg.Upload.CAFile = caFile
		l, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			l.Log(testEvent(i))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := l.Close(ctx); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if got := len(c.received()); got != 20 {
			t.Fatalf("service received %d events, want 20", got)
		}
	})

	t.Run("a_certificate_the_ca_file_does_not_vouch_for_is_refused", func(t *testing.T) {
		other := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t.Errorf("the untrusted service received a request")
		}))
		// httptest's servers share one certificate: give this one its own.
		other.TLS = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
		other.StartTLS()
		defer other.Close()
		cfg := uploadConfig(t, c)
		cfg.Upload.URL = other.URL + "/v1"
		cfg.Upload.Token = ""
		cfg.Upload.TokenFile = tokenFile
		cfg.Upload.CAFile = caFile
		cfg, err := cfg.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		err = newHTTPSink(cfg).post(context.Background(), []byte("[]"))
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("upload to a service outside the CA file: %v, want a certificate error", err)
		}
	})

	t.Run("bad_files_are_refused_at_start", func(t *testing.T) {
		empty := filepath.Join(dir, "empty")
		if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			set  func(*UploadConfig)
			want string
		}{
			{"missing_token_file", func(u *UploadConfig) { u.Token, u.TokenFile = "", filepath.Join(dir, "nope") }, "upload token file"},
			{"empty_token_file", func(u *UploadConfig) { u.Token, u.TokenFile = "", empty }, "is empty"},
			{"token_and_token_file", func(u *UploadConfig) { u.TokenFile = tokenFile }, "both set"},
			{"ca_file_without_pem", func(u *UploadConfig) { u.CAFile = tokenFile }, "no PEM certificate"},
			{"cert_without_key", func(u *UploadConfig) { u.CertFile = caFile }, "go together"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cfg := uploadConfig(t, c)
				tc.set(&cfg.Upload)
				if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("New: %v, want %q", err, tc.want)
				}
			})
		}
	})
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
