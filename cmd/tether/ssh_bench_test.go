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
	cas, err := ca.LoadCluster(filepath.Join(c.root.dataDir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	spub, _ := ssh.NewPublicKey(pub)
	cert, err := cas.User.IssueUser(ca.UserCertRequest{PublicKey: spub, Username: "direct", Logins: []string{c.login}, TTL: time.Hour, MaxTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	d := directClient{key: filepath.Join(dir, "k"), knownHosts: filepath.Join(dir, "known_hosts")}
	_, d.port, _ = net.SplitHostPort(c.sshdAddr)
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

// TestSSHFigures prints the SSH access path's figures (make bench): tether ssh against
// plain OpenSSH to the same sshd, 20 concurrent ProxyCommand sessions against 20 direct
// ones, and scp of 256 MiB through the proxy against direct scp. Within one cluster:
// the leaf hop of issue 10 (root → tunnel → leaf) is not wired yet.
func TestSSHFigures(t *testing.T) {
	if !*sshBench {
		t.Skip("a benchmark: run with -args -tether.sshbench (make bench)")
	}
	c := newSSHCluster(t)
	d := c.direct(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	run := func(cmd *exec.Cmd) {
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
		}
	}
	const n = 10
	var through, direct []time.Duration
	for range n {
		start := time.Now()
		cmd := exec.CommandContext(ctx, c.alice.bin, "ssh", "--cluster="+c.cluster, c.login+"@node1", "true")
		cmd.Env = append(os.Environ(), "TETHER_HOME="+c.profile)
		run(cmd)
		through = append(through, time.Since(start))
		start = time.Now()
		run(c.openssh(ctx, append(d.sshArgs(), c.login+"@127.0.0.1", "true")...))
		direct = append(direct, time.Since(start))
	}
	mt, md := median(through), median(direct)
	t.Logf("FIGURE tether ssh node true: median %v over %d runs; direct OpenSSH ssh: median %v; ratio %.2f", mt.Round(time.Millisecond), n, md.Round(time.Millisecond), float64(mt)/float64(md))

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
	pt := parallel(func(int) *exec.Cmd {
		return c.openssh(ctx, append(c.proxyCommandArgs(), c.login+"@node1."+c.cluster, "true")...)
	})
	pd := parallel(func(int) *exec.Cmd { return c.openssh(ctx, append(d.sshArgs(), c.login+"@127.0.0.1", "true")...) })
	t.Logf("FIGURE 20 concurrent ssh -o ProxyCommand=\"tether proxy ssh\" true: %v wall; 20 direct: %v; ratio %.2f", pt.Round(time.Millisecond), pd.Round(time.Millisecond), float64(pt)/float64(pd))

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
	cfgText, _, code := c.tether(t, "config")
	if code != 0 {
		t.Fatal("tether config failed")
	}
	cfg := writeTemp(t, cfgText)
	scpRun := func(args ...string) time.Duration {
		cmd := exec.CommandContext(ctx, scp, append([]string{"-q", "-o", "BatchMode=yes", "-o", "ControlPath=none", "-o", "IdentityAgent=none", "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes"}, args...)...)
		cmd.Env = append(os.Environ(), "TETHER_HOME="+c.profile)
		start := time.Now()
		run(cmd)
		return time.Since(start)
	}
	st := scpRun("-F", cfg, src, c.login+"@node1."+c.cluster+":"+filepath.Join(dir, "through"))
	sd := scpRun(append([]string{"-i", d.key, "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=" + d.knownHosts, "-o", "HostKeyAlias=node1", "-P", d.port}, src, c.login+"@127.0.0.1:"+filepath.Join(dir, "direct"))...)
	mib := func(d time.Duration) float64 { return 256 / d.Seconds() }
	t.Logf("FIGURE scp 256 MiB through the proxy: %.1f MiB/s (%v); direct: %.1f MiB/s (%v); through/direct %.0f%%", mib(st), st.Round(time.Millisecond), mib(sd), sd.Round(time.Millisecond), 100*mib(st)/mib(sd))
	fmt.Println()
}
