package tunnel_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/auth"
)

// Rotated keys do not reach the other side of a trust yet, so a rotation that would cut
// it is refused before it starts, on both sides, naming the other cluster: on the leaf its
// host and TLS CAs (the root keeps them), on the root its user and TLS CAs (the leaf keeps
// them). What neither keeps may rotate.
func TestRotationOfACAAnotherClusterKeepsIsRefused(t *testing.T) {
	root := start(t, "root.example.com", "")
	leaf := start(t, "leaf.example.com", "root_ca_file: "+rootCAFile(t, root)+"\n")
	join(t, root, leaf)
	ctx := context.Background()
	for _, tc := range []struct {
		side  string
		c     *cluster
		typ   ca.Type
		other string // "" = allowed
	}{
		{"leaf", leaf, ca.HostCA, "root root.example.com"},
		{"leaf", leaf, ca.TLSCA, "root root.example.com"},
		{"leaf", leaf, ca.UserCA, ""},
		{"root", root, ca.UserCA, "leaf leaf.example.com"},
		{"root", root, ca.TLSCA, "leaf leaf.example.com"},
		{"root", root, ca.HostCA, ""},
	} {
		_, err := tc.c.gw.Auth().RotateCA(ctx, tc.typ, ca.Init)
		switch {
		case tc.other == "" && err != nil:
			t.Errorf("%s %s CA: %v", tc.side, tc.typ, err)
		case tc.other != "" && (!errors.Is(err, auth.ErrBadRequest) || !strings.Contains(err.Error(), tc.other)):
			t.Errorf("%s %s CA: %v, want a refusal naming %s", tc.side, tc.typ, err, tc.other)
		}
	}
}
