package tunnel_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/resource"
)

// keysOf lists the fingerprints of the copy of cluster's typ CA that c keeps.
func keysOf(t *testing.T, c *cluster, cluster, typ string) []string {
	t.Helper()
	rs, err := c.gw.Auth().Get(context.Background(), resource.KindCertAuthority, cluster, false)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		a := r.(*resource.CertAuthority)
		if a.Spec.Type != typ {
			continue
		}
		for _, set := range []resource.CAKeySet{a.Spec.ActiveKeys, a.Spec.AdditionalTrustedKeys} {
			for _, k := range set.SSH {
				pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, ssh.FingerprintSHA256(pub))
			}
		}
	}
	return out
}

// fingerprintsOf lists the fingerprints of an authority's keys, signing key first.
func fingerprintsOf(a *ca.Authority) []string {
	var out []string
	for _, k := range a.TrustedKeys() {
		out = append(out, ssh.FingerprintSHA256(k.Key))
	}
	return out
}

// A rotation of the SSH CAs the other side of a trust keeps crosses the trust over the
// tunnel, as Teleport pushes rotated CAs to its leaves: the root's user CA reaches the
// leaf at once (its revision moves), a leaf's host CA reaches the root at the next
// exchange (every proxy.tunnel_ca_exchange_interval; called here directly), each phase in turn. The
// TLS CAs authenticate the tunnel itself and do not cross it, so their rotation is still
// refused while the other side keeps a copy, naming it.
func TestRotationAcrossATrust(t *testing.T) {
	root := start(t, "root.example.com", "")
	leaf := start(t, "leaf.example.com", "root_ca_file: "+rootCAFile(t, root)+"\n")
	join(t, root, leaf)
	waitLeafTunnels(t, root, leaf.name, 1, 0)
	ctx := context.Background()

	for _, tc := range []struct {
		side  string
		c     *cluster
		other string
	}{{"leaf", leaf, "root root.example.com"}, {"root", root, "leaf leaf.example.com"}} {
		_, err := tc.c.gw.Auth().RotateCA(ctx, ca.TLSCA, ca.Init)
		if !errors.Is(err, auth.ErrBadRequest) || !strings.Contains(err.Error(), tc.other) {
			t.Errorf("%s tls CA: %v, want a refusal naming %s", tc.side, err, tc.other)
		}
	}

	userCA := root.gw.Auth().CA().User
	follows := func(phase ca.RotationPhase) {
		t.Helper()
		if _, err := root.gw.Auth().RotateCA(ctx, ca.UserCA, phase); err != nil {
			t.Fatalf("root user CA %s: %v", phase, err)
		}
		want := strings.Join(fingerprintsOf(userCA), ",")
		testenv.Eventually(t, 10*time.Second, func() error {
			if got := strings.Join(keysOf(t, leaf, root.name, resource.CATypeUser), ","); got != want {
				return fmt.Errorf("after %s the leaf keeps the root's user CA keys %s, want %s", phase, got, want)
			}
			return nil
		})
	}
	for _, phase := range []ca.RotationPhase{ca.Init, ca.UpdateClients, ca.UpdateServers, ca.Standby} {
		follows(phase)
	}
	if got := keysOf(t, leaf, root.name, resource.CATypeUser); len(got) != 1 {
		t.Fatalf("after standby the leaf keeps %v, want the new key alone", got)
	}

	hostCA := leaf.gw.Auth().CA().Host
	if _, err := leaf.gw.Auth().RotateCA(ctx, ca.HostCA, ca.Init); err != nil {
		t.Fatalf("leaf host CA init: %v", err)
	}
	// (The root's own loop may have exchanged already; either way the copy must follow.)
	if _, err := root.gw.Tunnel().ExchangeCAs(ctx, leaf.name); err != nil {
		t.Fatalf("exchange after the leaf's host CA init: %v", err)
	}
	if got, want := strings.Join(keysOf(t, root, leaf.name, resource.CATypeHost), ","), strings.Join(fingerprintsOf(hostCA), ","); got != want || len(fingerprintsOf(hostCA)) != 2 {
		t.Fatalf("the root keeps the leaf's host CA keys %s, want %s (both keys)", got, want)
	}
	if n, err := root.gw.Tunnel().ExchangeCAs(ctx, leaf.name); err != nil || n != 0 {
		t.Fatalf("an exchange with nothing new: %d, %v", n, err)
	}
}
