package proxy

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
)

// The proxy's host certificate has a finite lifetime, is re-issued when half of it has
// passed, and follows the host CA's signing key through a rotation (and a rollback).
func TestProxyHostCertificateFollowsTheHostCA(t *testing.T) {
	t.Parallel()
	cluster, err := ca.NewCluster("root.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	clock := func() time.Time { return now }
	cluster.Host.Clock = clock
	s := &Server{cfg: Config{CA: cluster, Now: clock}, log: slog.New(slog.DiscardHandler), principals: []string{"root.example.com"}}
	cert := func() *ssh.Certificate {
		t.Helper()
		h, err := s.hostSigner()
		if err != nil {
			t.Fatal(err)
		}
		return h.PublicKey().(*ssh.Certificate)
	}
	signedBy := func(c *ssh.Certificate) string { return ssh.FingerprintSHA256(c.SignatureKey) }
	first := cert()
	if first.ValidBefore == ssh.CertTimeInfinity || time.Unix(int64(first.ValidBefore), 0).After(now.Add(HostCertTTL+time.Minute)) {
		t.Fatalf("host certificate valid until %d, want at most %v from now", first.ValidBefore, HostCertTTL)
	}
	if c := cert(); !bytes.Equal(c.Marshal(), first.Marshal()) {
		t.Fatal("re-issued without a reason")
	}
	old := ssh.FingerprintSHA256(cluster.Host.SigningKey())
	if err := cluster.Host.Rotate(ca.Init); err != nil {
		t.Fatal(err)
	}
	if c := cert(); !bytes.Equal(c.Marshal(), first.Marshal()) {
		t.Fatal("re-issued in init, where the signing key has not changed")
	}
	if err := cluster.Host.Rotate(ca.UpdateClients); err != nil {
		t.Fatal(err)
	}
	rotated := cert()
	if signedBy(rotated) == old || signedBy(rotated) != ssh.FingerprintSHA256(cluster.Host.SigningKey()) {
		t.Fatalf("after update_clients the certificate is signed by %s, want the new signing key", signedBy(rotated))
	}
	if err := cluster.Host.Rotate(ca.Rollback); err != nil {
		t.Fatal(err)
	}
	if c := cert(); signedBy(c) != old {
		t.Fatalf("after a rollback the certificate is signed by %s, want the old key %s", signedBy(c), old)
	}
	now = now.Add(HostCertTTL/2 + 2*time.Minute)
	renewed := cert()
	if renewed.ValidBefore <= first.ValidBefore || signedBy(renewed) != old {
		t.Fatalf("not renewed at half its lifetime: valid before %d (first %d)", renewed.ValidBefore, first.ValidBefore)
	}
}
