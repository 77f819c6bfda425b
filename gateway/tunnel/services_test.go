package tunnel_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/tunnel"
	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/transport"
	"github.com/tetherproject/tether/transport/frame"
)

func userCert(t *testing.T, a *ca.Authority, ttl time.Duration) []byte {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.IssueUser(ca.UserCertRequest{PublicKey: key, Username: "alice", Logins: []string{"visitor", "root"}, Roles: []string{"access"},
		Traits: map[string][]string{"logins": {"visitor", "root"}}, TTL: ttl, MaxTTL: ttl, IssuedVia: "local"})
	if err != nil {
		t.Fatal(err)
	}
	return c.Marshal()
}

func create(t *testing.T, c *cluster, yaml string, force bool) {
	t.Helper()
	rs, err := resource.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.gw.Auth().Create(context.Background(), rs, force); err != nil {
		t.Fatal(err)
	}
}

// The leaf answers a root's typed service requests from its own policy, for a
// certificate of that root's user CA that is valid now, and refuses every other.
func TestLeafServicesAnswerFromTheLeafsPolicy(t *testing.T) {
	root := start(t, "root.example.com", "")
	declog := filepath.Join(t.TempDir(), "decisions.jsonl")
	leaf := start(t, "leaf.example.com", "root_ca_file: "+rootCAFile(t, root)+"\npolicy:\n  decision_log:\n    file: "+declog+"\n")
	join(t, root, leaf)
	waitStatus(t, root, "leaf.example.com", resource.ConnectionOnline, "", 10*time.Second)
	// The leaf's access role (the root's access maps to it) reaches stage nodes only and
	// never as root.
	create(t, leaf, "kind: role\nversion: v5\nmetadata: {name: access}\nspec:\n  allow:\n    logins: ['{{internal.logins}}']\n    node_labels: {env: stage}\n  deny:\n    logins: [root]\n", true)
	create(t, leaf, "kind: node\nversion: v2\nmetadata:\n  name: node-east\n  labels: {env: stage}\nspec:\n  addr: 127.0.0.1:3022\n  hostname: east\n", false)
	create(t, leaf, "kind: node\nversion: v2\nmetadata:\n  name: node-prod\n  labels: {env: prod}\nspec:\n  addr: 127.0.0.1:3023\n", false)
	ctx := context.Background()
	ask := func(svc frame.Service, cert []byte) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return root.gw.Tunnel().Ask(ctx, "leaf.example.com", svc, cert, "192.0.2.7:4000")
	}
	good := userCert(t, root.gw.Auth().CA().User, time.Hour)

	t.Run("node_list_is_the_leafs_decision", func(t *testing.T) {
		data, err := ask(frame.ServiceNodeList, good)
		if err != nil {
			t.Fatal(err)
		}
		nodes, err := tunnel.DecodeNodeList(data)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) != 1 || nodes[0].Name != "node-east" || strings.Join(nodes[0].Logins, ",") != "visitor" || nodes[0].Addr != "127.0.0.1:3022" || nodes[0].Labels["env"] != "stage" {
			t.Fatalf("nodes %+v", nodes)
		}
		testenv.Eventually(t, 10*time.Second, func() error {
			data, _ := os.ReadFile(declog)
			for _, line := range strings.Split(string(data), "\n") {
				if strings.Contains(line, `"path":"tether/access/node_logins"`) && strings.Contains(line, `"node-east"`) && strings.Contains(line, `"node_count":2`) && strings.Contains(line, `"alice"`) {
					return nil
				}
			}
			return fmt.Errorf("no node list event in the leaf's decision log:\n%s", data)
		})
	})
	t.Run("user_roles_are_the_leafs_role_map", func(t *testing.T) {
		data, err := ask(frame.ServiceUserRoles, good)
		if err != nil {
			t.Fatal(err)
		}
		a, err := tunnel.DecodeUserRoles(data)
		if err != nil || strings.Join(a.Roles, ",") != "access" {
			t.Fatalf("roles %+v %v", a, err)
		}
	})

	// Attackers: a root (or whoever holds its tunnel) asking with certificates the leaf
	// must not accept. Each is refused with a reason, nothing is listed, the leaf logs it.
	otherCA, err := ca.NewCluster("root.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	pastCA, _, err := ca.LoadOrCreateCluster(filepath.Join(root.dataDir, "ca"), "root.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	pastCA.User.Clock = func() time.Time { return time.Now().Add(-3 * time.Hour) }
	plain, _, _ := ed25519.GenerateKey(rand.Reader)
	plainKey, _ := ssh.NewPublicKey(plain)
	for _, tc := range []struct {
		name, cert, want string
	}{
		{"forged_by_another_CA_with_the_roots_name", string(userCert(t, otherCA.User, time.Hour)), "not signed by the user CA of root.example.com"},
		{"signed_by_the_leafs_own_user_CA", string(userCert(t, leaf.gw.Auth().CA().User, time.Hour)), "not signed by the user CA of root.example.com"},
		{"expired", string(userCert(t, pastCA.User, time.Hour)), "expired"},
		{"a_plain_key", string(plainKey.Marshal()), "not a user certificate"},
		{"garbage", "\x00\x01garbage", "no readable user certificate"},
		{"none", "", "no readable user certificate"},
	} {
		for _, svc := range []frame.Service{frame.ServiceNodeList, frame.ServiceUserRoles} {
			t.Run(tc.name+"/"+svc.String(), func(t *testing.T) {
				data, err := ask(svc, []byte(tc.cert))
				var denied *transport.DialDeniedError
				if !errors.As(err, &denied) || !strings.Contains(denied.Reason, tc.want) || data != nil {
					t.Fatalf("got %q, %v; want a refusal saying %q", data, err, tc.want)
				}
			})
		}
	}
	if !strings.Contains(leaf.logs.String(), "refused a tunnel service request") {
		t.Fatal("the leaf did not log the refusals")
	}
	t.Run("a_service_request_naming_an_address_never_leaves_the_root", func(t *testing.T) {
		_, err := root.gw.Tunnel().Server().DialTraced(ctx, "leaf.example.com", &frame.DialRequest{Service: frame.ServiceNodeList, Node: "10.0.0.1:22", UserCert: good})
		if !errors.Is(err, frame.ErrMalformed) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("disabled_trust_refuses_even_a_good_certificate", func(t *testing.T) {
		setEnabled(t, root, leaf, false)
		waitStatus(t, root, "leaf.example.com", resource.ConnectionOffline, "", 5*time.Second)
		_, err := ask(frame.ServiceNodeList, good)
		var off *tunnel.OfflineError
		if !errors.As(err, &off) || err.Error() != "cluster leaf.example.com is offline" {
			t.Fatalf("got %v", err)
		}
	})
}

// A leaf (or whatever holds its tunnel credentials) answering garbage or too much is
// refused by the root with a clear error, within a bound: the root never reads more than
// tunnel.MaxServiceAnswer bytes.
func TestRootBoundsALeafsAnswers(t *testing.T) {
	root := start(t, "root.example.com", "")
	leaf := start(t, "leaf.example.com", "root_ca_file: "+rootCAFile(t, root)+"\n")
	join(t, root, leaf)
	waitStatus(t, root, "leaf.example.com", resource.ConnectionOnline, "", 10*time.Second)
	setEnabled(t, root, leaf, false) // the real leaf leaves; a hostile agent with its credentials takes over
	waitStatus(t, root, "leaf.example.com", resource.ConnectionOffline, "", 5*time.Second)

	answers := map[string][]byte{
		"huge":          bytes.Repeat([]byte("x"), tunnel.MaxServiceAnswer+4096),
		"garbage":       []byte("\x00not json"),
		"trailing":      []byte(`{"nodes":[]} {"nodes":[]}`),
		"unknown_field": []byte(`{"nodes":[],"admin":true}`),
		"address_node":  []byte(`{"nodes":[{"name":"10.0.0.1","logins":["visitor"]}]}`),
		"bad_login":     []byte(`{"nodes":[{"name":"n1","logins":["root; rm -rf /"]}]}`),
		"no_logins":     []byte(`{"nodes":[{"name":"n1","logins":[]}]}`),
		"control_chars": []byte(`{"nodes":[{"name":"n1","labels":{"env":"\u001b[31m"},"logins":["v"]}]}`),
		"twice":         []byte(`{"nodes":[{"name":"n1","logins":["v"]},{"name":"n1","logins":["v"]}]}`),
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cert, err := leaf.gw.Auth().CA().TLS.IssueTLS(ca.TLSCertRequest{PublicKey: key.Public(), CommonName: "hostile",
		URIs: []*url.URL{ca.ClusterURI("leaf.example.com")}, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root.gw.Auth().CA().TLS.CACerts()[0])
	var current atomic.Pointer[[]byte]
	ag, err := transport.NewAgent(transport.AgentConfig{Cluster: "leaf.example.com",
		Certificate: &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, RootCAs: pool,
		Handler: func(context.Context, *frame.DialRequest) (func(net.Conn), error) {
			answer := *current.Load()
			return func(c net.Conn) { _, _ = c.Write(answer) }, nil
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer ag.Close()
	ag.AddReplica(transport.Endpoint{QUIC: root.gw.TunnelAddr(), TCP: root.gw.TunnelAddr()})
	waitStatus(t, root, "leaf.example.com", resource.ConnectionOnline, "", 10*time.Second)
	good := userCert(t, root.gw.Auth().CA().User, time.Hour)
	for name, answer := range answers {
		t.Run(name, func(t *testing.T) {
			current.Store(&answer)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			data, err := root.gw.Tunnel().Ask(ctx, "leaf.example.com", frame.ServiceNodeList, good, "192.0.2.7:4000")
			if err == nil {
				_, err = tunnel.DecodeNodeList(data)
			}
			if !errors.Is(err, tunnel.ErrBadAnswer) {
				t.Fatalf("got %v, want ErrBadAnswer", err)
			}
			if len(data) > tunnel.MaxServiceAnswer {
				t.Fatalf("the root read %d bytes", len(data))
			}
		})
	}
}
