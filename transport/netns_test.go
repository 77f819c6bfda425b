package transport

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/transport/frame"
)

// netnsPair is two network namespaces this test creates, "root" and "leaf", joined by a
// veth pair: the only network the scenarios use.
type netnsPair struct {
	root, leaf     string
	rootIP, leafIP string
}

func runCmd(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newNetnsPair creates the namespaces with unique (pid-based) names and removes them when
// the test ends. It skips, saying why, only when namespaces cannot be created here.
func newNetnsPair(t *testing.T, tag string) *netnsPair {
	t.Helper()
	ipPath, nftPath := testenv.Command(t, "ip"), testenv.Command(t, "nft")
	_ = nftPath
	id := fmt.Sprintf("%d%s", os.Getpid()%100000, tag)
	n := &netnsPair{root: "ttr" + id, leaf: "ttl" + id}
	if err := runCmd(ipPath, "netns", "add", n.root); err != nil {
		t.Skipf("network namespaces cannot be created here (needs root and CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() { _ = runCmd(ipPath, "netns", "del", n.root) })
	if err := runCmd(ipPath, "netns", "add", n.leaf); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = runCmd(ipPath, "netns", "del", n.leaf) })
	// A per-test /30 in 10.231.0.0/16, only ever configured inside these namespaces.
	octet := (os.Getpid()*7 + len(tag)*31 + int(tag[len(tag)-1])) % 250
	n.rootIP, n.leafIP = fmt.Sprintf("10.231.%d.1", octet), fmt.Sprintf("10.231.%d.2", octet)
	vr, vl := "vr"+id, "vl"+id
	for _, c := range [][]string{
		{ipPath, "link", "add", vr, "netns", n.root, "type", "veth", "peer", "name", vl, "netns", n.leaf},
		{ipPath, "-n", n.root, "addr", "add", n.rootIP + "/30", "dev", vr},
		{ipPath, "-n", n.leaf, "addr", "add", n.leafIP + "/30", "dev", vl},
		{ipPath, "-n", n.root, "link", "set", vr, "up"},
		{ipPath, "-n", n.leaf, "link", "set", vl, "up"},
		{ipPath, "-n", n.root, "link", "set", "lo", "up"},
		{ipPath, "-n", n.leaf, "link", "set", "lo", "up"},
	} {
		if err := runCmd(c...); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// nft runs an nft command inside a namespace.
func (n *netnsPair) nft(t *testing.T, ns string, args ...string) {
	t.Helper()
	if err := runCmd(append([]string{testenv.Command(t, "ip"), "netns", "exec", ns, testenv.Command(t, "nft")}, args...)...); err != nil {
		t.Fatal(err)
	}
}

// inNetns runs f on an OS thread moved into the namespace; sockets f creates live there
// for good. The thread is discarded afterwards, never reused by other goroutines.
func inNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		fd, err := unix.Open(filepath.Join("/var/run/netns", ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// startNetnsServer runs a root replica whose sockets live in the root namespace.
func startNetnsServer(t *testing.T, p *pki, n *netnsPair, ep Endpoint) *Server {
	t.Helper()
	srv, err := NewServer(ServerConfig{Certificate: p.netnsRootCert(t, n), VerifyLeaf: p.verifier(nil), Replica: "proxy-ns",
		KeepAliveInterval: 200 * time.Millisecond, KeepAliveCount: 5, HandshakeTimeout: 2 * time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if ep.QUIC == "" {
		ep = Endpoint{QUIC: n.rootIP + ":0", TCP: n.rootIP + ":0"}
	}
	err = inNetns(n.root, func() error {
		if err := srv.ListenQUIC(ep.QUIC); err != nil {
			return err
		}
		return srv.ListenTCP(ep.TCP)
	})
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func (p *pki) netnsRootCert(t *testing.T, n *netnsPair) *tlsCert {
	return issue(t, p.root.TLS, caTLSReq(n.rootIP))
}

// leafProcess is the test binary re-executed inside the leaf namespace as the leaf agent.
type leafProcess struct {
	cmd      *exec.Cmd
	nodePort string
	logs     *testenv.Buffer
}

// startLeafProcess runs TestNetnsLeafProcess in the leaf namespace with `ip netns exec`,
// handing it the leaf's certificate, the pinned root CA and the root's endpoint.
func startLeafProcess(t *testing.T, p *pki, n *netnsPair, ep Endpoint) *leafProcess {
	t.Helper()
	dir := t.TempDir()
	cert := leafCert(t, p.leaf.TLS, "leaf.example.com")
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	var caPEM []byte
	for _, c := range p.root.TLS.CACerts() {
		caPEM = append(caPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	for name, data := range map[string][]byte{
		"leaf.pem":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		"leaf.key":    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"root-ca.pem": caPEM,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.Command(t, "ip"), "netns", "exec", n.leaf, exe, "-test.run=^TestNetnsLeafProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "TETHER_NETNS_LEAF="+dir, "TETHER_NETNS_QUIC="+ep.QUIC, "TETHER_NETNS_TCP="+ep.TCP)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lp := &leafProcess{cmd: cmd, logs: logs}
	ports := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if port, ok := strings.CutPrefix(sc.Text(), "node-port "); ok {
				ports <- port
			}
			logs.Write([]byte(sc.Text() + "\n"))
		}
	}()
	t.Cleanup(func() {
		stdin.Close() // the helper exits when its stdin closes
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() || os.Getenv("TETHER_TEST_LOG") != "" {
			t.Logf("leaf process output:\n%s", logs.String())
		}
	})
	select {
	case lp.nodePort = <-ports:
	case <-time.After(20 * time.Second):
		t.Fatalf("leaf process did not start:\n%s", logs.String())
	}
	return lp
}

// TestNetnsLeafProcess is the leaf side of TestNetns, run inside the leaf namespace by
// re-executing the test binary; it does nothing in a normal run.
func TestNetnsLeafProcess(t *testing.T) {
	dir := os.Getenv("TETHER_NETNS_LEAF")
	if dir == "" {
		t.Skip("helper process of TestNetns: runs only when TestNetns starts it in a namespace")
	}
	certPEM, _ := os.ReadFile(filepath.Join(dir, "leaf.pem"))
	keyPEM, _ := os.ReadFile(filepath.Join(dir, "leaf.key"))
	caPEM, _ := os.ReadFile(filepath.Join(dir, "root-ca.pem"))
	cert, err := tlsX509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no root CA")
	}
	// The registered node "web": an echo server inside the leaf namespace, listening on
	// every address (the namespace's firewall keeps outsiders off it).
	node, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := node.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	nodeAddr := "127.0.0.1:" + portOf(node.Addr().String())
	handler := func(ctx context.Context, req *frame.DialRequest) (func(net.Conn), error) {
		if req.Node != "web" {
			return nil, Deny("node " + req.Node + " is not registered")
		}
		up, err := net.DialTimeout("tcp", nodeAddr, 2*time.Second)
		if err != nil {
			return nil, err
		}
		return func(c net.Conn) {
			go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
			io.Copy(c, up)
			up.Close()
		}, nil
	}
	a, err := NewAgent(AgentConfig{Cluster: "leaf.example.com", Certificate: cert, RootCAs: pool, Handler: handler,
		KeepAliveInterval: 500 * time.Millisecond, KeepAliveCount: 6, HandshakeTimeout: time.Second, ProbeInterval: 500 * time.Millisecond,
		Backoff: Backoff{Base: 100 * time.Millisecond, Cap: time.Second}, IgnoreAdvertisedReplicas: true, Logger: testLoggerTo(os.Stderr)})
	if err != nil {
		t.Fatal(err)
	}
	a.AddReplica(Endpoint{QUIC: os.Getenv("TETHER_NETNS_QUIC"), TCP: os.Getenv("TETHER_NETNS_TCP")})
	fmt.Printf("node-port %s\n", portOf(node.Addr().String()))
	io.Copy(io.Discard, os.Stdin)
	a.Close()
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func waitServerTransport(t *testing.T, srv *Server, want Transport, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	testenv.Eventually(t, within, func() error {
		ts := srv.Tunnels()
		if len(ts) != 1 || ts[0].Transport != want {
			return fmt.Errorf("tunnels %+v, want exactly one over %s", ts, want)
		}
		return nil
	})
	return time.Since(start)
}

func dialThrough(t *testing.T, srv *Server, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := srv.Dial(ctx, "leaf.example.com", "web", []byte("user-cert"), "203.0.113.9:4000")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, n)
}

// TestNetns runs the tunnel across two network namespaces it creates: the leaf's admits
// no inbound connection at all, and UDP is blocked and unblocked with nftables.
func TestNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("network namespace scenarios are not short")
	}
	p := testPKI(t)
	noInbound := "add table inet tether; add chain inet tether input { type filter hook input priority 0; policy drop; }; " +
		"add rule inet tether input ct state established,related accept; add rule inet tether input iif lo accept"

	t.Run("leaf_without_inbound_answers_dials_through_the_root", func(t *testing.T) {
		n := newNetnsPair(t, "a")
		n.nft(t, n.leaf, noInbound)
		srv := startNetnsServer(t, p, n, Endpoint{})
		leaf := startLeafProcess(t, p, n, srv.Endpoint())
		waitServerTransport(t, srv, QUIC, 10*time.Second)
		dialThrough(t, srv, 4<<20)
		// The same node is out of reach from the root's namespace directly.
		err := inNetns(n.root, func() error {
			c, err := net.DialTimeout("tcp", n.leafIP+":"+leaf.nodePort, time.Second)
			if err == nil {
				c.Close()
				return errors.New("connected into the leaf namespace")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("udp_blocked_falls_back_then_returns_to_quic", func(t *testing.T) {
		n := newNetnsPair(t, "b")
		n.nft(t, n.leaf, noInbound)
		srv := startNetnsServer(t, p, n, Endpoint{})
		startLeafProcess(t, p, n, srv.Endpoint())
		waitServerTransport(t, srv, QUIC, 10*time.Second)
		// Outbound UDP dropped in the leaf's output hook: sendmsg fails with EPERM.
		n.nft(t, n.leaf, "add table inet block; add chain inet block out { type filter hook output priority 0; }; add rule inet block out meta l4proto udp drop")
		took := waitServerTransport(t, srv, SSH, 15*time.Second)
		t.Logf("on SSH %v after UDP was blocked", took)
		if took > 10*time.Second {
			t.Errorf("fallback took %v", took)
		}
		dialThrough(t, srv, 4<<20)
		n.nft(t, n.leaf, "delete table inet block")
		took = waitServerTransport(t, srv, QUIC, 15*time.Second)
		t.Logf("back on QUIC %v after UDP was unblocked", took)
		dialThrough(t, srv, 4<<20)
	})

	t.Run("udp_refused_locally_falls_back_at_once", func(t *testing.T) {
		n := newNetnsPair(t, "e")
		n.nft(t, n.leaf, noInbound)
		n.nft(t, n.leaf, "add table inet block; add chain inet block out { type filter hook output priority 0; }; add rule inet block out meta l4proto udp drop")
		srv := startNetnsServer(t, p, n, Endpoint{})
		start := time.Now()
		leaf := startLeafProcess(t, p, n, srv.Endpoint())
		waitServerTransport(t, srv, SSH, 10*time.Second)
		t.Logf("on SSH %v after the leaf started", time.Since(start))
		testenv.Eventually(t, 5*time.Second, func() error {
			if !strings.Contains(leaf.logs.String(), `class="udp refused locally"`) {
				return errors.New("the leaf did not log the QUIC failure as udp refused locally")
			}
			return nil
		})
		dialThrough(t, srv, 1<<20)
	})

	t.Run("udp_rejected_by_the_network_falls_back_at_connect", func(t *testing.T) {
		n := newNetnsPair(t, "c")
		// The root's namespace answers QUIC with ICMP rejections, as a hostile middlebox does.
		n.nft(t, n.root, "add table inet block; add chain inet block in { type filter hook input priority 0; }; add rule inet block in meta l4proto udp reject")
		srv := startNetnsServer(t, p, n, Endpoint{})
		start := time.Now()
		startLeafProcess(t, p, n, srv.Endpoint())
		waitServerTransport(t, srv, SSH, 15*time.Second)
		t.Logf("on SSH %v after the leaf started", time.Since(start))
		dialThrough(t, srv, 1<<20)
		n.nft(t, n.root, "delete table inet block")
		waitServerTransport(t, srv, QUIC, 15*time.Second)
	})

	t.Run("root_restart_brings_the_leaf_back", func(t *testing.T) {
		n := newNetnsPair(t, "d")
		n.nft(t, n.leaf, noInbound)
		srv := startNetnsServer(t, p, n, Endpoint{})
		ep := srv.Endpoint()
		startLeafProcess(t, p, n, ep)
		waitServerTransport(t, srv, QUIC, 10*time.Second)
		srv.Close() // abrupt: no go-away
		start := time.Now()
		var srv2 *Server
		testenv.Eventually(t, 5*time.Second, func() error {
			s, err := NewServer(ServerConfig{Certificate: p.netnsRootCert(t, n), VerifyLeaf: p.verifier(nil), KeepAliveInterval: 200 * time.Millisecond, KeepAliveCount: 5, Logger: testLogger(t)})
			if err != nil {
				return err
			}
			if err := inNetns(n.root, func() error {
				if err := s.ListenQUIC(ep.QUIC); err != nil {
					return err
				}
				return s.ListenTCP(ep.TCP)
			}); err != nil {
				s.Close()
				return err
			}
			srv2 = s
			return nil
		})
		t.Cleanup(func() { srv2.Close() })
		waitServerTransport(t, srv2, QUIC, 15*time.Second)
		t.Logf("leaf back %v after the root restarted", time.Since(start))
		dialThrough(t, srv2, 1<<20)
	})
}
