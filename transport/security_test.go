package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/transport/frame"
)

// TestPinnedClusters is the verifier's attacker table: each refusal for the reason it names.
func TestPinnedClusters(t *testing.T) {
	t.Parallel()
	p := testPKI(t)
	v := PinnedClusters{Pool: func(name string) *x509.CertPool {
		switch name {
		case "leaf.example.com":
			return p.leaf.TLS.CertPool()
		case "leaf2.example.com":
			return p.leaf2.TLS.CertPool()
		}
		return nil
	}}
	leafURI := ca.ClusterURI("leaf.example.com")
	for _, tc := range []struct {
		name    string
		cert    *tls.Certificate
		now     time.Time
		wantErr string // empty: verifies as leaf.example.com
	}{
		{"leaf_certificate_from_its_own_ca_verifies", leafCert(t, p.leaf.TLS, "leaf.example.com"), time.Time{}, ""},
		{"certificate_from_another_ca_is_refused", leafCert(t, p.evil.TLS, "leaf.example.com"), time.Time{}, "unknown authority"},
		{"leaf_ca_vouching_for_another_leaf_is_refused", leafCert(t, p.leaf.TLS, "leaf2.example.com"), time.Time{}, "unknown authority"},
		{"expired_certificate_is_refused", leafCert(t, p.leaf.TLS, "leaf.example.com"), time.Now().Add(3 * time.Hour), "expired"},
		{"not_yet_valid_certificate_is_refused", leafCert(t, p.leaf.TLS, "leaf.example.com"), time.Now().Add(-time.Hour), "not yet valid"},
		{"unknown_cluster_is_refused", leafCert(t, p.leaf.TLS, "stranger.example.com"), time.Time{}, "no trusted cluster"},
		{"server_only_certificate_is_refused", issue(t, p.leaf.TLS, ca.TLSCertRequest{URIs: []*url.URL{leafURI}, Server: true}), time.Time{}, "key usage"},
		{"certificate_naming_no_cluster_is_refused", issue(t, p.leaf.TLS, ca.TLSCertRequest{CommonName: "leaf.example.com", Client: true}), time.Time{}, "names no cluster"},
		{"certificate_naming_two_clusters_is_refused", issue(t, p.leaf.TLS, ca.TLSCertRequest{URIs: []*url.URL{leafURI, ca.ClusterURI("leaf2.example.com")}, Client: true}), time.Time{}, "more than one cluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := v
			if !tc.now.IsZero() {
				v.Now = func() time.Time { return tc.now }
			}
			got, err := v.Verify([]*x509.Certificate{tc.cert.Leaf})
			if tc.wantErr == "" {
				if err != nil || got != "leaf.example.com" {
					t.Fatalf("Verify = %q, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Verify = %q, %v; want an error containing %q", got, err, tc.wantErr)
			}
		})
	}
}

// TestSSHBindingRefusesMismatchedKeys: over the fallback, a certificate chain proves only
// the key that did the SSH authentication (or host key exchange): a leaf presenting a
// valid certificate for a key it does not hold, or a root whose host key is not the one
// its chain certifies, is refused.
func TestSSHBindingRefusesMismatchedKeys(t *testing.T) {
	t.Parallel()
	p := testPKI(t)
	mismatched := func(good *tls.Certificate) *tls.Certificate {
		other := leafCert(t, p.leaf.TLS, "leaf.example.com") // a different key
		return &tls.Certificate{Certificate: good.Certificate, PrivateKey: other.PrivateKey, Leaf: good.Leaf}
	}
	t.Run("leaf_with_someone_elses_certificate", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, p, nil)
		_, err := dialSSH(context.Background(), srv.Endpoint().TCP, mismatched(leafCert(t, p.leaf.TLS, "leaf.example.com")),
			p.root.TLS.CertPool(), "127.0.0.1", "leaf.example.com", 2*time.Second)
		if err == nil || !strings.Contains(err.Error(), "certify") {
			t.Fatalf("got %v, want a refusal naming the key mismatch", err)
		}
	})
	t.Run("root_with_someone_elses_certificate", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, p, func(s *ServerConfig) { s.Certificate = mismatched(p.rootCert(t)) })
		_, err := dialSSH(context.Background(), srv.Endpoint().TCP, leafCert(t, p.leaf.TLS, "leaf.example.com"),
			p.root.TLS.CertPool(), "127.0.0.1", "leaf.example.com", 2*time.Second)
		if err == nil || !strings.Contains(err.Error(), "host key") {
			t.Fatalf("got %v, want a refusal naming the host key", err)
		}
	})
}

// TestRootRefusesBadControlStreams: over an authenticated QUIC connection, a control
// stream that stalls mid-frame, starts with anything but a hello, carries an unknown frame
// type, or an oversize one, is cut within the handshake timeout.
func TestRootRefusesBadControlStreams(t *testing.T) {
	t.Parallel()
	p := testPKI(t)
	srv := startServer(t, p, func(s *ServerConfig) { s.HandshakeTimeout = 500 * time.Millisecond })
	cert := leafCert(t, p.leaf.TLS, "leaf.example.com")
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"stall_mid_frame", []byte{byte(frame.TypeHello), 0, 40, 1}},
		{"heartbeat_before_hello", mustFrame(t, frame.TypeHeartbeat, (&frame.Heartbeat{Seq: 1}).Marshal(1))},
		{"unknown_frame_type", []byte{0x42, 0, 0}},
		{"oversize_hello", []byte{byte(frame.TypeHello), 0xff, 0xff}},
		{"silence", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer udp.Close()
			tr := &quic.Transport{Conn: udp}
			defer tr.Close()
			addr, _ := net.ResolveUDPAddr("udp", srv.Endpoint().QUIC)
			conn, err := tr.Dial(context.Background(), addr, &tls.Config{RootCAs: p.root.TLS.CertPool(), ServerName: "127.0.0.1",
				NextProtos: []string{ALPN}, Certificates: []tls.Certificate{*cert}}, quicConfig(time.Second, time.Second, 10))
			if err != nil {
				t.Fatal(err)
			}
			st, err := conn.OpenStreamSync(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if tc.send != nil {
				st.Write(tc.send)
			} else {
				st.Write(nil)
			}
			select {
			case <-conn.Context().Done():
				t.Logf("cut after %v: %v", time.Since(start), context.Cause(conn.Context()))
			case <-time.After(3 * time.Second):
				t.Fatal("the root kept a bad control stream open")
			}
			if len(srv.Tunnels()) != 0 {
				t.Fatal("a tunnel was registered")
			}
		})
	}
}

func mustFrame(t *testing.T, typ frame.Type, p []byte) []byte {
	b, err := frame.Append(nil, typ, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
