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
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/internal/testenv"
)

var sshBench = flag.Bool("tether.sshbench", false, "run TestSSHFigures, the SSH access path's figures for make bench")

// directClient is what plain OpenSSH needs to reach the test sshd straight: a key with a
// certificate of the cluster's user CA, and a known_hosts line trusting its host CA.
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
	cert, err := cas.User.IssueUser(ca.UserCertRequest{PublicKey: spub, Username: "direct", Logins: []string{login}, TTL: time.Hour, MaxTTL: time.Hour})
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
	p := newLeafPath(t)
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
	timed := func(cmd *exec.Cmd) time.Duration {
		start := time.Now()
		run(cmd)
		return time.Since(start)
	}
	keys := filepath.Join(p.profile, "keys", "127.0.0.1")
	scpBase := []string{"-q", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ControlPath=none", "-o", "IdentityAgent=none", "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes"}
	scpThrough := exec.CommandContext(ctx, scp, append(scpBase,
		"-o", fmt.Sprintf("ProxyCommand=%s proxy ssh --cluster=%s %%r@%%h:%%p", p.alice.bin, p.leafName),
		"-o", "UserKnownHostsFile="+filepath.Join(p.profile, "known_hosts"),
		"-o", "IdentitiesOnly=yes", "-i", filepath.Join(keys, "alice"), "-o", "CertificateFile="+filepath.Join(keys, "alice-cert.pub"),
		src, p.login+"@node1."+p.leafName+":"+filepath.Join(dir, "through"))...)
	scpThrough.Env = append(os.Environ(), "TETHER_HOME="+p.profile)
	rootCPU, leafCPU := cpuTime(t, p.root.pid), cpuTime(t, p.leaf.pid)
	st := timed(scpThrough)
	rootCPU, leafCPU = cpuTime(t, p.root.pid)-rootCPU, cpuTime(t, p.leaf.pid)-leafCPU
	tt := timed(p.tether(ctx, nil, "scp", "-q", leafFlag, src, p.target()+":"+filepath.Join(dir, "tether")))
	sd := timed(exec.CommandContext(ctx, scp, append(append(scpBase, "-i", d.key, "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile="+d.knownHosts, "-o", "HostKeyAlias=node1", "-P", d.port),
		src, p.login+"@127.0.0.1:"+filepath.Join(dir, "direct"))...))
	mib := func(d time.Duration) float64 { return 256 / d.Seconds() }
	t.Logf("FIGURE scp 256 MiB through root -> leaf -> node (OpenSSH scp, ProxyCommand): %.1f MiB/s (%v); tether scp: %.1f MiB/s (%v); direct scp: %.1f MiB/s (%v); through/direct %.0f%%, tether scp/direct %.0f%% (target >= 50%%)",
		mib(st), st.Round(time.Millisecond), mib(tt), tt.Round(time.Millisecond), mib(sd), sd.Round(time.Millisecond), 100*mib(st)/mib(sd), 100*mib(tt)/mib(sd))
	t.Logf("FIGURE scp 256 MiB through the path, CPU of the gateways: root tetherd %v (%.1f ms/MiB), leaf tetherd %v (%.1f ms/MiB), against %v wall",
		rootCPU.Round(time.Millisecond), float64(rootCPU.Milliseconds())/256, leafCPU.Round(time.Millisecond), float64(leafCPU.Milliseconds())/256, st.Round(time.Millisecond))
	fmt.Println()
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
