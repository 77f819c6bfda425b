package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/internal/testproc"
)

// build returns tetherd and tetherctl, built once per test run by testproc (the second
// argument is unused; testproc.Cleanup in TestMain removes them).
func build(t *testing.T, _ string) (tetherd, tetherctl string) {
	t.Helper()
	bins := testproc.Build(t)
	return bins.Tetherd, bins.Tetherctl
}

func TestMain(m *testing.M) {
	code := m.Run()
	testproc.Cleanup()
	os.Exit(code)
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type proc struct {
	name, dataDir, addr string
	stderr              *testenv.Buffer
}

func startTetherd(t *testing.T, bin, name string, args ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := filepath.Join(dir, "tether.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("cluster_name: %s\ndata_dir: %s/data\nproxy:\n  web_listen_addr: %s\n", name, dir, addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, dataDir: filepath.Join(dir, "data"), addr: addr, stderr: &testenv.Buffer{}}
	cmd := exec.Command(bin, append([]string{"start", "-c", cfg}, args...)...)
	cmd.Stderr = p.stderr
	cmd.Stdout = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("%s did not stop cleanly: %v\n%s", name, err, p.stderr)
		}
	})
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // readiness probe only
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get("https://" + addr + "/webapi/ping")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not come up: %v\n%s", name, err, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

func ctl(t *testing.T, bin string, p *proc, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--data-dir", p.dataDir)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustCtl(t *testing.T, bin string, p *proc, args ...string) string {
	t.Helper()
	out, err := ctl(t, bin, p, args...)
	if err != nil {
		t.Fatalf("%s: tetherctl %s: %v\n%s", p.name, strings.Join(args, " "), err, out)
	}
	return out
}

func file(t *testing.T, content string) string {
	p := filepath.Join(t.TempDir(), "r.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var tokenRE = regexp.MustCompile(`The cluster invite token: (\S+)`)

func TestTwoProcessesFollowTheSeedGuide(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and starts processes")
	}
	tetherd, tetherctl := build(t, t.TempDir())
	root := startTetherd(t, tetherd, "rootcluster.example.com")
	leaf := startTetherd(t, tetherd, "leafcluster.example.com", "--insecure")
	if !strings.Contains(leaf.stderr.String(), "INSECURE") {
		t.Fatalf("--insecure did not log a warning:\n%s", leaf.stderr)
	}

	mustCtl(t, tetherctl, leaf, "create", file(t, "kind: role\nversion: v5\nmetadata:\n  name: visitor\nspec:\n  allow:\n    logins: [visitor]\n    node_labels:\n      '*': '*'\n"))
	newToken := func() string {
		m := tokenRE.FindStringSubmatch(mustCtl(t, tetherctl, root, "tokens", "add", "--type=trusted_cluster", "--ttl=5m"))
		if m == nil {
			t.Fatal("no token printed")
		}
		return m[1]
	}
	tunnelAddr := testproc.PingTunnelAddr(t, root.addr)
	tcYAML := func(token string) string {
		return fmt.Sprintf("kind: trusted_cluster\nversion: v2\nmetadata:\n  name: rootcluster.example.com\nspec:\n  enabled: true\n  token: %s\n  tunnel_addr: %s\n  web_proxy_addr: %s\n  role_map:\n    - remote: \"access\"\n      local: [\"visitor\"]\n", token, tunnelAddr, root.addr)
	}
	token := newToken()
	mustCtl(t, tetherctl, leaf, "create", file(t, tcYAML(token)))
	if rc := mustCtl(t, tetherctl, root, "get", "rc"); !strings.Contains(rc, "name: leafcluster.example.com") {
		t.Fatalf("get rc:\n%s", rc)
	}
	mustCtl(t, tetherctl, root, "update", "rc/leafcluster.example.com", "--set-labels=env=demo")
	if rc := mustCtl(t, tetherctl, root, "get", "rc"); !strings.Contains(rc, "env: demo") {
		t.Fatalf("labels did not stick:\n%s", rc)
	}

	// Temporarily disable, then enable again.
	tc := mustCtl(t, tetherctl, leaf, "get", "trusted_cluster/rootcluster.example.com")
	mustCtl(t, tetherctl, leaf, "create", "--force", file(t, strings.Replace(tc, "enabled: true", "enabled: false", 1)))
	if out := mustCtl(t, tetherctl, leaf, "get", "tc", "--format", "json"); strings.Contains(out, `"enabled": true`) {
		t.Fatalf("still enabled:\n%s", out)
	}
	mustCtl(t, tetherctl, leaf, "create", "--force", file(t, tc))

	// Remove on both sides, then re-join with a new token.
	mustCtl(t, tetherctl, leaf, "rm", "trusted_cluster/rootcluster.example.com")
	mustCtl(t, tetherctl, root, "rm", "rc/leafcluster.example.com")
	if rc := mustCtl(t, tetherctl, root, "get", "rc"); rc != "" {
		t.Fatalf("get rc after rm:\n%s", rc)
	}
	token2 := newToken()
	mustCtl(t, tetherctl, leaf, "create", file(t, tcYAML(token2)))
	if rc := mustCtl(t, tetherctl, root, "get", "rc"); !strings.Contains(rc, "name: leafcluster.example.com") {
		t.Fatalf("get rc after re-join:\n%s", rc)
	}

	// No log line of either process holds a token.
	for _, p := range []*proc{root, leaf} {
		for _, tok := range []string{token, token2} {
			if strings.Contains(p.stderr.String(), tok) {
				t.Fatalf("%s logged a token", p.name)
			}
		}
	}
}
