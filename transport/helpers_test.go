package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/transport/frame"
)

// pki is the clusters of a test: a root, two leaves it trusts, and a stranger it does not.
type pki struct {
	root, leaf, leaf2, evil *ca.Cluster
}

var (
	pkiOnce sync.Once
	shared  *pki
)

// testPKI returns CAs shared by the tests of this package (key generation is the slow part).
func testPKI(t testing.TB) *pki {
	t.Helper()
	pkiOnce.Do(func() {
		mk := func(name string) *ca.Cluster {
			c, err := ca.NewCluster(name, ca.ECDSAP256)
			if err != nil {
				panic(err)
			}
			return c
		}
		shared = &pki{root: mk("root.example.com"), leaf: mk("leaf.example.com"), leaf2: mk("leaf2.example.com"), evil: mk("evil.example.com")}
	})
	return shared
}

func issue(t testing.TB, a *ca.Authority, req ca.TLSCertRequest) *tls.Certificate {
	t.Helper()
	key, err := ca.GenerateKey(ca.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	req.PublicKey = key.Public()
	cert, err := a.IssueTLS(req)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

func (p *pki) rootCert(t testing.TB) *tls.Certificate {
	return issue(t, p.root.TLS, ca.TLSCertRequest{CommonName: "proxy-1", DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true, Client: true, TTL: time.Hour})
}

// leafCert issues a client certificate naming cluster from authority a.
func leafCert(t testing.TB, a *ca.Authority, cluster string) *tls.Certificate {
	return issue(t, a, ca.TLSCertRequest{CommonName: "agent", URIs: []*url.URL{ca.ClusterURI(cluster)}, Client: true, TTL: time.Hour})
}

// verifier trusts leaf and leaf2, each with its own CA; trusted can be switched off (trust
// disabled).
func (p *pki) verifier(trusted *atomic.Bool) func([]*x509.Certificate) (string, error) {
	pools := map[string]*x509.CertPool{"leaf.example.com": p.leaf.TLS.CertPool(), "leaf2.example.com": p.leaf2.TLS.CertPool()}
	return PinnedClusters{Pool: func(name string) *x509.CertPool {
		if trusted != nil && !trusted.Load() {
			return nil
		}
		return pools[name]
	}}.Verify
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("TETHER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer runs a root replica on loopback with both carriers.
func startServer(t testing.TB, p *pki, mod func(*ServerConfig)) *Server {
	t.Helper()
	cfg := ServerConfig{Certificate: p.rootCert(t), VerifyLeaf: p.verifier(nil), Replica: "proxy-1",
		KeepAliveInterval: 200 * time.Millisecond, KeepAliveCount: 5, HandshakeTimeout: 2 * time.Second, Logger: testLogger(t)}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ListenQUIC("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := s.ListenTCP("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// echoHandler accepts node "web" and echoes; "db" is denied with a reason; anything else
// fails with an internal error that must not reach the root.
func echoHandler(ctx context.Context, req *frame.DialRequest) (func(net.Conn), error) {
	switch req.Node {
	case "web":
		return func(c net.Conn) {
			io.Copy(c, c)
			if cw, ok := c.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
		}, nil
	case "db":
		return nil, Deny("node db is not registered")
	}
	return nil, errors.New("internal: redis at 10.1.2.3 unreachable")
}

func agentConfig(t testing.TB, p *pki, mod func(*AgentConfig)) AgentConfig {
	cfg := AgentConfig{Cluster: "leaf.example.com", Certificate: leafCert(t, p.leaf.TLS, "leaf.example.com"), RootCAs: p.root.TLS.CertPool(),
		Handler: echoHandler, KeepAliveInterval: 200 * time.Millisecond, KeepAliveCount: 5, HandshakeTimeout: 2 * time.Second,
		ProbeInterval: 300 * time.Millisecond, Backoff: Backoff{Base: 50 * time.Millisecond, Cap: 500 * time.Millisecond},
		IgnoreAdvertisedReplicas: true, Logger: testLogger(t)}
	if mod != nil {
		mod(&cfg)
	}
	return cfg
}

func startAgent(t testing.TB, cfg AgentConfig, eps ...Endpoint) *Agent {
	t.Helper()
	a, err := NewAgent(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps {
		a.AddReplica(ep)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// waitConnected waits until the agent's only replica is connected over want.
func waitConnected(t testing.TB, a *Agent, want Transport, within time.Duration) ReplicaStatus {
	t.Helper()
	var st ReplicaStatus
	testenv.Eventually(t, within, func() error {
		ss := a.Status()
		if len(ss) == 0 {
			return errors.New("no replica")
		}
		st = ss[0]
		if !st.Connected || st.Transport != want {
			return fmt.Errorf("replica %+v, want connected over %s", st, want)
		}
		return nil
	})
	return st
}

func waitTunnels(t testing.TB, s *Server, cluster string, want int, transport Transport, within time.Duration) {
	t.Helper()
	testenv.Eventually(t, within, func() error {
		n := 0
		for _, ti := range s.Tunnels() {
			if ti.Cluster == cluster && (transport == "" || ti.Transport == transport) {
				n++
			}
		}
		if n != want {
			return fmt.Errorf("%d %s tunnels of %s, want %d: %+v", n, transport, cluster, want, s.Tunnels())
		}
		return nil
	})
}

// roundTrip sends n bytes through conn and checks the echo.
func roundTrip(t testing.TB, c net.Conn, n int) {
	t.Helper()
	if err := echoCheck(c, n); err != nil {
		t.Fatal(err)
	}
}

// echoCheck sends n bytes through conn and checks the echo; safe off the test goroutine.
func echoCheck(c net.Conn, n int) error {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + i>>8)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("reading echo: %w", err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	if len(got) != n || string(got) != string(data) {
		return fmt.Errorf("echo of %d bytes came back as %d bytes, equal=%v", n, len(got), string(got) == string(data))
	}
	return nil
}

// udpRelay forwards UDP datagrams between clients and a target and can drop everything
// (a black hole) on demand.
type udpRelay struct {
	pc      *net.UDPConn
	target  *net.UDPAddr
	blocked atomic.Bool
	mu      sync.Mutex
	peers   map[string]*net.UDPConn
}

func newUDPRelay(t testing.TB, target string) *udpRelay {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	r := &udpRelay{pc: pc, target: ta, peers: map[string]*net.UDPConn{}}
	go r.run()
	t.Cleanup(func() {
		pc.Close()
		r.mu.Lock()
		for _, c := range r.peers {
			c.Close()
		}
		r.mu.Unlock()
	})
	return r
}

func (r *udpRelay) addr() string { return r.pc.LocalAddr().String() }

func (r *udpRelay) run() {
	buf := make([]byte, 65536)
	for {
		n, from, err := r.pc.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if r.blocked.Load() {
			continue
		}
		r.mu.Lock()
		up := r.peers[from.String()]
		if up == nil {
			up, err = net.DialUDP("udp", nil, r.target)
			if err != nil {
				r.mu.Unlock()
				continue
			}
			r.peers[from.String()] = up
			go func(up *net.UDPConn, from *net.UDPAddr) {
				b := make([]byte, 65536)
				for {
					n, err := up.Read(b)
					if err != nil {
						return
					}
					if !r.blocked.Load() {
						r.pc.WriteToUDP(b[:n], from)
					}
				}
			}(up, from)
		}
		r.mu.Unlock()
		up.Write(buf[:n])
	}
}

// closedUDPPort returns a loopback UDP address nobody listens on.
func closedUDPPort(t testing.TB) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// blackHole returns a loopback UDP address that reads and drops everything.
func blackHole(t testing.TB) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		b := make([]byte, 65536)
		for {
			if _, _, err := pc.ReadFrom(b); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

var _ = strings.Contains

type tlsCert = tls.Certificate

func caTLSReq(ip string) ca.TLSCertRequest {
	return ca.TLSCertRequest{CommonName: "proxy-ns", IPAddresses: []net.IP{net.ParseIP(ip)}, Server: true, Client: true, TTL: time.Hour}
}

func tlsX509KeyPair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	return &c, err
}

func testLoggerTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
