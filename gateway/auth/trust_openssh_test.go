package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/trust"
	"github.com/tetherproject/tether/resource"
)

// TestTrustHandshakeNeverCarriesTheOpenSSHCA is attacker test (c) of the openssh CA: a
// real handshake, leaf → HTTPS → root, recorded on the wire. Neither the leaf's request
// nor the root's answer holds an openssh CA or any openssh CA key of either side; neither
// cluster stores one for the other; and a root answering with an openssh CA is refused.
// The openssh CA is what nodes trust: another cluster holding it could only ever matter
// if it could sign with it, but it must not even learn which key the nodes trust.
func TestTrustHandshakeNeverCarriesTheOpenSSHCA(t *testing.T) {
	ctx := context.Background()
	root := newService(t, "root.example.com")
	leaf := newService(t, "leaf.example.com")
	var wire bytes.Buffer
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		wire.Write(body)
		req, hostCA, err := trust.DecodeValidateRequest(bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := root.ValidateLeaf(r.Context(), req.Token, hostCA, req.TLSCA(), r.RemoteAddr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out, _ := json.Marshal(resp)
		wire.Write(out)
		_, _ = w.Write(out)
	}))
	defer srv.Close()
	leaf.cfg.Trust = trust.Client{Insecure: true, Timeout: 5 * time.Second}
	addr := strings.TrimPrefix(srv.URL, "https://")
	tc := &resource.TrustedCluster{Kind: resource.KindTrustedCluster, Version: "v2", Metadata: resource.Metadata{Name: "root.example.com"},
		Spec: resource.TrustedClusterSpec{Enabled: true, Token: trustToken(t, root, TokenOptions{}), TunnelAddr: addr, WebProxyAddr: addr}}
	if _, err := leaf.Create(ctx, []resource.Resource{tc}, false); err != nil {
		t.Fatalf("the join: %v", err)
	}

	openSSHKeys := map[string]string{}
	for _, s := range []*Service{root, leaf} {
		for _, k := range s.CA().OpenSSH.TrustedKeys() {
			openSSHKeys[ca.AuthorizedKey(k.Key)] = k.Cluster
		}
	}
	t.Run("the_wire_holds_no_openssh_CA", func(t *testing.T) {
		if wire.Len() == 0 {
			t.Fatal("nothing recorded")
		}
		if strings.Contains(wire.String(), `"openssh"`) {
			t.Errorf("the handshake names an openssh CA:\n%s", wire.String())
		}
		for k, cluster := range openSSHKeys {
			// JSON escapes nothing in an authorized_keys line but "+" stays "+": search the text.
			if strings.Contains(wire.String(), strings.Fields(k)[1]) {
				t.Errorf("the openssh CA key of %s went over the wire", cluster)
			}
		}
	})
	t.Run("neither_side_stores_the_others_openssh_CA", func(t *testing.T) {
		for _, side := range []struct {
			s     *Service
			other string
		}{{root, "leaf.example.com"}, {leaf, "root.example.com"}} {
			rs, err := side.s.Get(ctx, resource.KindCertAuthority, side.other, false)
			if err != nil || len(rs) == 0 {
				t.Fatalf("%s holds no CA of %s: %v", side.s.cfg.ClusterName, side.other, err)
			}
			for _, r := range rs {
				c := r.(*resource.CertAuthority)
				if c.Spec.Type == resource.CATypeOpenSSH {
					t.Errorf("%s stores the openssh CA of %s", side.s.cfg.ClusterName, side.other)
				}
				for _, set := range []resource.CAKeySet{c.Spec.ActiveKeys, c.Spec.AdditionalTrustedKeys} {
					for _, k := range set.SSH {
						if owner, bad := openSSHKeys[strings.TrimSpace(k.PublicKey)]; bad {
							t.Errorf("%s stores the openssh CA key of %s as the %s CA of %s", side.s.cfg.ClusterName, owner, c.Spec.Type, side.other)
						}
					}
				}
			}
		}
	})
	t.Run("a_root_answering_with_an_openssh_CA_is_refused", func(t *testing.T) {
		evil, err := ca.NewCluster("evil.example.com", "")
		if err != nil {
			t.Fatal(err)
		}
		var answer []trust.CA
		for _, a := range []*ca.Authority{evil.Host, evil.User, evil.OpenSSH} {
			r, _ := a.Resource(false)
			answer = append(answer, trust.FromResource(r))
		}
		body, _ := json.Marshal(trust.ValidateResponse{CAs: answer})
		if _, err := trust.DecodeValidateResponse(bytes.NewReader(body), "evil.example.com"); err == nil || !strings.Contains(err.Error(), `type "openssh"`) {
			t.Fatalf("DecodeValidateResponse = %v, want the openssh CA refused", err)
		}
	})
}
