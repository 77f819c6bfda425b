package tunnel_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway"
	"github.com/tetherproject/tether/gateway/config"
	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/internal/testproc"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/transport"
)

// By default the tunnel is on the web port: /webapi/ping advertises the web address, and a
// leaf connects there over QUIC (UDP at the web port number) or, when the root serves no
// QUIC (UDP refused), over SSH through the web port's mux.
func TestTunnelSharesTheWebPort(t *testing.T) {
	for _, tc := range []struct{ carrier, proxy string }{
		{"quic", ""},
		{"ssh", "  tunnel_disable_quic: true\n"},
	} {
		t.Run(tc.carrier, func(t *testing.T) {
			root := startWith(t, "root.example.com", tc.proxy, "")
			if got := testproc.PingTunnelAddr(t, root.gw.Addr()); got != root.gw.Addr() || root.gw.TunnelAddr() != root.gw.Addr() {
				t.Fatalf("tunnel advertised at %s (TunnelAddr %s), want the web address %s", got, root.gw.TunnelAddr(), root.gw.Addr())
			}
			leaf := start(t, "leaf.example.com", "root_ca_file: "+rootCAFile(t, root)+"\n")
			join(t, root, leaf)
			waitStatus(t, root, "leaf.example.com", resource.ConnectionOnline, tc.carrier, 20*time.Second)
		})
	}
}

// An explicit tunnel_listen_addr on another port keeps separate listeners there, and
// /webapi/ping advertises that port.
func TestTunnelOnItsOwnPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	root := startWith(t, "root.example.com", "  tunnel_listen_addr: "+addr+"\n", "")
	if got := testproc.PingTunnelAddr(t, root.gw.Addr()); got != addr || root.gw.TunnelAddr() != addr || addr == root.gw.Addr() {
		t.Fatalf("tunnel advertised at %s (TunnelAddr %s, web %s), want %s", got, root.gw.TunnelAddr(), root.gw.Addr(), addr)
	}
	leaf := start(t, "leaf.example.com", "root_ca_file: "+rootCAFile(t, root)+"\n")
	join(t, root, leaf)
	waitStatus(t, root, "leaf.example.com", resource.ConnectionOnline, "quic", 20*time.Second)
}

// The attacker: a user's SSH client sending the tunnel agent's version line to the web port
// reaches only the tunnel server, which demands a leaf's X.509 chain: a self-signed chain
// claiming a joined leaf's name is refused, nothing is served, the leaf stays as it was,
// and the user SSH entry on the same port is untouched.
func TestTunnelBannerFromAUserIsRefused(t *testing.T) {
	root := start(t, "root.example.com", "")
	// A leaf that joined and went offline again: its remote_cluster exists, so the root
	// would serve a tunnel that proved to be it.
	leaf := start(t, "leaf.example.com", "root_ca_file: "+rootCAFile(t, root)+"\n")
	join(t, root, leaf)
	waitStatus(t, root, "leaf.example.com", resource.ConnectionOnline, "", 20*time.Second)
	setEnabled(t, root, leaf, false)
	waitStatus(t, root, "leaf.example.com", resource.ConnectionOffline, "", 10*time.Second)

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "forged"},
		URIs: []*url.URL{ca.ClusterURI("leaf.example.com")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(version string) (*ssh.Client, ssh.PublicKey, error) {
		var hostKey ssh.PublicKey
		c, err := ssh.Dial("tcp", root.gw.Addr(), &ssh.ClientConfig{User: "alice", ClientVersion: version,
			Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error { hostKey = k; return nil },
			Timeout:         10 * time.Second})
		return c, hostKey, err
	}
	c, tunnelKey, err := dial(transport.SSHClientVersion)
	if err != nil {
		t.Fatalf("the tunnel server's SSH handshake: %v", err)
	}
	defer c.Close()
	if ok, _, err := c.SendRequest("tether-x509-root@tether", true, nil); err != nil || !ok {
		t.Fatalf("root chain request: %v %v", ok, err)
	}
	chain := binary.BigEndian.AppendUint32(nil, uint32(len(der)))
	chain = append(chain, der...)
	ok, reply, err := c.SendRequest("tether-x509@tether", true, chain)
	if ok {
		t.Fatalf("a self-signed chain naming leaf.example.com was accepted (%q)", reply)
	}
	if err == nil && !strings.Contains(string(reply), "refused") {
		t.Fatalf("reply %q, want a refusal", reply)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the refused connection stayed open")
	}
	if _, _, err := c.OpenChannel("session", nil); err == nil {
		t.Fatal("a session was opened on the refused tunnel connection")
	}
	if st, err := rcStatus(root, "leaf.example.com"); err != nil || st.Connection != resource.ConnectionOffline {
		t.Fatalf("leaf.example.com after the attack: %+v %v", st, err)
	}
	// The server logs the refusal as the connection ends, which may be just after the
	// client saw it closed.
	testenv.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(root.logs.String(), "refused SSH tunnel") {
			return fmt.Errorf("root log has no refusal:\n%s", root.logs)
		}
		return nil
	})

	// The same key with an ordinary SSH client reaches the user SSH entry: another host
	// key, and no certificate means no login.
	if c, userKey, err := dial("SSH-2.0-OpenSSH_9.6"); err == nil {
		c.Close()
		t.Fatal("a bare key logged in to the user SSH entry")
	} else if userKey == nil || string(userKey.Marshal()) == string(tunnelKey.Marshal()) || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("user SSH entry: host key %v (tunnel's %v): %v", userKey, tunnelKey, err)
	}
}

// The web port's UDP number taken by another program: with the tunnel address defaulted,
// tetherd starts with the tunnel on a free port of its own (and advertises it); with
// tunnel_listen_addr set to the web address, it refuses to start and says what to change.
func TestTunnelWhenTheWebPortsUDPIsTaken(t *testing.T) {
	var udp *net.UDPConn
	var port string
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ = net.SplitHostPort(l.Addr().String())
		l.Close()
		if udp, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: l.Addr().(*net.TCPAddr).Port}); err == nil {
			break
		}
	}
	if udp == nil {
		t.Fatal("no port free on both TCP and UDP")
	}
	defer udp.Close()
	web := net.JoinHostPort("127.0.0.1", port)

	t.Run("explicit", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "tether.yaml")
		body := fmt.Sprintf("cluster_name: root.example.com\ndata_dir: %s\nproxy:\n  web_listen_addr: %s\n  tunnel_listen_addr: %s\n", filepath.Join(dir, "data"), web, web)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := gateway.New(context.Background(), c, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
			t.Fatal("started with the tunnel's UDP port taken")
		} else if !strings.Contains(err.Error(), "tunnel_disable_quic") || !strings.Contains(err.Error(), "tunnel_listen_addr") {
			t.Fatalf("error does not say what to change: %v", err)
		}
	})
	t.Run("defaulted", func(t *testing.T) {
		root := startAt(t, "root.example.com", web)
		if root.gw.Addr() != web || root.gw.TunnelAddr() == web || testproc.PingTunnelAddr(t, root.gw.Addr()) != root.gw.TunnelAddr() {
			t.Fatalf("web %s, tunnel %s, ping %s", root.gw.Addr(), root.gw.TunnelAddr(), testproc.PingTunnelAddr(t, root.gw.Addr()))
		}
		if !strings.Contains(root.logs.String(), "cannot share the web port") {
			t.Fatalf("no warning:\n%s", root.logs)
		}
		leaf := start(t, "leaf.example.com", "root_ca_file: "+rootCAFile(t, root)+"\n")
		join(t, root, leaf)
		waitStatus(t, root, "leaf.example.com", resource.ConnectionOnline, "quic", 20*time.Second)
	})
}
