package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/forward"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/resource"
)

// TestOpenSSHCACertificatesNeverAuthenticateAUser is the reverse of the openssh CA's
// attacker test: a certificate the openssh CA signed (what a node sees on every connection
// the enforcement point makes, with the user's roles and the node-access extension) is
// never a user's login, on every door a login certificate opens: the proxy's and the
// enforcement point's SSH entry (forward.Authenticate with the user CA keys the gateway
// gives it), a root's request over the tunnel (tunnelUser, which cluster.list / node list
// answer with), and, should Go ever let one through, the policy's CA rule (the bundle
// carries the cluster's own openssh CA with type "openssh", which certs.rego refuses as a
// signer of user certificates). A login certificate of the user CA with the same content
// passes each door, so each refusal is the CA's doing.
func TestOpenSSHCACertificatesNeverAuthenticateAUser(t *testing.T) {
	cfg := load(t, t.TempDir())
	run(t, cfg, func(g *Gateway) {
		ctx := context.Background()
		rs, err := resource.Parse([]byte("kind: role\nversion: v5\nmetadata: {name: all}\nspec:\n  allow:\n    logins: [admin]\n    node_labels: {'*': '*'}\n"+
			"---\nkind: node\nversion: v2\nmetadata:\n  name: web1\n  labels: {env: prod}\nspec:\n  addr: 127.0.0.1:3022\n"), "fixture.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.auth.Create(ctx, rs, false); err != nil {
			t.Fatal(err)
		}
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		key, _ := ssh.NewPublicKey(pub)
		issue := func(a *ca.Authority) *ssh.Certificate {
			t.Helper()
			c, err := a.IssueUser(ca.UserCertRequest{PublicKey: key, Username: "alice", Logins: []string{"admin"}, Roles: []string{"all"},
				Traits: map[string][]string{"logins": {"admin"}}, TTL: 5 * time.Minute, MaxTTL: 5 * time.Minute,
				NodeAccess: a.Type() == ca.OpenSSHCA})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		nodeCert, loginCert := issue(g.auth.CA().OpenSSH), issue(g.auth.CA().User)

		t.Run("ssh_entry_of_the_proxy_and_the_enforcement_point", func(t *testing.T) {
			keys, err := userCAKeys(g.auth)(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if k.Type != ca.UserCA {
					t.Errorf("the SSH entry trusts a %s key: %s", k.Type, k)
				}
			}
			if _, err := forward.Authenticate(ctx, loginCert, keys, time.Now()); err != nil {
				t.Fatalf("control: the login certificate is refused: %v", err)
			}
			if _, err := forward.Authenticate(ctx, nodeCert, keys, time.Now()); !errors.Is(err, ca.ErrUnknownAuthority) {
				t.Fatalf("an openssh CA certificate authenticates at the SSH entry: %v", err)
			}
		})
		t.Run("a_request_over_the_tunnel", func(t *testing.T) {
			// tunnelUser keeps the user CA keys of the cluster it is given; the own cluster's
			// name makes the openssh CA's owner that cluster, as close as it gets.
			if _, err := g.tunnelUser(ctx, cfg.ClusterName, loginCert.Marshal()); err != nil {
				t.Fatalf("control: %v", err)
			}
			if _, err := g.tunnelUser(ctx, cfg.ClusterName, nodeCert.Marshal()); err == nil {
				t.Fatal("an openssh CA certificate authenticates a tunnel request")
			}
		})
		t.Run("the_policy_refuses_the_openssh_CA_as_a_signer", func(t *testing.T) {
			decide := func(c *ssh.Certificate, signer ca.TrustedKey) policy.Decision {
				t.Helper()
				id, err := policy.CertFromSSH(c, signer)
				if err != nil {
					t.Fatal(err)
				}
				d, err := g.engine.Decide(ctx, &policy.Input{Action: policy.ActionSSHSession, Cluster: cfg.ClusterName, Now: time.Now(), Cert: id,
					Login: "admin", Node: &policy.Node{Name: "web1", Labels: map[string]string{"env": "prod"}}})
				if err != nil {
					t.Fatal(err)
				}
				if d2, err := d.Explained(ctx); err == nil {
					return d2
				}
				return d
			}
			user := g.auth.CA().User.TrustedKeys()[0]
			if d := decide(loginCert, user); !d.Allow {
				t.Fatalf("control: the login certificate is denied: %v", d.Reasons)
			}
			// As if a Go check let the node certificate through with its true signer.
			openssh := g.auth.CA().OpenSSH.TrustedKeys()[0]
			d := decide(nodeCert, openssh)
			if d.Allow {
				t.Fatal("the policy allows a session to a certificate of the openssh CA")
			}
			if !strings.Contains(strings.Join(d.Reasons, "\n"), "signed by the openssh certificate authority") {
				t.Fatalf("denied, but not for the openssh CA: %q", d.Reasons)
			}
			id, err := policy.CertFromSSH(nodeCert, openssh)
			if err != nil {
				t.Fatal(err)
			}
			// The list is refused, and says why (or, were it not refused, would be empty).
			listed, err := g.ownNodes(ctx, id, "test")
			var refused *nodeListRefused
			if err != nil && (!errors.As(err, &refused) || !strings.Contains(err.Error(), "openssh certificate authority")) {
				t.Fatal(err)
			}
			if len(listed) != 0 {
				t.Fatalf("the node list shows %v to a certificate of the openssh CA", listed)
			}
		})
	})
}
