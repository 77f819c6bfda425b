package web

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/state"
)

// TestStatusRoute: the status route is admin-only like the rest of the admin API, and it
// names the TLS CA file (found by content under the CA directory) that signs the web
// API's certificate, with its PEM and Teleport-style pin.
func TestStatusRoute(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := state.OpenEmbedded(state.EmbeddedConfig{Dir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	caDir := filepath.Join(t.TempDir(), "ca")
	c, _, err := ca.LoadOrCreateCluster(caDir, "root.example.com", "")
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Auth: a, PublicAddr: l.Addr().String(), TunnelPublicAddr: l.Addr().String(), Logger: quiet})
	s.HandleStatus(StatusInfo{CADir: caDir})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done })
	f := &fixture{auth: a, addr: l.Addr().String()}
	url := "https://" + f.addr + StatusPath

	for _, tc := range []struct {
		name   string
		client *http.Client
		want   int
	}{
		{"no_client_certificate", f.client(nil), http.StatusUnauthorized},
		{"not_an_admin", f.client(clientCert(t, c, false)), http.StatusForbidden},
		{"admin", f.client(clientCert(t, c, true)), http.StatusOK},
	} {
		resp, err := tc.client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		var out StatusResponse
		_ = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("%s: HTTP %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
		if tc.want != http.StatusOK {
			if out.ClusterName != "" || out.TLSCAPEM != "" {
				t.Fatalf("%s: the refusal carries status: %+v", tc.name, out)
			}
			continue
		}
		if out.ClusterName != "root.example.com" || out.Storage != "embedded" || len(out.CAs) != 4 ||
			len(out.TLSCAFiles) != 1 || out.TLSCAFiles[0] != filepath.Join(caDir, "tls", "key-1.crt") || !strings.Contains(out.TLSCAPEM, "BEGIN CERTIFICATE") {
			t.Fatalf("status: %+v", out)
		}
		tlsCA := out.CAs[2]
		if tlsCA.Type != "tls" || tlsCA.Phase != "standby" || tlsCA.Fingerprints[0] != auth.TLSCAPin(c.TLS.CACerts()[0].RawSubjectPublicKeyInfo) {
			t.Fatalf("TLS CA status %+v", tlsCA)
		}
	}

	// During a rotation the phase shows, both keys are listed (signing first) and both
	// CA files are named: a leaf must pin both.
	if err := c.TLS.Rotate(ca.Init); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(caDir); err != nil {
		t.Fatal(err)
	}
	resp, err := f.client(clientCert(t, c, true)).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	var out StatusResponse
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	tlsCA := out.CAs[2]
	certs := c.TLS.CACerts()
	if tlsCA.Phase != "init" || len(tlsCA.Fingerprints) != 2 || tlsCA.Fingerprints[0] != auth.TLSCAPin(certs[0].RawSubjectPublicKeyInfo) ||
		len(out.TLSCAFiles) != 2 || strings.Count(out.TLSCAPEM, "BEGIN CERTIFICATE") != 2 {
		t.Fatalf("status during a rotation: %+v files %v", tlsCA, out.TLSCAFiles)
	}
	if out.CAs[0].Phase != "standby" || len(out.CAs[0].Fingerprints) != 1 {
		t.Fatalf("user CA during the TLS CA's rotation: %+v", out.CAs[0])
	}
}
