package state_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/state"
	"github.com/tetherproject/tether/state/redistest"
)

func tlsClientConfig(t *testing.T, caFile, certFile, keyFile, serverName string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA in", caFile)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: serverName}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

// TestRedisTLS runs the store against a real redis-server's tls-port that
// requires client certificates: with the right CA and a client certificate it
// works; a wrong CA, a wrong server name, no client certificate or the plain
// protocol fail with an error that says what to check, and nothing is written.
func TestRedisTLS(t *testing.T) {
	t.Parallel()
	pki, err := redistest.WritePKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t, redistest.Config{TLS: &redistest.TLS{
		CertFile: pki.ServerCert, KeyFile: pki.ServerKey, CAFile: pki.CAFile, RequireClientCert: true,
	}})

	open := func(t *testing.T, addr string, tc *tls.Config) *state.Redis {
		t.Helper()
		r, err := state.NewRedis(state.RedisConfig{Addr: addr, Namespace: "tls-test", TLS: tc, DialTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}

	t.Run("right_ca_and_client_certificate_work", func(t *testing.T) {
		r := open(t, srv.TLSAddr(), tlsClientConfig(t, pki.CAFile, pki.ClientCert, pki.ClientKey, redistest.ServerName))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := r.Put(ctx, state.Item{Key: "resources/role/a", Value: []byte("x")}); err != nil {
			t.Fatalf("Put over TLS: %v", err)
		}
		it, err := r.Get(ctx, "resources/role/a")
		if err != nil || string(it.Value) != "x" {
			t.Fatalf("Get over TLS: %v %q", err, it.Value)
		}
		// The write really reached the server: read it on the plain port.
		if n, err := rawClient(t, srv.Addr()).Exists(ctx, "tether/{tls-test}/item/resources/role/a").Result(); err != nil || n != 1 {
			t.Fatalf("item on the server: %d, %v", n, err)
		}
	})

	for _, tc := range []struct {
		name string
		addr func() string
		cfg  func(t *testing.T) *tls.Config
		want string
	}{
		{"wrong_ca_is_refused", srv.TLSAddr, func(t *testing.T) *tls.Config {
			return tlsClientConfig(t, pki.OtherCAFile, pki.ClientCert, pki.ClientKey, redistest.ServerName)
		}, "not signed by a trusted CA"},
		{"wrong_server_name_is_refused", srv.TLSAddr, func(t *testing.T) *tls.Config {
			return tlsClientConfig(t, pki.CAFile, pki.ClientCert, pki.ClientKey, "evil.example.com")
		}, "not valid for the name dialed"},
		{"missing_client_certificate_is_refused", srv.TLSAddr, func(t *testing.T) *tls.Config {
			return tlsClientConfig(t, pki.CAFile, "", "", redistest.ServerName)
		}, "client certificate"},
		{"tls_to_the_plain_port_is_refused", srv.Addr, func(t *testing.T) *tls.Config {
			return tlsClientConfig(t, pki.CAFile, pki.ClientCert, pki.ClientKey, redistest.ServerName)
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := open(t, tc.addr(), tc.cfg(t))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := r.Put(ctx, state.Item{Key: "resources/role/" + tc.name, Value: []byte("x")})
			if err == nil {
				t.Fatal("Put succeeded")
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, state.ErrUnavailable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q: want ErrUnavailable saying %q", err, tc.want)
			}
			if n, _ := rawClient(t, srv.Addr()).Exists(ctx, "tether/{tls-test}/item/resources/role/"+tc.name).Result(); n != 0 {
				t.Fatal("the refused write reached the server")
			}
		})
	}
}
