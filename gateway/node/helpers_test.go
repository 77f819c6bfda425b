package node_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/config"
	"github.com/tetherproject/tether/gateway/node"
	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/resource"
)

// TestMain doubles as `tetherd node-sftp` for the sftp subsystem and `tetherd node-net`
// for port forwarding, which the agent runs as the login's user from a copy of this
// binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == node.SFTPSubcommand {
		if err := node.ServeSFTP(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if len(os.Args) > 1 && os.Args[1] == node.NetSubcommand {
		if err := node.ServeNet(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if len(os.Args) > 3 && os.Args[1] == lyingNetHelper {
		if os.Args[3] == "serve" {
			lieAboutDials(os.Args[2])
		} else if len(os.Args) > 4 {
			lieToTheAgent(os.Args[2], os.Args[4])
		}
		os.Exit(0)
	}
	code := m.Run()
	if sftpDir != "" {
		os.RemoveAll(sftpDir)
	}
	os.Exit(code)
}

var (
	sftpOnce sync.Once
	sftpDir  string
	sftpBin  string
	sftpErr  error
)

// sftpCommand is a copy of this test binary where any user can run it (the build
// directory is root's alone), serving sftp.
func sftpCommand(t *testing.T) []string {
	t.Helper()
	sftpOnce.Do(func() {
		exe, err := os.Executable()
		if err != nil {
			sftpErr = err
			return
		}
		if sftpDir, err = os.MkdirTemp("", "tether-node-sftp-"); err != nil {
			sftpErr = err
			return
		}
		if err := os.Chmod(sftpDir, 0o755); err != nil {
			sftpErr = err
			return
		}
		data, err := os.ReadFile(exe)
		if err != nil {
			sftpErr = err
			return
		}
		sftpBin = filepath.Join(sftpDir, "node.test")
		sftpErr = os.WriteFile(sftpBin, data, 0o755)
	})
	if sftpErr != nil {
		t.Fatal(sftpErr)
	}
	return []string{sftpBin, node.SFTPSubcommand}
}

// netCommand is `node-net` in the same copy of this binary.
func netCommand(t *testing.T) []string {
	t.Helper()
	sftpCommand(t)
	return []string{sftpBin, node.NetSubcommand}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// logBuffer collects a component's log for tests that read the reason of a denial.
func logBuffer() (*slog.Logger, *testenv.Buffer) {
	var b testenv.Buffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

// startCluster runs a cluster on a free loopback port until the test ends.
func startCluster(t *testing.T) *gateway.Gateway {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "tether.yaml")
	if err := os.WriteFile(p, []byte("cluster_name: root.example.com\ndata_dir: "+filepath.Join(dir, "data")+"\nproxy:\n  web_listen_addr: 127.0.0.1:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, cfg, quietLogger())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return g
}

func nodeToken(t *testing.T, g *gateway.Gateway, opts auth.TokenOptions) string {
	t.Helper()
	if opts.Roles == nil {
		opts.Roles = []string{resource.TokenRoleNode}
	}
	tok, _, err := g.Auth().AddToken(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// nodeConfig is a node of g on a free loopback port, keeping its identity in dir.
func nodeConfig(t *testing.T, g *gateway.Gateway, name, token, dir string) node.Config {
	return node.Config{
		Name: name, Labels: map[string]string{"env": "test"}, ListenAddr: "127.0.0.1:0",
		AuthServer: g.Addr(), Token: token, RootCAs: g.Auth().CA().TLS.CertPool(), Dir: dir,
		HeartbeatInterval: time.Second, SFTPCommand: sftpCommand(t), NetCommand: netCommand(t),
		Logger: quietLogger(),
	}
}

// runAgent runs a until the test ends (or stop is called).
func runAgent(t *testing.T, a *node.Agent) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// testUser creates a Unix user for the test (useradd; needs root) and removes it after.
func testUser(t *testing.T) *user.User {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the node agent's sessions run as the login's user: this test creates one with useradd and needs root")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := fmt.Sprintf("tn%x", b)
	out, err := exec.Command(testenv.Command(t, "useradd"), "--create-home", "--shell", "/bin/sh", name).CombinedOutput()
	if err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		// A session's processes may linger a moment after the client left.
		_ = exec.Command("pkill", "-KILL", "-u", name).Run()
		if out, err := exec.Command(testenv.Command(t, "userdel"), "--remove", name).CombinedOutput(); err != nil {
			t.Logf("userdel %s: %v\n%s", name, err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func uid(t *testing.T, u *user.User) int {
	n, err := strconv.Atoi(u.Uid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// userKey is a user's key pair and certificate on disk, as `ssh -i` reads them.
type userKey struct {
	Path   string // private key; Path+"-cert.pub" is the certificate
	Signer ssh.Signer
	Cert   *ssh.Certificate
}

// newUserKey makes a key and has auth sign it for logins.
func newUserKey(t *testing.T, authority *ca.Authority, logins []string, ttl time.Duration) *userKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := authority.IssueUser(ca.UserCertRequest{PublicKey: signer.PublicKey(), Username: "alice", Logins: logins, TTL: ttl, MaxTTL: ttl, NodeAccess: true})
	if err != nil {
		t.Fatal(err)
	}
	return writeUserKey(t, priv, signer, cert)
}

func writeUserKey(t *testing.T, priv ed25519.PrivateKey, signer ssh.Signer, cert *ssh.Certificate) *userKey {
	t.Helper()
	dir := t.TempDir()
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	k := &userKey{Path: filepath.Join(dir, "id"), Signer: signer, Cert: cert}
	if err := os.WriteFile(k.Path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.Path+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		t.Fatal(err)
	}
	return k
}

// sshArgs are OpenSSH client options that read nothing of the machine's configuration
// and trust the node's host certificate through the cluster's host CA only.
func sshArgs(t *testing.T, a *node.Agent, key *userKey) []string {
	t.Helper()
	kh := filepath.Join(t.TempDir(), "known_hosts")
	var lines []string
	for _, k := range a.HostCAs() {
		lines = append(lines, "@cert-authority * "+k)
	}
	if err := os.WriteFile(kh, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{
		"-F", "/dev/null", "-i", key.Path, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
		"-o", "UserKnownHostsFile=" + kh, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
	}
}

func hostPort(t *testing.T, a *node.Agent) (string, string) {
	s := a.Addr().String()
	i := strings.LastIndex(s, ":")
	return s[:i], s[i+1:]
}

// runSSH runs OpenSSH's ssh with args and returns its exit status and output.
func runSSH(t *testing.T, args []string, env ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Command(t, "ssh"), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running ssh: %v", err)
		}
		code = ee.ExitCode()
	}
	return code, stdout.String(), stderr.String()
}

func removeFile(p string) error { return os.Remove(p) }

// writePreOpenSSHIdentity rewrites the identity.json in dir as a node agent of the version
// before the openssh CA kept it (user_cas, no node_cas, no token digest) and returns its path.
func writePreOpenSSHIdentity(t *testing.T, g *gateway.Gateway, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "identity.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var saved map[string]any
	if err := json.Unmarshal(raw, &saved); err != nil {
		t.Fatal(err)
	}
	delete(saved, "node_cas")
	delete(saved, "token_sha256")
	var userCAs []string
	for _, k := range g.Auth().CA().User.TrustedKeys() {
		userCAs = append(userCAs, ca.AuthorizedKey(k.Key))
	}
	saved["user_cas"] = userCAs
	raw, _ = json.Marshal(saved)
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
