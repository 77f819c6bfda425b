package tunnel

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"testing"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/state"
)

// The tunnel's root and agent certificates are kept between connections, and issued again
// as soon as the TLS CA's signing certificate changes (a rotation's update_clients, or a
// rollback), not only at half their lifetime.
func TestTunnelCertificatesFollowTheTLSCA(t *testing.T) {
	t.Parallel()
	st, err := state.OpenEmbedded(state.EmbeddedConfig{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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
	t.Cleanup(eng.Close)
	svc, err := auth.New(context.Background(), auth.Config{ClusterName: c.Name, CA: c, Store: st, Engine: eng, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r := &Root{cfg: RootConfig{Auth: svc, ListenAddr: "127.0.0.1:3080"}, public: "127.0.0.1:3080"}
	l := &Leaf{cfg: LeafConfig{Auth: svc}}
	for _, tc := range []struct {
		name string
		get  func() (*tls.Certificate, error)
	}{{"root", r.certificate}, {"agent", l.certificate}} {
		t.Run(tc.name, func(t *testing.T) {
			get := func() *tls.Certificate {
				t.Helper()
				cert, err := tc.get()
				if err != nil {
					t.Fatal(err)
				}
				return cert
			}
			first := get()
			if get() != first {
				t.Fatal("re-issued without a reason")
			}
			if !c.TLS.IssuedBySigning(first.Leaf) {
				t.Fatal("not issued by the signing CA")
			}
		})
	}
	for _, p := range []ca.RotationPhase{ca.Init, ca.UpdateClients} {
		if err := c.TLS.Rotate(p); err != nil {
			t.Fatal(err)
		}
	}
	for name, get := range map[string]func() (*tls.Certificate, error){"root": r.certificate, "agent": l.certificate} {
		cert, err := get()
		if err != nil || !c.TLS.IssuedBySigning(cert.Leaf) {
			t.Fatalf("%s certificate after update_clients: %v, issued by the new signing CA %v", name, err, err == nil && c.TLS.IssuedBySigning(cert.Leaf))
		}
	}
}
