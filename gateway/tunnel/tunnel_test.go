package tunnel_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/config"
	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/transport"
	"github.com/tetherproject/tether/transport/frame"
)

type cluster struct {
	name    string
	gw      *gateway.Gateway
	logs    *testenv.Buffer
	dataDir string
}

// start runs a cluster with the default tunnel: on the web port.
func start(t *testing.T, name, extra string) *cluster {
	t.Helper()
	return startWith(t, name, "", extra)
}

// startWith runs a cluster with proxy lines (indented, under proxy:) and top-level extra.
func startWith(t *testing.T, name, proxy, extra string) *cluster {
	t.Helper()
	return startConfig(t, name, "  web_listen_addr: 127.0.0.1:0\n  public_addr: 127.0.0.1:0\n"+proxy, extra)
}

// startAt runs a cluster whose web port is web.
func startAt(t *testing.T, name, web string) *cluster {
	t.Helper()
	return startConfig(t, name, "  web_listen_addr: "+web+"\n", "")
}

func startConfig(t *testing.T, name, proxy, extra string) *cluster {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "tether.yaml")
	cfg := fmt.Sprintf("cluster_name: %s\ndata_dir: %s\nproxy:\n%s%s", name, filepath.Join(dir, "data"), proxy, extra)
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, c, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: Run: %v", name, err)
		}
	})
	return &cluster{name: name, gw: g, logs: logs, dataDir: filepath.Join(dir, "data")}
}

func rootCAFile(t *testing.T, root *cluster) string {
	p := filepath.Join(t.TempDir(), "root-ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.gw.Auth().CA().TLS.CACerts()[0].Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func trustedCluster(root *cluster, token string, enabled bool) *resource.TrustedCluster {
	return &resource.TrustedCluster{Kind: resource.KindTrustedCluster, Version: "v2",
		Metadata: resource.Metadata{Name: root.name},
		Spec: resource.TrustedClusterSpec{Enabled: enabled, Token: token, TunnelAddr: root.gw.TunnelAddr(), WebProxyAddr: root.gw.Addr(),
			RoleMap: []resource.RoleMapping{{Remote: "access", Local: []string{"access"}}}}}
}

func join(t *testing.T, root, leaf *cluster) {
	t.Helper()
	ctx := context.Background()
	tok, _, err := root.gw.Auth().AddToken(ctx, auth.TokenOptions{Roles: []string{resource.TokenRoleTrustedCluster}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.gw.Auth().Create(ctx, []resource.Resource{trustedCluster(root, tok, true)}, false); err != nil {
		t.Fatal(err)
	}
}

func setEnabled(t *testing.T, root, leaf *cluster, enabled bool) {
	t.Helper()
	if _, err := leaf.gw.Auth().Create(context.Background(), []resource.Resource{trustedCluster(root, "", enabled)}, true); err != nil {
		t.Fatal(err)
	}
}

func rcStatus(root *cluster, leaf string) (resource.RemoteClusterStatus, error) {
	rs, err := root.gw.Auth().Get(context.Background(), resource.KindRemoteCluster, leaf, false)
	if err != nil {
		return resource.RemoteClusterStatus{}, err
	}
	return rs[0].(*resource.RemoteCluster).Status, nil
}

func waitStatus(t *testing.T, root *cluster, leaf, conn, transport string, within time.Duration) {
	t.Helper()
	testenv.Eventually(t, within, func() error {
		st, err := rcStatus(root, leaf)
		if err != nil {
			return err
		}
		if st.Connection != conn || (transport != "" && st.Transport != transport) {
			return fmt.Errorf("remote_cluster %s: %+v, want %s %s", leaf, st, conn, transport)
		}
		return nil
	})
}

func registerNode(t *testing.T, c *cluster, name string) {
	t.Helper()
	rs, err := resource.Parse([]byte("kind: node\nversion: v2\nmetadata:\n  name: "+name+"\nspec:\n  addr: 127.0.0.1:3022\n  hostname: "+name+"\n"), "node.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.gw.Auth().Create(context.Background(), rs, false); err != nil {
		t.Fatal(err)
	}
}

// The seed guide's join makes the leaf connect over QUIC; dials reach only registered
// nodes and only through the forwarding hook; a trust disabled on the leaf closes the
// tunnel within seconds and re-enabling brings it back; rm rc on the root drops it.
func TestLeafTunnelFollowsTheTrust(t *testing.T) {
	root := start(t, "root.example.com", "")
	leaf := start(t, "leaf.example.com", "root_ca_file: "+rootCAFile(t, root)+"\n")
	ctx := context.Background()

	if _, err := root.gw.Tunnel().DialLeaf(ctx, "leaf.example.com", "node1", nil, "192.0.2.1:5000"); err == nil || err.Error() != "cluster leaf.example.com is offline" {
		t.Fatalf("dial before the join: %v", err)
	}
	join(t, root, leaf)
	waitStatus(t, root, "leaf.example.com", resource.ConnectionOnline, "quic", 10*time.Second)
	st, _ := rcStatus(root, "leaf.example.com")
	if time.Since(st.LastHeartbeat) > time.Minute {
		t.Fatalf("last heartbeat %v", st.LastHeartbeat)
	}
	if s, err := leaf.gw.Auth().Status(ctx); err != nil || len(s.Tunnels) != 1 || s.Tunnels[0].State != "connected" || s.Tunnels[0].Transport != "quic" || s.Tunnels[0].Root != "root.example.com" {
		t.Fatalf("leaf status: %+v %v", s.Tunnels, err)
	}

	t.Run("a_dial_for_an_unregistered_name_is_refused_and_logged", func(t *testing.T) {
		_, err := root.gw.Tunnel().DialLeaf(ctx, "leaf.example.com", "nosuchnode", nil, "192.0.2.1:5000")
		var denied *transport.DialDeniedError
		if !errors.As(err, &denied) || !strings.Contains(denied.Reason, "not found in cluster") {
			t.Fatalf("got %v", err)
		}
		if !strings.Contains(leaf.logs.String(), "refused a tunnel dial for a name that is not a registered node") {
			t.Fatal("the leaf did not log the refusal")
		}
	})
	t.Run("a_dial_for_a_raw_address_is_refused_and_logged", func(t *testing.T) {
		for _, target := range []string{"10.0.0.1", "10.0.0.1:22", "[::1]:22", "node1:22"} {
			if _, err := root.gw.Tunnel().DialLeaf(ctx, "leaf.example.com", target, nil, "192.0.2.1:5000"); err == nil {
				t.Fatalf("%s: dialled", target)
			}
		}
		if !strings.Contains(root.logs.String(), "refused a dial for something that is not a node name") {
			t.Fatal("the root did not log the refusal")
		}
	})
	registerNode(t, leaf, "node1")
	t.Run("a_registered_node_without_a_forwarding_server_is_refused", func(t *testing.T) {
		leaf.gw.TunnelLeaf().SetForward(nil) // tetherd installs its enforcement point; take it away
		defer leaf.gw.TunnelLeaf().SetForward(leaf.gw.HandleTunnelStream)
		_, err := root.gw.Tunnel().DialLeaf(ctx, "leaf.example.com", "node1", nil, "192.0.2.1:5000")
		var denied *transport.DialDeniedError
		if !errors.As(err, &denied) || !strings.Contains(denied.Reason, "no SSH forwarding server") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a_registered_node_reaches_the_forwarding_hook", func(t *testing.T) {
		type call struct{ node, cert, client string }
		calls := make(chan call, 1)
		leaf.gw.TunnelLeaf().SetForward(func(_ context.Context, c net.Conn, node string, cert []byte, client string) {
			calls <- call{node, string(cert), client}
			_, _ = io.Copy(c, c)
		})
		defer leaf.gw.TunnelLeaf().SetForward(leaf.gw.HandleTunnelStream)
		c, err := root.gw.Tunnel().DialLeaf(ctx, "leaf.example.com", "node1", []byte("user-cert"), "192.0.2.1:5000")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo: %q %v", buf, err)
		}
		if got := <-calls; got != (call{"node1", "user-cert", "192.0.2.1:5000"}) {
			t.Fatalf("hook got %+v", got)
		}
	})

	t.Run("trust_disabled_closes_the_tunnel_and_reenabled_reconnects", func(t *testing.T) {
		setEnabled(t, root, leaf, false)
		waitStatus(t, root, "leaf.example.com", resource.ConnectionOffline, "", 3*time.Second)
		testenv.Eventually(t, 2*time.Second, func() error {
			if n := len(root.gw.Tunnel().Server().Tunnels()); n != 0 {
				return fmt.Errorf("root still holds %d tunnels", n)
			}
			if s, _ := leaf.gw.Auth().Status(ctx); len(s.Tunnels) != 0 {
				return fmt.Errorf("leaf agent still running: %+v", s.Tunnels)
			}
			return nil
		})
		setEnabled(t, root, leaf, true)
		waitStatus(t, root, "leaf.example.com", resource.ConnectionOnline, "quic", 10*time.Second)
	})

	t.Run("rm_rc_on_the_root_drops_the_tunnel_and_keeps_it_out", func(t *testing.T) {
		if _, err := root.gw.Auth().Delete(ctx, resource.KindRemoteCluster, "leaf.example.com"); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 2*time.Second, func() error {
			if n := len(root.gw.Tunnel().Server().Tunnels()); n != 0 {
				return fmt.Errorf("root still holds %d tunnels", n)
			}
			return nil
		})
		testenv.Eventually(t, 10*time.Second, func() error {
			if !strings.Contains(root.logs.String(), `no trusted cluster \"leaf.example.com\"`) {
				return errors.New("no refused reconnect logged yet")
			}
			return nil
		})
		if n := len(root.gw.Tunnel().Server().Tunnels()); n != 0 {
			t.Fatalf("the removed leaf reconnected: %d tunnels", n)
		}
	})

	t.Run("rm_trusted_cluster_on_the_leaf_stops_its_agent", func(t *testing.T) {
		if s, _ := leaf.gw.Auth().Status(ctx); len(s.Tunnels) == 0 {
			t.Fatal("the leaf's agent should still be trying (its trust is there)")
		}
		if _, err := leaf.gw.Auth().Delete(ctx, resource.KindTrustedCluster, "root.example.com"); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, time.Second, func() error {
			if s, _ := leaf.gw.Auth().Status(ctx); len(s.Tunnels) != 0 {
				return fmt.Errorf("leaf agent still running: %+v", s.Tunnels)
			}
			return nil
		})
	})
}

// A leaf cannot present another leaf's name: a certificate naming leaf A issued by leaf
// B's TLS CA (B joined too) is refused, and A's remote_cluster stays offline.
func TestLeafClaimingAnotherLeafsNameIsRefused(t *testing.T) {
	root := start(t, "root.example.com", "")
	rootCA := rootCAFile(t, root)
	a := start(t, "a.example.com", "root_ca_file: "+rootCA+"\n")
	b := start(t, "b.example.com", "root_ca_file: "+rootCA+"\n")
	join(t, root, a)
	join(t, root, b)
	waitStatus(t, root, "b.example.com", resource.ConnectionOnline, "", 10*time.Second)
	setEnabled(t, root, a, false)
	waitStatus(t, root, "a.example.com", resource.ConnectionOffline, "", 5*time.Second)

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged, err := b.gw.Auth().CA().TLS.IssueTLS(ca.TLSCertRequest{PublicKey: key.Public(), CommonName: "forged",
		URIs: []*url.URL{ca.ClusterURI("a.example.com")}, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root.gw.Auth().CA().TLS.CACerts()[0])
	for _, carrier := range []string{"quic", "ssh"} {
		t.Run(carrier, func(t *testing.T) {
			ag, err := transport.NewAgent(transport.AgentConfig{Cluster: "a.example.com",
				Certificate: &tls.Certificate{Certificate: [][]byte{forged.Raw}, PrivateKey: key, Leaf: forged},
				RootCAs:     pool, DisableQUIC: carrier == "ssh", DisableSSH: carrier == "quic",
				Handler: func(context.Context, *frame.DialRequest) (func(net.Conn), error) { return nil, transport.Deny("no") },
				Logger:  slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer ag.Close()
			ag.AddReplica(transport.Endpoint{QUIC: root.gw.TunnelAddr(), TCP: root.gw.TunnelAddr()})
			testenv.Eventually(t, 10*time.Second, func() error {
				st := ag.Status()
				if len(st) == 0 || st[0].LastError == "" {
					return errors.New("no failed connect yet")
				}
				return nil
			})
			for _, st := range ag.Status() {
				if st.Connected {
					t.Fatalf("the forged leaf connected: %+v", st)
				}
			}
			if st, _ := rcStatus(root, "a.example.com"); st.Connection != resource.ConnectionOffline {
				t.Fatalf("a.example.com: %+v", st)
			}
		})
	}
}
