package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/trust"
	"github.com/tetherproject/tether/resource"
)

// TestARootAnsweringWithTheLeafsOpenSSHKeyIsRefused: the leaf's side of the key
// uniqueness rule covers its openssh CA. A root (or whoever answers at its address)
// presenting the leaf's openssh CA key as its own user or host CA is refused and nothing
// is stored: held as the root's user CA, the leaf would take certificates signed with
// its node key for logins (only the key's owner can sign, but a key belongs to one
// cluster and CA type, and the bundle would refuse the duplicate and freeze).
func TestARootAnsweringWithTheLeafsOpenSSHKeyIsRefused(t *testing.T) {
	ctx := context.Background()
	leaf := newService(t, "leaf.example.com")
	leafOpenSSH, err := leaf.CA().OpenSSH.Resource(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{resource.CATypeUser, resource.CATypeHost} {
		t.Run("as_the_roots_"+typ+"_CA", func(t *testing.T) {
			root, err := ca.NewCluster("root.example.com", "")
			if err != nil {
				t.Fatal(err)
			}
			var answer []trust.CA
			for _, a := range []*ca.Authority{root.Host, root.User, root.TLS} {
				r, err := a.Resource(false)
				if err != nil {
					t.Fatal(err)
				}
				if r.Spec.Type == typ {
					r.Spec.ActiveKeys.SSH = leafOpenSSH.Spec.ActiveKeys.SSH
				}
				answer = append(answer, trust.FromResource(r))
			}
			body, _ := json.Marshal(trust.ValidateResponse{CAs: answer})
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }))
			defer srv.Close()
			leaf.cfg.Trust = trust.Client{Insecure: true, Timeout: 5 * time.Second}
			addr := strings.TrimPrefix(srv.URL, "https://")
			before := snapshot(t, leaf)
			tc := &resource.TrustedCluster{Kind: resource.KindTrustedCluster, Version: "v2", Metadata: resource.Metadata{Name: "root.example.com"},
				Spec: resource.TrustedClusterSpec{Enabled: true, Token: "0123456789abcdef0123456789abcdef", TunnelAddr: addr, WebProxyAddr: addr}}
			_, err = leaf.Create(ctx, []resource.Resource{tc}, false)
			if err == nil || !strings.Contains(err.Error(), "belongs to one cluster and CA type") {
				t.Fatalf("the join = %v, want the reused openssh key refused", err)
			}
			sameSnapshot(t, before, snapshot(t, leaf))
		})
	}
}
