package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/transport/frame"
)

var (
	benchLeaves = flag.Int("tether.leaves", 1000, "leaves connected to one root in BenchmarkTunnelFigures")
	benchBytes  = flag.Int64("tether.bulk", 1<<30, "bytes per bulk throughput run in BenchmarkTunnelFigures")
	benchOpens  = flag.Int("tether.opens", 2000, "stream opens per carrier in BenchmarkTunnelFigures")
	benchBeat   = flag.Duration("tether.heartbeat", time.Second, "heartbeat interval of the many leaves in BenchmarkTunnelFigures (the default is 15 s)")
	benchMany   = flag.Bool("tether.manybulk", false, "BenchmarkTunnelFigures: the many leaves have the SSH tunnel for sessions on (AgentConfig.BulkSSH, tetherd's default): idle, they open none, so one tunnel each")
	benchOnly   = flag.Bool("tether.manyonly", false, "BenchmarkTunnelFigures: only the many-leaves figure")
)

const chunk = 1 << 20 // bulk writes go out in large chunks: fewer, fuller packets

// writePEMs writes a certificate chain and key (cert.pem, key.pem) and CA pools into dir.
func writePEMs(t testing.TB, dir string, cert *tls.Certificate, pools map[string][]*x509.Certificate) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"cert.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	for name, certs := range pools {
		var b []byte
		for _, c := range certs {
			b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		files[name+".pem"] = b
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func readPEMs(t testing.TB, dir string) (*tls.Certificate, func(name string) *x509.CertPool) {
	t.Helper()
	certPEM, _ := os.ReadFile(filepath.Join(dir, "cert.pem"))
	keyPEM, _ := os.ReadFile(filepath.Join(dir, "key.pem"))
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &cert, func(name string) *x509.CertPool {
		b, err := os.ReadFile(filepath.Join(dir, name+".pem"))
		if err != nil {
			return nil
		}
		p := x509.NewCertPool()
		p.AppendCertsFromPEM(b)
		return p
	}
}

// helperProcess re-executes the test binary running only test, with env, and returns
// its stdout lines on a channel. Closing its stdin stops it.
type helperProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	logs  *testenv.Buffer
	done  chan struct{}
}

func startHelper(t testing.TB, test string, env ...string) *helperProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env...)
	h := &helperProcess{cmd: cmd, lines: make(chan string, 1024), logs: &testenv.Buffer{}, done: make(chan struct{})}
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = h.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case h.lines <- sc.Text():
			default: // a slow reader loses stat lines, never blocks the helper
			}
		}
		cmd.Wait()
		close(h.done)
	}()
	t.Cleanup(func() { h.stop() })
	return h
}

func (h *helperProcess) stop() {
	h.stdin.Close()
	select {
	case <-h.done:
	case <-time.After(5 * time.Second):
		h.cmd.Process.Kill()
		<-h.done
	}
}

func (h *helperProcess) kill() {
	h.cmd.Process.Signal(syscall.SIGKILL)
	<-h.done
}

// waitLine returns the first line with the prefix.
func (h *helperProcess) waitLine(t testing.TB, prefix string, within time.Duration) string {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case l := <-h.lines:
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return strings.TrimSpace(rest)
			}
		case <-deadline:
			t.Fatalf("helper printed no %q line within %v; its log:\n%s", prefix, within, h.logs.String())
		case <-h.done:
			t.Fatalf("helper exited; its log:\n%s", h.logs.String())
		}
	}
}

// TestBenchLeafProcess is the leaf of BenchmarkTunnelFigures in its own process: nodes
// "source" (sends TETHER_BENCH_BYTES), "sink" (reads to EOF, answers the count) and "hold"
// (accepts and waits for the close).
func TestBenchLeafProcess(t *testing.T) {
	dir := os.Getenv("TETHER_BENCH_LEAF")
	if dir == "" {
		t.Skip("helper process of BenchmarkTunnelFigures")
	}
	cert, pool := readPEMs(t, dir)
	size, _ := strconv.ParseInt(os.Getenv("TETHER_BENCH_BYTES"), 10, 64)
	if prof := os.Getenv("TETHER_BENCH_LEAF_CPUPROFILE"); prof != "" { // profiling the leaf's side
		f, err := os.Create(prof + "." + os.Getenv("TETHER_BENCH_CARRIER"))
		if err != nil {
			t.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	a, err := NewAgent(AgentConfig{Cluster: os.Getenv("TETHER_BENCH_CLUSTER"), Certificate: cert, RootCAs: pool("root-ca"),
		Handler: benchHandler(size), DisableQUIC: os.Getenv("TETHER_BENCH_CARRIER") == "ssh", DisableSSH: os.Getenv("TETHER_BENCH_CARRIER") == "quic",
		IgnoreAdvertisedReplicas: true, Logger: testLoggerTo(os.Stderr)})
	if err != nil {
		t.Fatal(err)
	}
	a.AddReplica(Endpoint{QUIC: os.Getenv("TETHER_BENCH_QUIC"), TCP: os.Getenv("TETHER_BENCH_TCP")})
	fmt.Println("started")
	io.Copy(io.Discard, os.Stdin)
	a.Close()
}

func benchHandler(size int64) DialHandler {
	return func(ctx context.Context, req *frame.DialRequest) (func(net.Conn), error) {
		switch req.Node {
		case "source":
			return func(c net.Conn) { sendBytes(c, size) }, nil
		case "sink":
			return func(c net.Conn) { sinkAndCount(c) }, nil
		case "hold":
			return func(c net.Conn) { io.Copy(io.Discard, c) }, nil
		}
		return nil, Deny("no such node")
	}
}

func sendBytes(w io.Writer, n int64) {
	buf := make([]byte, chunk)
	for n > 0 {
		k := min(int64(len(buf)), n)
		if _, err := w.Write(buf[:k]); err != nil {
			return
		}
		n -= k
	}
	if cw, ok := w.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

func sinkAndCount(c io.ReadWriter) {
	n, _ := io.CopyBuffer(io.Discard, c, make([]byte, chunk))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	c.Write(b[:])
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// download reads a "source" stream to the end: leaf → root throughput.
func download(c io.Reader, want int64) (float64, error) {
	start := time.Now()
	n, err := io.CopyBuffer(io.Discard, c, make([]byte, chunk))
	if err != nil {
		return 0, err
	}
	if n != want {
		return 0, fmt.Errorf("received %d of %d bytes", n, want)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// upload writes to a "sink" stream and waits for its count: root → leaf throughput.
func upload(c io.ReadWriter, size int64) (float64, error) {
	start := time.Now()
	sendBytes(c, size)
	var b [8]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return 0, err
	}
	if got := int64(binary.BigEndian.Uint64(b[:])); got != size {
		return 0, fmt.Errorf("sink counted %d of %d bytes", got, size)
	}
	return float64(size) / time.Since(start).Seconds(), nil
}

// tcpBaseline serves source and sink on raw loopback TCP.
func tcpBaseline(t testing.TB, size int64) (addr string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var kind [1]byte
				if _, err := io.ReadFull(c, kind[:]); err != nil {
					return
				}
				if kind[0] == 's' {
					sendBytes(c, size)
				} else {
					sinkAndCount(c)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func dialKind(addr string, kind byte) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_, err = c.Write([]byte{kind})
	return c, err
}

// openSSHReverse starts a private sshd and `ssh -R` from this machine to it, forwarding
// a port on sshd's side back to target; it returns that port's address.
func openSSHReverse(t testing.TB, target string) string {
	t.Helper()
	sshd, sshPath, keygen := testenv.Command(t, "sshd"), testenv.Command(t, "ssh"), testenv.Command(t, "ssh-keygen")
	dir := t.TempDir()
	for _, k := range []string{"host", "user"} {
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "user.pub"))
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := filepath.Join(dir, "sshd_config")
	os.WriteFile(conf, fmt.Appendf(nil, "Port %d\nListenAddress 127.0.0.1\nHostKey %s\nAuthorizedKeysFile %s\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nPidFile none\nAllowTcpForwarding yes\nCiphers aes128-gcm@openssh.com\n",
		port, filepath.Join(dir, "host"), filepath.Join(dir, "authorized_keys")), 0o600)
	d := exec.Command(sshd, "-D", "-e", "-f", conf)
	dlog := &testenv.Buffer{}
	d.Stderr = dlog
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Process.Kill(); d.Wait() })
	testenv.Eventually(t, 10*time.Second, func() error {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err
	})
	c := exec.Command(sshPath, "-N", "-p", strconv.Itoa(port), "-i", filepath.Join(dir, "user"), "-c", "aes128-gcm@openssh.com",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ExitOnForwardFailure=yes", "-o", "BatchMode=yes",
		"-R", "0:"+target, "root@127.0.0.1")
	stderr, _ := c.StderrPipe()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	re := regexp.MustCompile(`Allocated port (\d+) for remote forward`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var all strings.Builder
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		found <- "error: " + all.String()
	}()
	select {
	case p := <-found:
		if strings.HasPrefix(p, "error") {
			t.Fatalf("ssh -R failed: %s\nsshd: %s", p, dlog.String())
		}
		return "127.0.0.1:" + p
	case <-time.After(15 * time.Second):
		t.Fatalf("ssh -R did not forward; sshd: %s", dlog.String())
	}
	return ""
}

func gbps(v float64) string { return fmt.Sprintf("%.2f GB/s", v/1e9) }

// BenchmarkTunnelFigures prints the tunnel's performance figures beside the baselines of
// the same run (make bench): stream open p50/p99 over QUIC and the SSH fallback; one
// stream's bulk throughput both ways over QUIC, the fallback, raw loopback TCP and OpenSSH
// `ssh -R`; and -tether.leaves leaves on one root (a separate process): its RSS and CPU,
// then a SIGKILL and restart: time until all are back and the peak reconnects per second.
func BenchmarkTunnelFigures(b *testing.B) {
	for range b.N {
	}
	p := testPKI(b)
	if *benchOnly {
		manyLeaves(b, p, *benchLeaves)
		return
	}
	size := *benchBytes
	root := p.rootCert(b)
	srv := startServer(b, p, func(c *ServerConfig) {
		c.Certificate, c.KeepAliveInterval, c.KeepAliveCount = root, 15*time.Second, 3
	})
	ep := srv.Endpoint()
	leaves := map[Transport]string{QUIC: "leaf.example.com", SSH: "leaf2.example.com"}
	for carrier, cluster := range leaves {
		dir := b.TempDir()
		a := p.leaf.TLS
		if cluster == "leaf2.example.com" {
			a = p.leaf2.TLS
		}
		writePEMs(b, dir, leafCert(b, a, cluster), map[string][]*x509.Certificate{"root-ca": p.root.TLS.CACerts()})
		h := startHelper(b, "TestBenchLeafProcess", "TETHER_BENCH_LEAF="+dir, "TETHER_BENCH_CLUSTER="+cluster, "TETHER_BENCH_CARRIER="+string(carrier),
			"TETHER_BENCH_QUIC="+ep.QUIC, "TETHER_BENCH_TCP="+ep.TCP, fmt.Sprintf("TETHER_BENCH_BYTES=%d", size))
		h.waitLine(b, "started", 20*time.Second)
		waitTunnels(b, srv, cluster, 1, carrier, 20*time.Second)
	}
	ctx := context.Background()

	fmt.Printf("\n== tunnel figures (one run; leaf in its own process; %d MiB per bulk run, best of 3 interleaved rounds) ==\n", size>>20)
	// Stream open: Dial returns once the leaf accepted.
	for _, carrier := range []Transport{QUIC, SSH} {
		var lat []time.Duration
		for i := range *benchOpens + *benchOpens/10 {
			start := time.Now()
			c, err := srv.Dial(ctx, leaves[carrier], "hold", nil, "127.0.0.1:1")
			d := time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
			if i >= *benchOpens/10 {
				lat = append(lat, d)
			}
		}
		slices.Sort(lat)
		p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
		fmt.Printf("stream open root→leaf over %-4s  p50 %6.0f µs  p99 %6.0f µs   (target p50 ≤ 300 µs: %s)\n", carrier, us(p50), us(p99), met(p50 <= 300*time.Microsecond))
	}

	// Bulk throughput.
	tcp := tcpBaseline(b, size)
	ossh := openSSHReverse(b, tcp)
	type pair struct{ down, up float64 }
	type path struct {
		name     string
		open     func(kind string) (net.Conn, error) // kind: "source" or "sink"
		down, up float64
	}
	overTCP := func(addr string) func(string) (net.Conn, error) {
		return func(kind string) (net.Conn, error) {
			return dialKind(addr, map[string]byte{"source": 's', "sink": 'k'}[kind])
		}
	}
	overTunnel := func(carrier Transport) func(string) (net.Conn, error) {
		return func(kind string) (net.Conn, error) { return srv.Dial(ctx, leaves[carrier], kind, nil, "") }
	}
	paths := []*path{{name: "raw TCP", open: overTCP(tcp)}, {name: "OpenSSH ssh -R", open: overTCP(ossh)},
		{name: "quic", open: overTunnel(QUIC)}, {name: "ssh", open: overTunnel(SSH)}}
	// Rounds interleave the paths, and each keeps its best: the machine is shared and its
	// load drifts, so a ratio is only fair between measurements taken side by side.
	for range 3 {
		for _, pt := range paths {
			c, err := pt.open("source")
			if err != nil {
				b.Fatal(err)
			}
			v, err := download(c, size)
			c.Close()
			if err != nil {
				b.Fatalf("%s download: %v", pt.name, err)
			}
			pt.down = max(pt.down, v)
			c, err = pt.open("sink")
			if err != nil {
				b.Fatal(err)
			}
			v, err = upload(c, size)
			c.Close()
			if err != nil {
				b.Fatalf("%s upload: %v", pt.name, err)
			}
			pt.up = max(pt.up, v)
		}
	}
	rates := map[string]pair{}
	for _, pt := range paths {
		rates[pt.name] = pair{pt.down, pt.up}
	}
	o, r := rates["OpenSSH ssh -R"], rates["raw TCP"]
	fmt.Printf("%-16s %-12s %-12s %s\n", "bulk, one stream", "leaf→root", "root→leaf", "ratios (leaf→root, root→leaf)")
	for _, name := range []string{"raw TCP", "OpenSSH ssh -R", "quic", "ssh"} {
		v := rates[name]
		label := map[string]string{"quic": "QUIC tunnel", "ssh": "SSH fallback"}[name]
		if label == "" {
			label = name
		}
		line := fmt.Sprintf("%-16s %-12s %-12s", label, gbps(v.down), gbps(v.up))
		if name == "quic" || name == "ssh" {
			target := map[string]float64{"quic": 0.75, "ssh": 1.0}[name]
			line += fmt.Sprintf(" %.2f× / %.2f× OpenSSH (target ≥ %.2f×: %s), %.2f× / %.2f× raw TCP",
				v.down/o.down, v.up/o.up, target, met(min(v.down/o.down, v.up/o.up) >= target), v.down/r.down, v.up/r.up)
		}
		fmt.Println(line)
	}

	if *benchLeaves > 0 {
		manyLeaves(b, p, *benchLeaves)
	}
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// TestBenchRootProcess is the root of the many-leaves figure in its own process: it
// serves QUIC on TETHER_BENCH_QUIC and prints "stat tunnels rss_kib cpu_ms connects"
// every 100 ms.
func TestBenchRootProcess(t *testing.T) {
	dir := os.Getenv("TETHER_BENCH_ROOT")
	if dir == "" {
		t.Skip("helper process of BenchmarkTunnelFigures")
	}
	cert, pool := readPEMs(t, dir)
	leafPool := pool("leaf-ca")
	beat, err := time.ParseDuration(os.Getenv("TETHER_BENCH_BEAT"))
	if err != nil {
		t.Fatal(err)
	}
	var tunnels, connects atomic.Int64
	srv, err := NewServer(ServerConfig{Certificate: cert, VerifyLeaf: PinnedClusters{Pool: func(name string) *x509.CertPool {
		if name == "leaf.example.com" {
			return leafPool
		}
		return nil
	}}.Verify, ResetKey: []byte("bench-reset-key-0123456789abcdef"), KeepAliveInterval: beat, KeepAliveCount: 3,
		MaxTunnelsPerCluster: 1 << 20, // every benchmark leaf shares one cluster's certificate
		OnConnect:            func(TunnelInfo) { tunnels.Add(1); connects.Add(1) },
		OnDisconnect:         func(TunnelInfo, error) { tunnels.Add(-1) },
		Logger:               testLoggerTo(io.Discard)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ListenQUIC(os.Getenv("TETHER_BENCH_QUIC")); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("TETHER_BENCH_TCP") != "" {
		// The SSH tunnels at the QUIC port's number, as tetherd serves them.
		if err := srv.ListenTCP(srv.Endpoint().QUIC); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Printf("endpoint %s\n", srv.Endpoint().QUIC)
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			srv.Close()
			return
		case <-tick.C:
			var ru syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			fmt.Printf("stat %d %d %d %d\n", tunnels.Load(), rssKiB(), cpu.Milliseconds(), connects.Load())
		}
	}
}

func rssKiB() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

type rootStat struct {
	at                       time.Time
	tunnels, rss, cpu, conns int64
}

func (h *helperProcess) stats(t testing.TB, until func(rootStat) bool, within time.Duration) []rootStat {
	t.Helper()
	var out []rootStat
	deadline := time.After(within)
	for {
		select {
		case l := <-h.lines:
			var s rootStat
			if _, err := fmt.Sscanf(l, "stat %d %d %d %d", &s.tunnels, &s.rss, &s.cpu, &s.conns); err != nil {
				continue
			}
			s.at = time.Now()
			out = append(out, s)
			if until(s) {
				return out
			}
		case <-deadline:
			last := rootStat{}
			if len(out) > 0 {
				last = out[len(out)-1]
			}
			t.Fatalf("root did not get there within %v (last %+v); its log:\n%s", within, last, h.logs.String())
		case <-h.done:
			t.Fatalf("root exited; its log:\n%s", h.logs.String())
		}
	}
}

// manyLeaves connects n agents (in this process) to a root in its own process, measures
// the root at rest, kills it with SIGKILL, starts it again on the same port, and measures
// the return.
func manyLeaves(b *testing.B, p *pki, n int) {
	dir := b.TempDir()
	writePEMs(b, dir, p.rootCert(b), map[string][]*x509.Certificate{"leaf-ca": p.leaf.TLS.CACerts()})
	startRoot := func(addr string) *helperProcess {
		env := []string{"TETHER_BENCH_ROOT=" + dir, "TETHER_BENCH_QUIC=" + addr, "TETHER_BENCH_BEAT=" + benchBeat.String()}
		if *benchMany {
			env = append(env, "TETHER_BENCH_TCP=1")
		}
		return startHelper(b, "TestBenchRootProcess", env...)
	}
	root := startRoot("127.0.0.1:0")
	addr := root.waitLine(b, "endpoint ", 20*time.Second)
	cert := leafCert(b, p.leaf.TLS, "leaf.example.com")
	agents := make([]*Agent, n)
	var wg sync.WaitGroup
	start := time.Now()
	ep, kind := Endpoint{QUIC: addr}, "QUIC"
	if *benchMany {
		ep, kind = Endpoint{QUIC: addr, TCP: addr}, "QUIC, SSH tunnel for sessions on demand: idle leaves open none"
	}
	for i := range agents {
		a, err := NewAgent(AgentConfig{Cluster: "leaf.example.com", Certificate: cert, RootCAs: p.root.TLS.CertPool(), Handler: benchHandler(0),
			DisableSSH: !*benchMany, BulkSSH: *benchMany, IgnoreAdvertisedReplicas: true, KeepAliveInterval: *benchBeat, KeepAliveCount: 3,
			UDPBufferSize: 256 << 10, Backoff: Backoff{StableAfter: 2 * time.Second}, Logger: testLoggerTo(io.Discard)})
		if err != nil {
			b.Fatal(err)
		}
		agents[i] = a
		a.AddReplica(ep)
	}
	defer func() {
		for _, a := range agents {
			wg.Go(func() { a.Close() })
		}
		wg.Wait()
	}()
	// With the SSH tunnel for sessions on, the agents tell whether any opened one (an
	// idle leaf must not); a leaf that fell back to SSH holds that one tunnel instead.
	var since time.Time // connected after this
	allUp := func() bool {
		for _, a := range agents {
			st := a.Status()
			if len(st) == 0 || !st[0].Connected || st[0].Since.Before(since) {
				return false
			}
		}
		return true
	}
	withBulk := func() (k int) {
		for _, a := range agents {
			if st := a.Status(); len(st) > 0 && st[0].Bulk {
				k++
			}
		}
		return k
	}
	waitAgents := func(cond func() bool, within time.Duration) (time.Duration, bool) {
		from := time.Now()
		for time.Since(from) < within {
			if cond() {
				return time.Since(from), true
			}
			time.Sleep(100 * time.Millisecond)
		}
		return time.Since(from), false
	}
	if *benchMany {
		_, ok := waitAgents(allUp, 120*time.Second)
		fmt.Printf("%d leaves (%s): every leaf connected after %v (%v); leaves with an SSH tunnel for sessions: %d\n",
			len(agents), kind, time.Since(start).Round(10*time.Millisecond), ok, withBulk())
	}
	up := root.stats(b, func(s rootStat) bool { return s.tunnels >= int64(n) }, 120*time.Second)
	connectTime := time.Since(start)
	if os.Getenv("TETHER_BENCH_TRACE") != "" {
		next := time.Duration(0)
		for _, s := range up {
			if d := s.at.Sub(start); d >= next {
				fmt.Printf("  connect +%v tunnels %d connects %d\n", d.Round(10*time.Millisecond), s.tunnels, s.conns)
				next = d + time.Second
			}
		}
	}
	// At rest: heartbeats every -tether.heartbeat (1 s by default: 15× the default rate) for 6 s.
	time.Sleep(time.Second) // let the connect burst's garbage go before measuring the steady state
	rest := root.stats(b, func(s rootStat) bool { return s.at.Sub(up[len(up)-1].at) > 6*time.Second }, 30*time.Second)
	first, last := rest[0], rest[len(rest)-1]
	cores := float64(last.cpu-first.cpu) / float64(last.at.Sub(first.at).Milliseconds())
	var peakRSS int64
	for _, s := range rest {
		peakRSS = max(peakRSS, s.rss)
	}
	root.kill()
	restart := time.Now()
	root = startRoot(addr)
	if os.Getenv("TETHER_BENCH_TRACE") != "" {
		go func() {
			time.Sleep(8 * time.Second)
			for _, a := range agents {
				if st := a.Status()[0]; !st.Connected {
					fmt.Printf("  down since %v: %s\n", st.Since.Sub(restart).Round(time.Millisecond), st.LastError)
				}
			}
		}()
	}
	if *benchMany {
		since = restart
		_, ok := waitAgents(allUp, 120*time.Second)
		fmt.Printf("%d leaves after SIGKILL and restart of the root: every leaf connected again after %v (%v); leaves with an SSH tunnel for sessions: %d\n",
			len(agents), time.Since(restart).Round(10*time.Millisecond), ok, withBulk())
	}
	back := root.stats(b, func(s rootStat) bool { return s.tunnels >= int64(n) }, 120*time.Second)
	allBack := time.Since(restart)
	if os.Getenv("TETHER_BENCH_TRACE") != "" {
		for _, s := range back {
			fmt.Printf("  +%v tunnels %d connects %d\n", s.at.Sub(restart).Round(10*time.Millisecond), s.tunnels, s.conns)
		}
	}
	// Peak reconnects per second over a sliding 1 s window of the 100 ms samples.
	var peak int64
	for i := range back {
		for j := i; j < len(back) && back[j].at.Sub(back[i].at) <= time.Second; j++ {
			peak = max(peak, back[j].conns-back[i].conns)
		}
	}
	if len(back) > 0 {
		peak = max(peak, back[0].conns) // all in the first sample
	}
	fmt.Printf("%d leaves (%s, heartbeat %v) on one root process: all %d tunnels connected in %v; at rest: root RSS %.0f MiB (target ≤ 200: %s), CPU %.2f cores (target < 0.5: %s)\n",
		len(agents), kind, *benchBeat, n, connectTime.Round(time.Millisecond), float64(peakRSS)/1024, met(peakRSS <= 200*1024), cores, met(cores < 0.5))
	fmt.Printf("%d leaves after SIGKILL and restart of the root: all %d tunnels back in %v (target ≤ 5 s: %s), peak %d reconnects/s\n",
		len(agents), n, allBack.Round(time.Millisecond), met(allBack <= 5*time.Second), peak)
}

var _ = errors.New
