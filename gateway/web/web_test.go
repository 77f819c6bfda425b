package web

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/identity"
	"github.com/tetherproject/tether/gateway/trust"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/state"
)

type fixture struct {
	auth *auth.Service
	addr string
}

func start(t *testing.T, name string, opts ...func(*auth.Config, *Config)) *fixture {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := state.OpenEmbedded(state.EmbeddedConfig{Dir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := ca.NewCluster(name, "")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.New(policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	acfg := auth.Config{ClusterName: name, CA: c, Store: st, Engine: eng, Logger: quiet}
	wcfg := Config{Logger: quiet}
	for _, o := range opts {
		o(&acfg, &wcfg)
	}
	a, err := auth.New(context.Background(), acfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wcfg.Auth, wcfg.PublicAddr, wcfg.TunnelPublicAddr = a, l.Addr().String(), l.Addr().String()
	s := New(wcfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done })
	return &fixture{auth: a, addr: l.Addr().String()}
}

// client verifies the server with the cluster's TLS CA and presents cert, if any.
func (f *fixture) client(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: f.auth.CA().TLS.CertPool(), ServerName: "127.0.0.1"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func clientCert(t *testing.T, c *ca.Cluster, admin bool) *tls.Certificate {
	t.Helper()
	if admin {
		data, err := identity.Issue(c, "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		id, err := identity.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		return &id.Cert
	}
	key, err := ca.GenerateKey(ca.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := c.TLS.IssueTLS(ca.TLSCertRequest{PublicKey: key.Public(), CommonName: "proxy-1", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
}

func TestAdminAPIRequiresTheAdminIdentity(t *testing.T) {
	f := start(t, "root.example.com")
	other, _ := ca.NewCluster("other.example.com", "")
	url := "https://" + f.addr + "/v1/admin/tokens"

	resp, err := f.client(nil).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no client certificate: HTTP %d", resp.StatusCode)
	}
	resp, err = f.client(clientCert(t, f.auth.CA(), false)).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("non-admin certificate of this cluster: HTTP %d", resp.StatusCode)
	}
	// An admin identity of another cluster is not offered (its issuer is not one the
	// server asks for) or fails the handshake: either way no admin access.
	if resp, err := f.client(clientCert(t, other, true)).Get(url); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("admin of another cluster: HTTP %d", resp.StatusCode)
		}
	}
	resp, err = f.client(clientCert(t, f.auth.CA(), true)).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin: HTTP %d", resp.StatusCode)
	}
}

func TestServerCertificateIsFromTheClusterTLSCA(t *testing.T) {
	f := start(t, "root.example.com")
	conn, err := tls.Dial("tcp", f.addr, &tls.Config{RootCAs: f.auth.CA().TLS.CertPool(), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	leaf := conn.ConnectionState().PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: f.auth.CA().TLS.CertPool(), DNSName: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
}

func TestValidateEndpointBadInput(t *testing.T) {
	root := start(t, "root.example.com")
	leafCA, _ := ca.NewCluster("leaf.example.com", "")
	host, _ := leafCA.Host.Resource(false)
	user, _ := leafCA.User.Resource(false)
	ctx := context.Background()
	token, _, err := root.auth.AddToken(ctx, auth.TokenOptions{Roles: []string{"trusted_cluster"}, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	enc := func(v any) []byte { b, _ := json.Marshal(v); return b }
	valid := enc(trust.ValidateRequest{Token: token, CAs: []trust.CA{trust.FromResource(host)}})
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		want   string
	}{
		{"wrong_token", enc(trust.ValidateRequest{Token: "nope-nope", CAs: []trust.CA{trust.FromResource(host)}}), 403, trust.RejectedTokenMessage},
		{"malformed_token", enc(trust.ValidateRequest{Token: "a\x00b", CAs: []trust.CA{trust.FromResource(host)}}), 400, "printable ASCII"},
		{"user_ca_instead_of_host", enc(trust.ValidateRequest{Token: token, CAs: []trust.CA{trust.FromResource(user)}}), 400, "host CA"},
		{"truncated", valid[:len(valid)-5], 400, "truncated"},
		{"oversize", append([]byte(`{"token":"`), bytes.Repeat([]byte("a"), trust.MaxBodySize+1)...), 413, "larger than"},
		{"unknown_field", []byte(`{"token":"x","labels":{"env":"prod"}}`), 400, "unknown field"},
		{"valid", valid, 200, "certificate_authorities"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := root.client(nil).Post("https://"+root.addr+trust.ValidatePath, "application/json", bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
				t.Fatalf("HTTP %d %s; want %d containing %q", resp.StatusCode, body, tc.status, tc.want)
			}
		})
	}
}

func TestPing(t *testing.T) {
	f := start(t, "root.example.com")
	resp, err := f.client(nil).Get("https://" + f.addr + "/webapi/ping")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	proxy := raw["proxy"].(map[string]any)
	sshPart := proxy["ssh"].(map[string]any)
	if raw["cluster_name"] != "root.example.com" || sshPart["public_addr"] != f.addr || sshPart["ssh_tunnel_public_addr"] != f.addr || proxy["tls_routing_enabled"] != false {
		t.Fatalf("ping: %v", raw)
	}
}
