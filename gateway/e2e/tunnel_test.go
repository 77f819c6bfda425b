package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/internal/testproc"
	"github.com/tetherproject/tether/state/redistest"
)

// daemon is a tetherd process that can be killed and started again on the same
// configuration, data directory and ports.
type daemon struct {
	t                     *testing.T
	bin, name, cfg        string
	dataDir, addr, tunnel string
	stderr                *testenv.Buffer
	cmd                   *exec.Cmd
	args                  []string
}

func newDaemon(t *testing.T, bin, name, extra string, args ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	// The tunnel is left at its default: the web port (TCP through the mux, QUIC on UDP).
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := &daemon{t: t, bin: bin, name: name, dataDir: filepath.Join(dir, "data"), args: args, addr: addr, tunnel: addr}
	d.cfg = filepath.Join(dir, "tether.yaml")
	body := fmt.Sprintf("cluster_name: %s\ndata_dir: %s\nproxy:\n  web_listen_addr: %s\n%s", name, d.dataDir, d.addr, extra)
	if err := os.WriteFile(d.cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.stop(syscall.SIGTERM) })
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	d.stderr = &testenv.Buffer{}
	d.cmd = exec.Command(d.bin, append([]string{"start", "-c", d.cfg}, d.args...)...)
	d.cmd.Stderr, d.cmd.Stdout = d.stderr, d.stderr
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	testenv.Eventually(d.t, 20*time.Second, func() error {
		if !strings.Contains(d.stderr.String(), "tetherd running") {
			return fmt.Errorf("%s not running yet:\n%s", d.name, d.stderr)
		}
		return nil
	})
}

func (d *daemon) stop(sig syscall.Signal) {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(sig)
	_ = d.cmd.Wait()
	d.cmd = nil
}

func (d *daemon) proc() *proc {
	return &proc{name: d.name, dataDir: d.dataDir, addr: d.addr, stderr: d.stderr}
}

func (d *daemon) ctl(t *testing.T, ctlBin string, args ...string) string {
	t.Helper()
	return mustCtl(t, ctlBin, d.proc(), args...)
}

// waitRC polls `tetherctl get rc` on the root until every want substring is there.
func waitRC(t *testing.T, ctlBin string, root *daemon, within time.Duration, want ...string) string {
	t.Helper()
	var out string
	testenv.Eventually(t, within, func() error {
		o, err := ctl(t, ctlBin, root.proc(), "get", "rc", "--format", "text")
		if err != nil {
			return fmt.Errorf("%v: %s", err, o)
		}
		out = o
		for _, w := range want {
			if !strings.Contains(o, w) {
				return fmt.Errorf("get rc --format text:\n%s\nwant %q", o, w)
			}
		}
		return nil
	})
	return out
}

func joinLeaf(t *testing.T, ctlBin string, root, leaf *daemon, rootName string) string {
	t.Helper()
	m := tokenRE.FindStringSubmatch(root.ctl(t, ctlBin, "tokens", "add", "--type=trusted_cluster", "--ttl=5m"))
	if m == nil {
		t.Fatal("no token printed")
	}
	tc := fmt.Sprintf("kind: trusted_cluster\nversion: v2\nmetadata:\n  name: %s\nspec:\n  enabled: true\n  token: %s\n  tunnel_addr: %s\n  web_proxy_addr: %s\n  role_map:\n    - remote: \"access\"\n      local: [\"access\"]\n", rootName, m[1], root.tunnel, root.addr)
	leaf.ctl(t, ctlBin, "create", file(t, tc))
	return leaf.ctl(t, ctlBin, "get", "trusted_cluster/"+rootName)
}

// The seed guide with real processes: the leaf's tunnel comes up over QUIC, `get rc`
// shows it; disabling the trust takes it offline within seconds and stops the leaf's
// agent; re-enabling brings it back; a root killed with SIGKILL and started again gets
// the leaf back.
func TestTunnelBetweenProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and starts processes")
	}
	tetherd, tetherctl := build(t, t.TempDir())
	root := newDaemon(t, tetherd, "rootcluster.example.com", "")
	root.start()
	leaf := newDaemon(t, tetherd, "leafcluster.example.com", "", "--insecure")
	leaf.start()

	if got := testproc.PingTunnelAddr(t, root.addr); got != root.tunnel {
		t.Fatalf("/webapi/ping advertises the tunnel at %s, it listens at %s", got, root.tunnel)
	}
	tc := joinLeaf(t, tetherctl, root, leaf, "rootcluster.example.com")
	waitRC(t, tetherctl, root, 15*time.Second, "leafcluster.example.com online", "quic")
	yaml := root.ctl(t, tetherctl, "get", "rc/leafcluster.example.com")
	if !strings.Contains(yaml, "connection: online") || !strings.Contains(yaml, "transport: quic") || !strings.Contains(yaml, "last_heartbeat:") {
		t.Fatalf("get rc:\n%s", yaml)
	}
	if st := leaf.ctl(t, tetherctl, "status"); !strings.Contains(st, "rootcluster.example.com: connected over quic") {
		t.Fatalf("leaf status:\n%s", st)
	}

	// Disabled: offline within seconds, and the leaf's agent is gone.
	leaf.ctl(t, tetherctl, "create", "--force", file(t, strings.Replace(tc, "enabled: true", "enabled: false", 1)))
	waitRC(t, tetherctl, root, 5*time.Second, "leafcluster.example.com offline")
	if st := leaf.ctl(t, tetherctl, "status"); strings.Contains(st, "\nTunnel ") {
		t.Fatalf("leaf still shows a tunnel after the trust was disabled:\n%s", st)
	}
	leaf.ctl(t, tetherctl, "create", "--force", file(t, tc))
	waitRC(t, tetherctl, root, 15*time.Second, "leafcluster.example.com online", "quic")

	// The root killed outright and started again: the leaf comes back.
	root.stop(syscall.SIGKILL)
	root.start()
	waitRC(t, tetherctl, root, 30*time.Second, "leafcluster.example.com online", "quic")
	if !strings.Contains(leaf.stderr.String(), "tunnel agent started") {
		t.Fatalf("leaf log:\n%s", leaf.stderr)
	}
}

// A root that serves no QUIC (proxy.tunnel_disable_quic): the leaf's agent finds UDP
// refused at the advertised port (the web port) and the tunnel runs over the SSH
// fallback, through the web port's mux.
func TestTunnelFallsBackToSSHWhenQUICIsUnreachable(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and starts processes")
	}
	tetherd, tetherctl := build(t, t.TempDir())
	root := newDaemon(t, tetherd, "rootcluster.example.com", "")
	// Same configuration with QUIC off, appended under proxy:.
	data, _ := os.ReadFile(root.cfg)
	if err := os.WriteFile(root.cfg, []byte(strings.Replace(string(data), "proxy:\n", "proxy:\n  tunnel_disable_quic: true\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	root.start()
	leaf := newDaemon(t, tetherd, "leafcluster.example.com", "", "--insecure")
	leaf.start()
	joinLeaf(t, tetherctl, root, leaf, "rootcluster.example.com")
	waitRC(t, tetherctl, root, 20*time.Second, "leafcluster.example.com online", " ssh")
	if st := leaf.ctl(t, tetherctl, "status"); !strings.Contains(st, "connected over ssh") {
		t.Fatalf("leaf status:\n%s", st)
	}
}

// Two root replicas sharing a real Redis (and the cluster's CAs): the leaf learns both
// from the one it was given and keeps a tunnel to each; with that one killed, its tunnel
// to the other stays up and the leaf stays online.
func TestTunnelToTwoRootReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and starts processes")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH: run make tools")
	}
	tetherd, tetherctl := build(t, t.TempDir())
	rd := redistest.Start(t, redistest.Config{})
	storage := fmt.Sprintf("storage:\n  type: redis\n  redis:\n    addr: %s\n    namespace: rootha\n", rd.Addr())
	a := newDaemon(t, tetherd, "rootcluster.example.com", storage)
	a.start()
	b := newDaemon(t, tetherd, "rootcluster.example.com", storage)
	// One cluster, one set of CAs: replica b uses a's.
	if err := os.MkdirAll(b.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(a.dataDir, "ca"), filepath.Join(b.dataDir, "ca")).CombinedOutput(); err != nil {
		t.Fatalf("copying the CAs: %v %s", err, out)
	}
	b.start()
	leaf := newDaemon(t, tetherd, "leafcluster.example.com", "", "--insecure")
	leaf.start()
	joinLeaf(t, tetherctl, a, leaf, "rootcluster.example.com")
	testenv.Eventually(t, 30*time.Second, func() error {
		st := leaf.ctl(t, tetherctl, "status")
		for _, ep := range []string{a.tunnel, b.tunnel} {
			if !strings.Contains(st, "connected over quic") || !strings.Contains(st, "to "+ep) {
				return fmt.Errorf("leaf status:\n%s\nwant a tunnel to %s", st, ep)
			}
		}
		if strings.Count(st, "connected over quic") != 2 {
			return fmt.Errorf("leaf status:\n%s\nwant two connected tunnels", st)
		}
		return nil
	})
	a.stop(syscall.SIGKILL)
	testenv.Eventually(t, 10*time.Second, func() error {
		st := leaf.ctl(t, tetherctl, "status")
		for _, line := range strings.Split(st, "\n") {
			if strings.Contains(line, "to "+b.tunnel) && strings.Contains(line, "connected over quic") {
				return nil
			}
		}
		return fmt.Errorf("leaf status:\n%s\nwant the tunnel to %s connected", st, b.tunnel)
	})
	waitRC(t, tetherctl, b, 5*time.Second, "leafcluster.example.com online")
}
