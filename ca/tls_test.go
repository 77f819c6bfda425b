package ca_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/ca"
)

func TestTLSCACertificate(t *testing.T) {
	t.Parallel()
	for _, alg := range []ca.Algorithm{ca.Ed25519, ca.ECDSAP256} {
		t.Run(string(alg), func(t *testing.T) {
			a, err := ca.NewAuthority("root.example.com", ca.TLSCA, alg)
			if err != nil {
				t.Fatal(err)
			}
			c := a.CACerts()[0]
			if c.Subject.CommonName != "root.example.com" || !slices.Equal(c.Subject.Organization, []string{"root.example.com"}) {
				t.Errorf("subject %v", c.Subject)
			}
			if len(c.URIs) != 1 || c.URIs[0].String() != "tether://cluster/root.example.com" {
				t.Errorf("URIs %v", c.URIs)
			}
			if !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero || c.KeyUsage&x509.KeyUsageCertSign == 0 {
				t.Errorf("not a path-length-0 CA: IsCA %v MaxPathLen %d", c.IsCA, c.MaxPathLen)
			}
			if err := c.CheckSignatureFrom(c); err != nil {
				t.Errorf("not self-signed: %v", err)
			}
			if a.TrustedKeys() != nil || a.SigningKey() != nil {
				t.Error("a TLS CA has SSH keys")
			}
		})
	}
}

func TestIssueTLS(t *testing.T) {
	t.Parallel()
	a, err := ca.NewAuthority("root.example.com", ca.TLSCA, "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a.Clock = fixedClock(now)
	priv, _ := newKey(t, "")
	for _, tc := range []struct {
		name       string
		req        ca.TLSCertRequest
		ttl        time.Duration
		serverAuth bool
		clientAuth bool
	}{
		{"default_ttl_and_both_usages", ca.TLSCertRequest{}, ca.DefaultTLSTTL, true, true},
		{"ttl_is_capped", ca.TLSCertRequest{TTL: 30 * 24 * time.Hour}, ca.MaxTLSTTL, true, true},
		{"server_only", ca.TLSCertRequest{Server: true, TTL: time.Minute}, time.Minute, true, false},
		{"client_only", ca.TLSCertRequest{Client: true}, ca.DefaultTLSTTL, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			req.PublicKey, req.CommonName, req.DNSNames = priv.Public(), "proxy-1", []string{"proxy.root.example.com"}
			c, err := a.IssueTLS(req)
			if err != nil {
				t.Fatal(err)
			}
			if !c.NotBefore.Equal(now.Add(-time.Minute).Truncate(time.Second)) || !c.NotAfter.Equal(now.Add(tc.ttl).Truncate(time.Second)) {
				t.Errorf("valid %v..%v, want now-1m..now+%v", c.NotBefore, c.NotAfter, tc.ttl)
			}
			if c.IsCA || c.Subject.CommonName != "proxy-1" || !slices.Equal(c.Subject.Organization, []string{"root.example.com"}) || !slices.Equal(c.DNSNames, req.DNSNames) {
				t.Errorf("leaf IsCA %v subject %v SANs %v", c.IsCA, c.Subject, c.DNSNames)
			}
			if got := slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth); got != tc.serverAuth {
				t.Errorf("server auth %v, want %v", got, tc.serverAuth)
			}
			if got := slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth); got != tc.clientAuth {
				t.Errorf("client auth %v, want %v", got, tc.clientAuth)
			}
		})
	}
	t.Run("ssh_ca_does_not_sign_x509", func(t *testing.T) {
		u := newAuthority(t, "root.example.com", ca.UserCA, "")
		if _, err := u.IssueTLS(ca.TLSCertRequest{PublicKey: priv.Public()}); err == nil || !strings.Contains(err.Error(), "use the tls CA") {
			t.Errorf("error = %v", err)
		}
	})
}

// TestTunnelMutualTLS runs real TLS 1.3 handshakes on 127.0.0.1 between a root proxy
// (server certificate from the root's X.509 CA) and a leaf agent (client certificate
// from the leaf's), each trusting the other cluster's CA.
func TestTunnelMutualTLS(t *testing.T) {
	t.Parallel()
	root, err := ca.NewCluster("root.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.NewCluster("leaf.example.com", ca.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := ca.NewCluster("evil.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	keyPair := func(a *ca.Authority, req ca.TLSCertRequest) tls.Certificate {
		priv, _ := newKey(t, "")
		req.PublicKey = priv.Public()
		c, err := a.IssueTLS(req)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: priv, Leaf: c}
	}
	serverCert := keyPair(root.TLS, ca.TLSCertRequest{CommonName: "proxy", IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})

	for _, tc := range []struct {
		name       string
		clientCert tls.Certificate
		serverErr  string // empty: the handshake succeeds
	}{
		{"leaf_client_certificate_is_accepted", keyPair(leaf.TLS, ca.TLSCertRequest{CommonName: "agent", Client: true}), ""},
		{"client_certificate_from_an_untrusted_cluster_is_refused", keyPair(stranger.TLS, ca.TLSCertRequest{CommonName: "agent", Client: true}), "unknown authority"},
		{"server_only_certificate_used_as_client_is_refused", keyPair(leaf.TLS, ca.TLSCertRequest{CommonName: "agent", Server: true}), "incompatible key usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			serverDone := make(chan error, 1)
			var peerOrg []string
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					serverDone <- err
					return
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				s := tls.Server(conn, &tls.Config{
					Certificates: []tls.Certificate{serverCert},
					ClientAuth:   tls.RequireAndVerifyClientCert,
					ClientCAs:    leaf.TLS.CertPool(),
					MinVersion:   tls.VersionTLS13,
					NextProtos:   []string{"tether-tunnel/1"},
				})
				if err := s.Handshake(); err != nil {
					serverDone <- err
					return
				}
				peerOrg = s.ConnectionState().PeerCertificates[0].Subject.Organization
				_, err = s.Write([]byte("ok"))
				serverDone <- err
			}()
			conn, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			c := tls.Client(conn, &tls.Config{
				// Always present the certificate: Go's client would otherwise hold
				// back one whose issuer the server did not list, and the server's
				// check would go untested.
				GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tc.clientCert, nil },
				RootCAs:              root.TLS.CertPool(),
				ServerName:           "127.0.0.1",
				MinVersion:           tls.VersionTLS13,
				NextProtos:           []string{"tether-tunnel/1"},
			})
			clientErr := c.Handshake()
			var reply []byte
			if clientErr == nil {
				reply, clientErr = io.ReadAll(c)
			}
			serverErr := <-serverDone
			if tc.serverErr == "" {
				if serverErr != nil || clientErr != nil || string(reply) != "ok" {
					t.Fatalf("server %v, client %v, reply %q", serverErr, clientErr, reply)
				}
				if !slices.Equal(peerOrg, []string{"leaf.example.com"}) {
					t.Errorf("server sees client organization %v", peerOrg)
				}
				return
			}
			if serverErr == nil || !strings.Contains(serverErr.Error(), tc.serverErr) {
				t.Fatalf("server error %v, want one containing %q", serverErr, tc.serverErr)
			}
			if clientErr == nil {
				t.Error("the client did not notice the refusal")
			}
		})
	}
}
