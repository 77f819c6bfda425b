package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/internal/testenv"
)

var (
	sshBench  = flag.Bool("tether.sshbench", false, "run TestSSHFigures, the SSH access path's figures for make bench")
	scpOnly   = flag.Bool("tether.scponly", false, "TestSSHFigures: only the scp figures")
	scpRounds = flag.Int("tether.scprounds", 1, "TestSSHFigures: rounds of the scp figures (through, tether scp, direct interleaved)")
	scpPerf   = flag.String("tether.perf", "", "TestSSHFigures: record the whole machine with perf record -a -g into this file during the first OpenSSH scp through the path")
	carrier   = flag.String("tether.carrier", "", "TestSSHFigures: the tunnel's carrier: empty (tetherd's default: QUIC, with user sessions over the SSH tunnel the leaf keeps beside it), quic (QUIC only: the leaf sets tunnel_bulk_ssh false) or ssh (the root serves the SSH fallback only)")
	scpCipher = flag.String("tether.scpcipher", "", "TestSSHFigures: an extra figure, not the target's: OpenSSH scp through the path asks for this cipher (-c) instead of its default (aes128-gcm@openssh.com is what tether config's Ciphers line makes OpenSSH choose)")
	scpNReq   = flag.Int("tether.scpnrequests", 0, "TestSSHFigures: an extra figure, not the target's: OpenSSH scp through the path keeps this many SFTP requests in flight (-X nrequests=N; OpenSSH's default 64)")
	scpPprof  = flag.String("tether.pprof", "", "TestSSHFigures: run root and leaf with --debug and a diagnostic address, and write their CPU profiles during the first OpenSSH scp through the path into this directory (root.pprof, leaf.pprof)")
)

// directClient is what plain OpenSSH needs to reach the test sshd straight: a key with a
// certificate of the cluster's openssh CA (a user's login certificate is refused), and a
// known_hosts line trusting its host CA.
type directClient struct {
	key, knownHosts, port string
}

func (c *sshCluster) direct(t *testing.T) directClient {
	t.Helper()
	return newDirectClient(t, filepath.Join(c.root.dataDir, "ca"), c.login, c.sshdAddr)
}

// newDirectClient issues a key for login from the cluster CAs in caDir, for plain
// OpenSSH to reach the sshd at addr (registered as node1) straight.
func newDirectClient(t *testing.T, caDir, login, addr string) directClient {
	t.Helper()
	cas, err := ca.LoadCluster(caDir)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	spub, _ := ssh.NewPublicKey(pub)
	// The baseline connects as the enforcement point would: the sshd trusts only the
	// openssh CA, whose certificates carry NodeAccess.
	cert, err := cas.OpenSSH.IssueUser(ca.UserCertRequest{PublicKey: spub, Username: "direct", Logins: []string{login}, TTL: time.Hour, MaxTTL: time.Hour, NodeAccess: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	d := directClient{key: filepath.Join(dir, "k"), knownHosts: filepath.Join(dir, "known_hosts")}
	_, d.port, _ = net.SplitHostPort(addr)
	for path, data := range map[string][]byte{
		d.key:               pem.EncodeToMemory(blk),
		d.key + "-cert.pub": ssh.MarshalAuthorizedKey(cert),
		d.knownHosts:        []byte("@cert-authority node1 " + string(ssh.MarshalAuthorizedKey(cas.Host.SigningKey()))),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func (d directClient) sshArgs() []string {
	return []string{"-i", d.key, "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=" + d.knownHosts, "-o", "HostKeyAlias=node1", "-p", d.port}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// TestSSHFigures prints the SSH access path's figures (make bench) through issue 10's
// whole path: a root and a leaf tetherd (real processes, tunnel up), an OpenSSH sshd
// registered on the leaf as node1. (a) tether ssh --cluster=leaf login@node1 true against
// plain OpenSSH ssh straight to the same sshd (medians); (b) 20 concurrent OpenSSH
// sessions through tether proxy ssh --cluster=leaf against 20 direct (wall time); (c) scp
// of 256 MiB through the path (OpenSSH's scp with the ProxyCommand, and tether scp)
// against direct scp.
func TestSSHFigures(t *testing.T) {
	if !*sshBench {
		t.Skip("a benchmark: run with -args -tether.sshbench (make bench)")
	}
	var rootArgs, leafArgs []string
	rootDiag, leafDiag := "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	if *scpPprof != "" {
		rootArgs, leafArgs = []string{"--debug", "--diag-addr=" + rootDiag}, []string{"--debug", "--diag-addr=" + leafDiag}
	}
	rcTransport, leafStatus := *carrier, "connected over "+*carrier
	switch *carrier {
	case "":
		// Idle, the leaf holds the QUIC tunnel alone; a session opens the SSH one.
		rcTransport, leafStatus = "quic", "connected over quic (ssh for sessions: idle)"
	case "quic":
		t.Setenv("TETHER_PROXY_TUNNEL_BULK_SSH", "false")
	case "ssh":
		t.Setenv("TETHER_PROXY_TUNNEL_DISABLE_QUIC", "true")
	default:
		t.Fatalf("-tether.carrier=%s: empty, quic or ssh", *carrier)
	}
	p := newLeafPathWith(t, rootArgs, leafArgs)
	if out := p.root.ctl(t, p.tetherctl, "get", "rc", "--format", "text"); !strings.Contains(out, " "+rcTransport) {
		t.Fatalf("the tunnel is not over %s:\n%s", rcTransport, out)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if out := p.leaf.ctl(t, p.tetherctl, "status"); !strings.Contains(out, leafStatus) {
			return fmt.Errorf("leaf status does not say %q:\n%s", leafStatus, out)
		}
		return nil
	})
	t.Logf("tunnel carrier: %s", leafStatus)
	d := newDirectClient(t, filepath.Join(p.leaf.dataDir, "ca"), p.login, p.sshdAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	run := func(cmd *exec.Cmd) {
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
		}
	}
	direct := func(args ...string) *exec.Cmd {
		all := []string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ControlPath=none", "-o", "IdentityAgent=none",
			"-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no"}
		return exec.CommandContext(ctx, p.ssh, append(append(all, d.sshArgs()...), args...)...)
	}
	leafFlag := "--cluster=" + p.leafName
	if !*scpOnly {
		// One warm-up of each, so neither side pays a cold cache in the figures.
		run(p.tether(ctx, nil, "ssh", leafFlag, p.target(), "true"))
		run(direct(p.login+"@127.0.0.1", "true"))
		const n = 10
		var through, straight []time.Duration
		for range n {
			start := time.Now()
			run(p.tether(ctx, nil, "ssh", leafFlag, p.target(), "true"))
			through = append(through, time.Since(start))
			start = time.Now()
			run(direct(p.login+"@127.0.0.1", "true"))
			straight = append(straight, time.Since(start))
		}
		mt, md := median(through), median(straight)
		t.Logf("FIGURE tether ssh --cluster=leaf node true (root -> tunnel -> leaf -> OpenSSH node): median %v over %d runs; direct OpenSSH ssh: median %v; ratio %.2f (target <= 2)",
			mt.Round(time.Millisecond), n, md.Round(time.Millisecond), float64(mt)/float64(md))

		parallel := func(mk func(i int) *exec.Cmd) time.Duration {
			start := time.Now()
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					run(mk(i))
				}()
			}
			wg.Wait()
			return time.Since(start)
		}
		pt := parallel(func(int) *exec.Cmd { return p.openssh(ctx, p.login+"@node1."+p.leafName, "true") })
		pd := parallel(func(int) *exec.Cmd { return direct(p.login+"@127.0.0.1", "true") })
		t.Logf("FIGURE 20 concurrent ssh -o ProxyCommand=\"tether proxy ssh --cluster=leaf\" true: %v wall; 20 direct: %v; ratio %.2f",
			pt.Round(time.Millisecond), pd.Round(time.Millisecond), float64(pt)/float64(pd))
	}

	if *carrier == "" {
		if *scpOnly {
			t.Logf("a session first, so the SSH tunnel for sessions is up, as for a user who is working")
			run(p.tether(ctx, nil, "ssh", leafFlag, p.target(), "true"))
		}
		const up = "connected over quic (+ssh for sessions)"
		testenv.Eventually(t, 30*time.Second, func() error {
			if out := p.leaf.ctl(t, p.tetherctl, "status"); !strings.Contains(out, up) {
				return fmt.Errorf("leaf status does not say %q:\n%s", up, out)
			}
			return nil
		})
		t.Logf("tunnel carrier for the scp figures: %s", up)
	}

	scp := testenv.Command(t, "scp")
	dir := t.TempDir()
	src := filepath.Join(dir, "256MiB")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, 256<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// phased runs cmd and splits its wall time at the first byte written to dst (the
	// connection's setup: ssh, tether proxy, the hops' handshakes and decisions, sftp's
	// start) from the data phase, and gives the machine's busy share in the data phase.
	phased := func(cmd *exec.Cmd, dst string) (wall, setup time.Duration, dataBusy float64) {
		_ = os.Remove(dst)
		start := time.Now()
		w := watchFirstByte(ctx, dst, start)
		run(cmd)
		wall = time.Since(start)
		b1, _, a1 := machineCPU(t)
		setup, b0, a0 := w()
		if setup > 0 && a1 > a0 {
			dataBusy = float64(b1-b0) / float64(a1-a0)
		}
		return wall, setup, dataBusy
	}
	keys := filepath.Join(p.profile, "keys", "127.0.0.1")
	scpBase := []string{"-q", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ControlPath=none", "-o", "IdentityAgent=none", "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes"}
	mib := func(d time.Duration) float64 { return 256 / d.Seconds() }
	perMiB := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / 256 }
	// The path as README shows it: OpenSSH with the block tether config prints (its Ciphers
	// line puts AES-GCM first), beside a direct scp that asks for the same cipher.
	out, err := p.tether(ctx, nil, "config").Output()
	if err != nil {
		t.Fatalf("tether config: %v", err)
	}
	sshConfig := filepath.Join(dir, "ssh_config")
	if err := os.WriteFile(sshConfig, out, 0o600); err != nil {
		t.Fatal(err)
	}
	var ratiosThrough, ratiosTether, ratiosConfig, ratiosOverSSH, cpuOverSSH, cpuOverTLS []float64
	for round := range *scpRounds {
		throughBase := scpBase
		if *scpCipher != "" {
			throughBase = append([]string{"-c", *scpCipher}, throughBase...)
		}
		if *scpNReq > 0 {
			throughBase = append([]string{"-X", fmt.Sprintf("nrequests=%d", *scpNReq)}, throughBase...)
		}
		// stream is how tether proxy ssh reaches the proxy: tls (the default) or ssh (the
		// SSH entry's subsystem, the earlier design, for the figure beside it).
		scpThroughBy := func(stream, to string) *exec.Cmd {
			cmd := exec.CommandContext(ctx, scp, append(throughBase,
				"-o", fmt.Sprintf("ProxyCommand=%s proxy ssh --cluster=%s %%r@%%h:%%p", p.alice.bin, p.leafName),
				"-o", "UserKnownHostsFile="+filepath.Join(p.profile, "known_hosts"),
				"-o", "IdentitiesOnly=yes", "-i", filepath.Join(keys, "alice"), "-o", "CertificateFile="+filepath.Join(keys, "alice-cert.pub"),
				src, p.login+"@node1."+p.leafName+":"+to)...)
			cmd.Env = append(os.Environ(), "TETHER_HOME="+p.profile, nodeStreamEnv+"="+stream)
			return cmd
		}
		scpThrough := scpThroughBy("tls", filepath.Join(dir, "through"))
		var perf *exec.Cmd
		if *scpPerf != "" && round == 0 {
			perf = startPerf(t, *scpPerf)
		}
		proxyCPU := watchCPU(ctx, p.alice.bin, "proxy")
		var profiles sync.WaitGroup
		if *scpPprof != "" && round == 0 {
			for name, addr := range map[string]string{"root": rootDiag, "leaf": leafDiag} {
				profiles.Add(1)
				go func() {
					defer profiles.Done()
					fetchProfile(t, addr, filepath.Join(*scpPprof, name+".pprof"), 4*time.Second)
				}()
			}
		}
		rootCPU, leafCPU := cpuTime(t, p.root.pid), cpuTime(t, p.leaf.pid)
		rootFlt, leafFlt := minorFaults(p.root.pid), minorFaults(p.leaf.pid)
		busy0, steal0, all0 := machineCPU(t)
		st, stSetup, stBusy := phased(scpThrough, filepath.Join(dir, "through"))
		busy1, steal1, all1 := machineCPU(t)
		rootCPU, leafCPU = cpuTime(t, p.root.pid)-rootCPU, cpuTime(t, p.leaf.pid)-leafCPU
		rootFlt, leafFlt = minorFaults(p.root.pid)-rootFlt, minorFaults(p.leaf.pid)-leafFlt
		proxy, proxyPIDs := proxyCPU()
		profiles.Wait()
		if *scpPprof != "" && round == 0 {
			for name, addr := range map[string]string{"root": rootDiag, "leaf": leafDiag} {
				fetchPprof(t, addr, "allocs", filepath.Join(*scpPprof, name+".allocs"))
			}
			// At debug level each hop logs the cipher it negotiated.
			for name, log := range map[string]string{"root": p.root.log.String(), "leaf": p.leaf.log.String()} {
				for _, line := range strings.Split(log, "\n") {
					if strings.Contains(line, "cipher=") {
						t.Logf("%s: %s", name, line)
					}
				}
			}
		}
		client := scpThrough.ProcessState.UserTime() + scpThrough.ProcessState.SystemTime()
		if perf != nil {
			stopPerf(t, perf)
		}
		if *scpPprof != "" && round == 0 {
			t.Logf("tether proxy pids %v", proxyPIDs)
		}
		tetherScp := p.tether(ctx, nil, "scp", "-q", leafFlag, src, p.target()+":"+filepath.Join(dir, "tether"))
		tRootCPU, tLeafCPU := cpuTime(t, p.root.pid), cpuTime(t, p.leaf.pid)
		tt, ttSetup, _ := phased(tetherScp, filepath.Join(dir, "tether"))
		tRootCPU, tLeafCPU = cpuTime(t, p.root.pid)-tRootCPU, cpuTime(t, p.leaf.pid)-tLeafCPU
		tClient := tetherScp.ProcessState.UserTime() + tetherScp.ProcessState.SystemTime()
		directScp := exec.CommandContext(ctx, scp, append(append(scpBase, "-i", d.key, "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile="+d.knownHosts, "-o", "HostKeyAlias=node1", "-P", d.port),
			src, p.login+"@127.0.0.1:"+filepath.Join(dir, "direct"))...)
		sd, sdSetup, sdBusy := phased(directScp, filepath.Join(dir, "direct"))
		dClient := directScp.ProcessState.UserTime() + directScp.ProcessState.SystemTime()
		t.Logf("FIGURE scp 256 MiB through root -> leaf -> node (OpenSSH scp, ProxyCommand): %.1f MiB/s (%v); tether scp: %.1f MiB/s (%v); direct scp: %.1f MiB/s (%v); through/direct %.0f%%, tether scp/direct %.0f%% (target >= 50%%)",
			mib(st), st.Round(time.Millisecond), mib(tt), tt.Round(time.Millisecond), mib(sd), sd.Round(time.Millisecond), 100*mib(st)/mib(sd), 100*mib(tt)/mib(sd))
		t.Logf("FIGURE scp 256 MiB through the path, CPU: root tetherd %v (%.1f ms/MiB), leaf tetherd %v (%.1f ms/MiB), scp + ssh %v (%.1f ms/MiB), tether proxy %v (%.1f ms/MiB), against %v wall",
			rootCPU.Round(time.Millisecond), perMiB(rootCPU), leafCPU.Round(time.Millisecond), perMiB(leafCPU),
			client.Round(time.Millisecond), perMiB(client), proxy.Round(time.Millisecond), perMiB(proxy), st.Round(time.Millisecond))
		t.Logf("FIGURE tether scp CPU: root tetherd %.1f ms/MiB, leaf tetherd %.1f ms/MiB, tether scp %.1f ms/MiB; direct scp client side (scp + ssh) %.1f ms/MiB",
			perMiB(tRootCPU), perMiB(tLeafCPU), perMiB(tClient), perMiB(dClient))
		t.Logf("FIGURE machine during the OpenSSH scp through the path: busy %.2f of %d CPUs (%.0f%%), steal %.0f%%",
			float64(runtime.NumCPU())*float64(busy1-busy0)/float64(all1-all0), runtime.NumCPU(), 100*float64(busy1-busy0)/float64(all1-all0), 100*float64(steal1-steal0)/float64(all1-all0))
		t.Logf("FIGURE page faults during the OpenSSH scp through the path: root tetherd %.0f per MiB, leaf tetherd %.0f per MiB", float64(rootFlt)/256, float64(leafFlt)/256)
		t.Logf("FIGURE phases (setup = until the first byte reaches the node's file): through setup %v, data %.1f MiB/s, machine busy in data %.0f%%; tether scp setup %v, data %.1f MiB/s; direct setup %v, data %.1f MiB/s, machine busy in data %.0f%%; data-phase through/direct %.0f%%",
			stSetup.Round(time.Millisecond), 256/(st-stSetup).Seconds(), 100*stBusy, ttSetup.Round(time.Millisecond), 256/(tt-ttSetup).Seconds(),
			sdSetup.Round(time.Millisecond), 256/(sd-sdSetup).Seconds(), 100*sdBusy, 100*(sd-sdSetup).Seconds()/(st-stSetup).Seconds())
		ratiosThrough = append(ratiosThrough, mib(st)/mib(sd))
		ratiosTether = append(ratiosTether, mib(tt)/mib(sd))

		scpOverSSH := scpThroughBy("ssh", filepath.Join(dir, "through-ssh"))
		sProxyCPU := watchCPU(ctx, p.alice.bin, "proxy")
		sRootCPU, sLeafCPU := cpuTime(t, p.root.pid), cpuTime(t, p.leaf.pid)
		ss, _, _ := phased(scpOverSSH, filepath.Join(dir, "through-ssh"))
		sRootCPU, sLeafCPU = cpuTime(t, p.root.pid)-sRootCPU, cpuTime(t, p.leaf.pid)-sLeafCPU
		sProxy, _ := sProxyCPU()
		sClient := scpOverSSH.ProcessState.UserTime() + scpOverSSH.ProcessState.SystemTime()
		ratiosOverSSH = append(ratiosOverSSH, mib(ss)/mib(sd))
		cpuOverSSH = append(cpuOverSSH, perMiB(sRootCPU+sLeafCPU+sProxy+sClient))
		cpuOverTLS = append(cpuOverTLS, perMiB(rootCPU+leafCPU+proxy+client))
		t.Logf("FIGURE scp 256 MiB through the path with tether proxy ssh over the proxy's SSH entry (%s=ssh, the earlier design): %.1f MiB/s, %.0f%% of direct; the TLS stream above is %.2fx it; CPU root %.1f, leaf %.1f, tether proxy %.1f, scp + ssh %.1f ms/MiB (the TLS stream: %.1f, %.1f, %.1f, %.1f)",
			nodeStreamEnv, mib(ss), 100*mib(ss)/mib(sd), mib(st)/mib(ss), perMiB(sRootCPU), perMiB(sLeafCPU), perMiB(sProxy), perMiB(sClient),
			perMiB(rootCPU), perMiB(leafCPU), perMiB(proxy), perMiB(client))

		scpConfig := exec.CommandContext(ctx, scp, "-q", "-F", sshConfig, "-o", "BatchMode=yes", "-o", "ControlPath=none", "-o", "IdentityAgent=none",
			src, p.login+"@node1."+p.leafName+":"+filepath.Join(dir, "config"))
		scpConfig.Env = append(os.Environ(), "TETHER_HOME="+p.profile)
		sc, _, _ := phased(scpConfig, filepath.Join(dir, "config"))
		directSame := exec.CommandContext(ctx, scp, append(append([]string{"-c", "aes128-gcm@openssh.com"}, scpBase...), "-i", d.key, "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile="+d.knownHosts, "-o", "HostKeyAlias=node1", "-P", d.port,
			src, p.login+"@127.0.0.1:"+filepath.Join(dir, "direct"))...)
		sds, _, _ := phased(directSame, filepath.Join(dir, "direct"))
		ratiosConfig = append(ratiosConfig, mib(sc)/mib(sds))
		t.Logf("FIGURE scp 256 MiB with tether config's ssh_config (scp -F FILE LOGIN@node1.%s:, AES-GCM first): %.1f MiB/s; direct scp -c aes128-gcm@openssh.com: %.1f MiB/s; ratio %.0f%% (against the direct scp above: %.0f%%)",
			p.leafName, mib(sc), mib(sds), 100*mib(sc)/mib(sds), 100*mib(sc)/mib(sd))
	}
	if len(ratiosThrough) > 1 {
		t.Logf("FIGURE scp over %d rounds: through/direct median %.0f%% (%s), tether scp/direct median %.0f%% (%s), tether config's ssh_config/direct with the same cipher median %.0f%% (%s); through over the SSH entry (earlier design)/direct median %.0f%% (%s)",
			len(ratiosThrough), 100*medianF(ratiosThrough), percents(ratiosThrough), 100*medianF(ratiosTether), percents(ratiosTether),
			100*medianF(ratiosConfig), percents(ratiosConfig), 100*medianF(ratiosOverSSH), percents(ratiosOverSSH))
		t.Logf("FIGURE scp through the path, CPU of the four processes per MiB over %d rounds: node stream (TLS) median %.1f ms/MiB, SSH entry median %.1f ms/MiB",
			len(cpuOverTLS), medianF(cpuOverTLS), medianF(cpuOverSSH))
	}
	fmt.Println()
}

func medianF(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func percents(xs []float64) string {
	ps := make([]string, len(xs))
	for i, x := range xs {
		ps[i] = fmt.Sprintf("%.0f%%", 100*x)
	}
	return strings.Join(ps, " ")
}

// watchCPU samples, every 50 ms until the returned function is called, the CPU time of
// every process whose command line starts with bin and has arg as its second word (such
// as tether proxy ssh, started by OpenSSH and reaped by it), and returns their total as
// last seen (within one sample interval of the truth) and their pids.
func watchCPU(ctx context.Context, bin, arg string) func() (time.Duration, []int) {
	ctx, cancel := context.WithCancel(ctx)
	seen := map[int]time.Duration{}
	var pids []int
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			dirs, _ := os.ReadDir("/proc")
			for _, e := range dirs {
				pid, err := strconv.Atoi(e.Name())
				if err != nil {
					continue
				}
				cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				if err != nil {
					continue
				}
				args := strings.Split(string(cmdline), "\x00")
				if len(args) < 2 || args[0] != bin || args[1] != arg {
					continue
				}
				if c, ok := procCPU(pid); ok {
					if _, ok := seen[pid]; !ok {
						pids = append(pids, pid)
					}
					seen[pid] = c
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() (time.Duration, []int) {
		cancel()
		<-done
		var total time.Duration
		for _, c := range seen {
			total += c
		}
		return total, pids
	}
}

// fetchProfile writes a CPU profile of d from the tetherd diagnostic server at addr.
func fetchProfile(t *testing.T, addr, file string, d time.Duration) {
	fetchPprof(t, addr, fmt.Sprintf("profile?seconds=%d", int(d.Seconds())), file)
}

// fetchPprof writes /debug/pprof/<what> of the tetherd diagnostic server at addr.
func fetchPprof(t *testing.T, addr, what, file string) {
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Get(fmt.Sprintf("http://%s/debug/pprof/%s", addr, what))
	if err != nil {
		t.Errorf("profile of %s: %v", addr, err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Errorf("profile of %s: %d %s", addr, resp.StatusCode, body)
		return
	}
	if err := os.WriteFile(file, body, 0o644); err != nil {
		t.Error(err)
	}
}

// startPerf records every CPU's call stacks into file until stopPerf.
func startPerf(t *testing.T, file string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("perf", "record", "-a", "-g", "-F", "499", "-o", file)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("perf record: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	return cmd
}

func stopPerf(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	_ = cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Logf("perf record: %v", err)
	}
}

// procCPU is the user + system CPU time process pid has used, false once it is gone.
func procCPU(pid int) (time.Duration, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return time.Duration(utime+stime) * time.Second / 100, true
}

// machineCPU reads the machine's CPU time counters (/proc/stat, all CPUs): busy (user,
// nice, system, irq, softirq), steal, and the total.
func machineCPU(t *testing.T) (busy, steal, total int64) {
	t.Helper()
	busy, steal, total, err := readMachineCPU()
	if err != nil {
		t.Fatal(err)
	}
	return busy, steal, total
}

func readMachineCPU() (busy, steal, total int64, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	f := strings.Fields(strings.SplitN(string(data), "\n", 2)[0])[1:]
	v := make([]int64, len(f))
	for i := range f {
		v[i], _ = strconv.ParseInt(f[i], 10, 64)
		if i < 8 {
			total += v[i]
		}
	}
	// user nice system idle iowait irq softirq steal
	return v[0] + v[1] + v[2] + v[5] + v[6], v[7], total, nil
}

// watchFirstByte polls dst's size every 2 ms from start until the returned function is
// called, which gives the time from start until dst first held a byte (0 when it never
// did) and the machine's CPU counters (machineCPU's busy and total) sampled then.
func watchFirstByte(ctx context.Context, dst string, start time.Time) func() (time.Duration, int64, int64) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var first time.Duration
	var busy, total int64
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			if fi, err := os.Stat(dst); err == nil && fi.Size() > 0 {
				first = time.Since(start)
				busy, _, total, _ = readMachineCPU()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() (time.Duration, int64, int64) {
		cancel()
		<-done
		return first, busy, total
	}
}

// minorFaults is the count of minor page faults process pid has taken (Linux /proc).
func minorFaults(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	n, _ := strconv.ParseInt(f[7], 10, 64)
	return n
}

// cpuTime is the user + system CPU time process pid has used (Linux /proc).
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}
