package auth

import (
	"context"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
)

// RotateCA moves, saves and rebuilds; it refuses what it cannot do safely: no CA
// directory, an unknown type, a phase out of order, and starting to rotate a CA a joined
// leaf keeps a copy of (the root's user and TLS CAs).
func TestRotateCA(t *testing.T) {
	ctx := context.Background()
	root := newService(t, "root.example.com")
	if _, err := root.RotateCA(ctx, ca.HostCA, ca.Init); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("without a CA directory: %v", err)
	}
	root.cfg.CADir = t.TempDir()
	if _, err := root.RotateCA(ctx, "ssh", ca.Init); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("unknown type: %v", err)
	}
	if _, err := root.RotateCA(ctx, ca.HostCA, ca.UpdateServers); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "cannot go from standby to update_servers") {
		t.Fatalf("skipping phases: %v", err)
	}
	rev := root.Revision()
	old := ssh.FingerprintSHA256(root.CA().Host.SigningKey())
	st, err := root.RotateCA(ctx, ca.HostCA, ca.Init)
	if err != nil || st.Phase != "init" || len(st.Fingerprints) != 2 || st.Fingerprints[0] != old {
		t.Fatalf("init: %+v %v", st, err)
	}
	if root.Revision() == rev {
		t.Fatal("the bundle was not rebuilt")
	}
	loaded, err := ca.LoadAuthority(root.cfg.CADir + "/host")
	if err != nil || loaded.Phase() != ca.Init {
		t.Fatalf("not saved: %v", err)
	}

	// A joined leaf keeps the root's user, host and TLS CAs: the TLS CA authenticates the
	// tunnel, which carries the others' rotations but not its own, so a new rotation of it
	// is refused, naming the leaf; the user CA may rotate (its keys reach the leaf over the
	// tunnel: ReplacePeerCAs); the host CA's rotation under way may go on.
	if _, err := root.ValidateTrustedCluster(ctx, trustToken(t, root, TokenOptions{}), hostCAOf(t, "leaf.example.com"), "leaf"); err != nil {
		t.Fatal(err)
	}
	tlsRev := root.Revision()
	if _, err := root.RotateCA(ctx, ca.TLSCA, ca.Init); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "leaf leaf.example.com") {
		t.Fatalf("tls CA with a leaf: %v", err)
	}
	if root.CA().TLS.Phase() == ca.Init || root.Revision() != tlsRev {
		t.Fatal("a refused rotation moved the tls CA")
	}
	if _, err := root.RotateCA(ctx, ca.UserCA, ca.Init); err != nil {
		t.Fatalf("user CA with a leaf: %v", err)
	}
	for _, p := range []ca.RotationPhase{ca.UpdateClients, ca.UpdateServers, ca.Standby} {
		if _, err := root.RotateCA(ctx, ca.HostCA, p); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if got := ssh.FingerprintSHA256(root.CA().Host.SigningKey()); got == old || len(root.CA().Host.TrustedKeys()) != 1 {
		t.Fatalf("after the rotation the host CA signs with %s (old %s)", got, old)
	}
}
