package tunnel_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/transport"
	"github.com/tetherproject/tether/transport/frame"
)

// leafTunnels returns the root's tunnels of leaf, by carrier.
func leafTunnels(root *cluster, leaf string) map[transport.Transport][]transport.TunnelInfo {
	out := map[transport.Transport][]transport.TunnelInfo{}
	for _, ti := range root.gw.Tunnel().Server().Tunnels() {
		if ti.Cluster == leaf {
			out[ti.Transport] = append(out[ti.Transport], ti)
		}
	}
	return out
}

func waitLeafTunnels(t *testing.T, root *cluster, leaf string, quic, ssh int) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() error {
		got := leafTunnels(root, leaf)
		if len(got[transport.QUIC]) != quic || len(got[transport.SSH]) != ssh {
			return fmt.Errorf("tunnels of %s: %+v, want %d quic and %d ssh", leaf, got, quic, ssh)
		}
		return nil
	})
}

// sessionCarrier dials node1 of the leaf as a user session and returns the carrier the
// root and the leaf's forwarding hook saw.
func sessionCarrier(t *testing.T, root, leaf *cluster) (atRoot, atLeaf transport.Transport) {
	t.Helper()
	seen := make(chan transport.Transport, 1)
	leaf.gw.TunnelLeaf().SetForward(func(_ context.Context, c net.Conn, _ string, _ []byte, _ string) {
		seen <- transport.CarrierOf(c)
		_, _ = io.Copy(c, c)
	})
	defer leaf.gw.TunnelLeaf().SetForward(leaf.gw.HandleTunnelStream)
	c, err := root.gw.Tunnel().DialLeaf(context.Background(), leaf.name, "node1", nil, "192.0.2.1:5000")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q %v", buf, err)
	}
	return transport.CarrierOf(c), <-seen
}

// sshForSessionsUp has user sessions dialled until one rides the SSH tunnel for sessions
// (the first rides QUIC and opens it) and waits until it is up.
func sshForSessionsUp(t *testing.T, root, leaf *cluster) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		atRoot, atLeaf := sessionCarrier(t, root, leaf)
		if atRoot != atLeaf {
			t.Fatalf("the root saw %s, the leaf %s", atRoot, atLeaf)
		}
		if atRoot == transport.SSH {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions still ride QUIC; the SSH tunnel for sessions did not open: %+v", leafTunnels(root, leaf.name))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLeafKeepsAnSSHTunnelForSessions: a leaf (proxy.tunnel_bulk_ssh, on by default)
// holds one QUIC tunnel while idle — node lists do not change that —; its first user
// session rides QUIC and opens an SSH tunnel beside it, which the next sessions ride;
// the leaf counts once in get rc, the connected-leaves metric and its own status; the
// SSH tunnel killed leaves the leaf online over QUIC and the next sessions open it again;
// disabling the trust closes both.
func TestLeafKeepsAnSSHTunnelForSessions(t *testing.T) {
	root := start(t, "root.example.com", "")
	leaf := start(t, "leaf.example.com", "root_ca_file: "+rootCAFile(t, root)+"\n")
	ctx := context.Background()
	join(t, root, leaf)
	registerNode(t, leaf, "node1")
	waitStatus(t, root, leaf.name, resource.ConnectionOnline, "quic", 10*time.Second)

	t.Run("idle_one_tunnel_node_lists_do_not_open_it", func(t *testing.T) {
		for range 3 {
			_, _ = root.gw.Tunnel().Ask(ctx, leaf.name, frame.ServiceNodeList, nil, "192.0.2.1:5000") // refused: no certificate
		}
		time.Sleep(500 * time.Millisecond) // a wrongly opened SSH tunnel would show by now
		waitLeafTunnels(t, root, leaf.name, 1, 0)
		s, err := leaf.gw.Auth().Status(ctx)
		if err != nil || len(s.Tunnels) != 1 || s.Tunnels[0].SessionsOverSSH || !s.Tunnels[0].SessionsIdle {
			t.Errorf("idle leaf status: %+v %v", s.Tunnels, err)
		}
	})

	t.Run("first_session_over_quic_opens_it", func(t *testing.T) {
		if atRoot, atLeaf := sessionCarrier(t, root, leaf); atRoot != transport.QUIC || atLeaf != transport.QUIC {
			t.Errorf("the first session went over %s (root) / %s (leaf), want quic", atRoot, atLeaf)
		}
		waitLeafTunnels(t, root, leaf.name, 1, 1)
		sshForSessionsUp(t, root, leaf)
	})

	t.Run("counted_once", func(t *testing.T) {
		if got := root.gw.Tunnel().ConnectedLeaves(); len(got) != 1 || got["quic"] != 1 {
			t.Errorf("connected leaves %v, want quic: 1", got)
		}
		testenv.Eventually(t, 5*time.Second, func() error {
			s, err := leaf.gw.Auth().Status(ctx)
			if err != nil || len(s.Tunnels) != 1 || s.Tunnels[0].Transport != "quic" || !s.Tunnels[0].SessionsOverSSH || s.Tunnels[0].SessionsIdle {
				return fmt.Errorf("leaf status: %+v %v", s.Tunnels, err)
			}
			return nil
		})
		if ssh := leafTunnels(root, leaf.name)[transport.SSH][0]; !ssh.Bulk {
			t.Errorf("the SSH tunnel is not marked for sessions: %+v", ssh)
		}
		// The SSH tunnel's heartbeats write the same record: it keeps saying quic.
		time.Sleep(100 * time.Millisecond)
		if st, _ := rcStatus(root, leaf.name); st.Transport != "quic" || st.Connection != resource.ConnectionOnline {
			t.Errorf("get rc: %+v", st)
		}
	})

	t.Run("sessions_over_ssh_node_lists_over_quic", func(t *testing.T) {
		if atRoot, atLeaf := sessionCarrier(t, root, leaf); atRoot != transport.SSH || atLeaf != transport.SSH {
			t.Errorf("the session went over %s (root) / %s (leaf), want ssh", atRoot, atLeaf)
		}
		before := leafTunnels(root, leaf.name)[transport.QUIC][0].Dials
		_, _ = root.gw.Tunnel().Ask(ctx, leaf.name, frame.ServiceNodeList, nil, "192.0.2.1:5000") // refused: no certificate
		if after := leafTunnels(root, leaf.name)[transport.QUIC][0].Dials; after != before+1 {
			t.Errorf("the node list request did not go over QUIC (QUIC dials %d → %d)", before, after)
		}
	})

	t.Run("ssh_tunnel_killed_leaf_stays_online_and_sessions_reopen_it", func(t *testing.T) {
		ssh := leafTunnels(root, leaf.name)[transport.SSH][0]
		// Cut the SSH tunnel's TCP connection in the kernel (both ends are on loopback).
		out, err := exec.Command("ss", "-K", "dst", ssh.RemoteAddr).CombinedOutput()
		if err != nil {
			t.Skipf("cannot kill a socket here (ss -K needs CAP_NET_ADMIN and SOCK_DESTROY): %v %s", err, out)
		}
		testenv.Eventually(t, 5*time.Second, func() error {
			for _, ti := range leafTunnels(root, leaf.name)[transport.SSH] {
				if ti.ConnectedAt.Equal(ssh.ConnectedAt) {
					return fmt.Errorf("the killed SSH tunnel is still there (ss said %q)", strings.TrimSpace(string(out)))
				}
			}
			return nil
		})
		if st, _ := rcStatus(root, leaf.name); st.Connection != resource.ConnectionOnline || st.Transport != "quic" {
			t.Errorf("get rc after the SSH tunnel died: %+v", st)
		}
		sshForSessionsUp(t, root, leaf)
		waitLeafTunnels(t, root, leaf.name, 1, 1)
		if got := root.gw.Tunnel().ConnectedLeaves(); got["quic"] != 1 || got["ssh"] != 0 {
			t.Errorf("connected leaves %v", got)
		}
		if _, reconnects := root.gw.Tunnel().Connects(); reconnects != 0 {
			t.Errorf("the SSH tunnel's return counted as %d leaf reconnects", reconnects)
		}
	})

	t.Run("trust_disabled_closes_both", func(t *testing.T) {
		setEnabled(t, root, leaf, false)
		waitStatus(t, root, leaf.name, resource.ConnectionOffline, "", 3*time.Second)
		waitLeafTunnels(t, root, leaf.name, 0, 0)
		setEnabled(t, root, leaf, true)
		waitStatus(t, root, leaf.name, resource.ConnectionOnline, "quic", 10*time.Second)
		waitLeafTunnels(t, root, leaf.name, 1, 0) // idle again
	})
}

// TestBulkSSHOffKeepsOneTunnel: proxy.tunnel_bulk_ssh: false on the leaf keeps one tunnel
// per root replica, and sessions go over QUIC and never open another.
func TestBulkSSHOffKeepsOneTunnel(t *testing.T) {
	root := start(t, "root.example.com", "")
	leaf := startWith(t, "leaf.example.com", "  tunnel_bulk_ssh: false\n", "root_ca_file: "+rootCAFile(t, root)+"\n")
	join(t, root, leaf)
	registerNode(t, leaf, "node1")
	waitStatus(t, root, leaf.name, resource.ConnectionOnline, "quic", 10*time.Second)
	for range 3 {
		if atRoot, atLeaf := sessionCarrier(t, root, leaf); atRoot != transport.QUIC || atLeaf != transport.QUIC {
			t.Errorf("the session went over %s / %s, want quic", atRoot, atLeaf)
		}
	}
	time.Sleep(time.Second) // a wrongly started SSH tunnel would show by now
	waitLeafTunnels(t, root, leaf.name, 1, 0)
	if s, _ := leaf.gw.Auth().Status(context.Background()); len(s.Tunnels) != 1 || s.Tunnels[0].SessionsOverSSH || s.Tunnels[0].SessionsIdle {
		t.Errorf("leaf status: %+v", s.Tunnels)
	}
}
