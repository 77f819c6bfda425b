package node_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/gateway"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/node"
	"github.com/tetherproject/tether/internal/testenv"
)

// sshNode is a cluster, a running node agent and a Unix user to log in as.
type sshNode struct {
	g     *gateway.Gateway
	agent *node.Agent
	user  *user.User
	log   interface{ String() string }
}

func startSSHNode(t *testing.T, opts ...func(*node.Config)) *sshNode {
	t.Helper()
	u := testUser(t)
	g := startCluster(t)
	cfg := nodeConfig(t, g, "node1", nodeToken(t, g, auth.TokenOptions{}), t.TempDir())
	for _, o := range opts {
		o(&cfg)
	}
	logger, buf := logBuffer()
	cfg.Logger = logger
	a, err := node.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	return &sshNode{g: g, agent: a, user: u, log: buf}
}

// key is a node certificate of the cluster's openssh CA for logins, valid for ten minutes.
func (n *sshNode) key(t *testing.T, logins ...string) *userKey {
	return newUserKey(t, n.g.Auth().CA().OpenSSH, logins, 10*time.Minute)
}

// ssh runs OpenSSH's client against the node as login with key.
func (n *sshNode) ssh(t *testing.T, key *userKey, login string, extra []string, command ...string) (int, string, string) {
	host, port := hostPort(t, n.agent)
	args := append(sshArgs(t, n.agent, key), "-p", port)
	args = append(args, extra...)
	args = append(args, login+"@"+host)
	args = append(args, command...)
	return runSSH(t, args)
}

func TestOpenSSHClientRunsACommandAsTheLogin(t *testing.T) {
	n := startSSHNode(t)
	key := n.key(t, n.user.Username)
	code, out, stderr := n.ssh(t, key, n.user.Username, nil, "id -un; id -u; pwd; exit 3")
	if code != 3 {
		t.Fatalf("exit status %d, want 3; stdout %q stderr %q\nnode log:\n%s", code, out, stderr, n.log.String())
	}
	want := n.user.Username + "\n" + n.user.Uid + "\n" + n.user.HomeDir + "\n"
	if out != want {
		t.Fatalf("stdout %q, want %q (login, its uid, its home)", out, want)
	}
	if strings.TrimSpace(n.user.Uid) == "0" {
		t.Fatal("the test user is root")
	}
}

func TestPTYSessionSeesATerminalAndItsWindowSize(t *testing.T) {
	n := startSSHNode(t)
	key := n.key(t, n.user.Username)
	host, port := hostPort(t, n.agent)
	args := append(sshArgs(t, n.agent, key), "-p", port, "-tt", n.user.Username+"@"+host,
		`tty; ls -l "$(tty)" | cut -d' ' -f3; echo TERM=$TERM; stty size; while read l; do stty size; done`)
	cmd := exec.Command(testenv.Command(t, "ssh"), args...)
	cmd.Env = append(os.Environ(), "TERM=xterm-256color")
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 33, Cols: 101})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		ptmx.Close()
	}()
	var out testenv.Buffer
	go func() { _, _ = io.Copy(&out, ptmx) }()
	testenv.Eventually(t, 20*time.Second, func() error {
		s := out.String()
		for _, want := range []string{"/dev/pts/", "\n" + n.user.Username, "TERM=xterm-256color", "33 101"} {
			if !strings.Contains(s, want) {
				return fmt.Errorf("output %q lacks %q", s, want)
			}
		}
		return nil
	})
	// A window change reaches the terminal: resize ssh's terminal (ssh sends
	// window-change) and ask again until the new size is seen.
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		if _, err := ptmx.Write([]byte("\r")); err != nil {
			return err
		}
		if !strings.Contains(out.String(), "40 120") {
			return fmt.Errorf("output %q lacks the new size 40 120", out.String())
		}
		return nil
	})
}

func TestOnlySafeEnvironmentVariablesAreAccepted(t *testing.T) {
	n := startSSHNode(t)
	key := n.key(t, n.user.Username)
	host, port := hostPort(t, n.agent)
	args := append(sshArgs(t, n.agent, key), "-p", port,
		"-o", "SendEnv=LANG", "-o", "SendEnv=LC_TETHER", "-o", "SendEnv=LD_PRELOAD", "-o", "SendEnv=TETHER_SECRET", "-o", "SendEnv=PATH",
		n.user.Username+"@"+host, "env")
	code, out, stderr := runSSH(t, args, "LANG=C.UTF-8", "LC_TETHER=yes", "LD_PRELOAD=/tmp/evil.so", "TETHER_SECRET=leak", "PATH=/tmp/evil:/usr/bin:/bin")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	env := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	for k, want := range map[string]string{"LANG": "C.UTF-8", "LC_TETHER": "yes", "HOME": n.user.HomeDir, "USER": n.user.Username, "LOGNAME": n.user.Username, "SHELL": "/bin/sh"} {
		if env[k] != want {
			t.Errorf("%s=%q, want %q", k, env[k], want)
		}
	}
	for _, k := range []string{"LD_PRELOAD", "TETHER_SECRET"} {
		if v, ok := env[k]; ok {
			t.Errorf("%s=%q reached the session: only LANG, LC_* and TERM may be set by the client", k, v)
		}
	}
	if strings.Contains(env["PATH"], "/tmp/evil") {
		t.Errorf("the client set PATH: %q", env["PATH"])
	}
	// Nothing of the agent's own environment leaks into the session.
	if v, ok := env["GOPATH"]; ok || env["HOME"] == "/root" {
		t.Errorf("the agent's environment leaked: GOPATH=%q HOME=%q", v, env["HOME"])
	}
	if !strings.Contains(n.log.String(), `environment variable \"LD_PRELOAD\" refused`) {
		t.Errorf("the refusal of LD_PRELOAD is not logged:\n%s", n.log.String())
	}
}

func TestSFTPAndSCPRunAsTheLogin(t *testing.T) {
	n := startSSHNode(t)
	key := n.key(t, n.user.Username)
	host, port := hostPort(t, n.agent)
	dir := t.TempDir()
	local := filepath.Join(dir, "upload.txt")
	payload := []byte("hello from sftp\n" + strings.Repeat("x", 100000))
	if err := os.WriteFile(local, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	opts := sshArgs(t, n.agent, key)[2:] // the -F /dev/null pair is given apart
	// sftp: upload, then download to another name.
	batch := filepath.Join(dir, "batch")
	if err := os.WriteFile(batch, []byte("put "+local+" up.txt\nget up.txt "+filepath.Join(dir, "down.txt")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sftpArgs := append([]string{"-F", "/dev/null", "-P", port, "-b", batch}, opts...)
	sftpArgs = append(sftpArgs, n.user.Username+"@"+host)
	if out, err := exec.Command(testenv.Command(t, "sftp"), sftpArgs...).CombinedOutput(); err != nil {
		t.Fatalf("sftp: %v\n%s\nnode log:\n%s", err, out, n.log.String())
	}
	checkOwnedCopy(t, filepath.Join(n.user.HomeDir, "up.txt"), payload, n.user)
	if got, err := os.ReadFile(filepath.Join(dir, "down.txt")); err != nil || string(got) != string(payload) {
		t.Fatalf("downloaded file: %v (%d bytes, want %d)", err, len(got), len(payload))
	}
	// scp (OpenSSH 9 speaks sftp underneath): up and down.
	scpArgs := append([]string{"-F", "/dev/null", "-P", port}, opts...)
	up := append(append([]string{}, scpArgs...), local, n.user.Username+"@"+host+":scp.txt")
	if out, err := exec.Command(testenv.Command(t, "scp"), up...).CombinedOutput(); err != nil {
		t.Fatalf("scp up: %v\n%s", err, out)
	}
	checkOwnedCopy(t, filepath.Join(n.user.HomeDir, "scp.txt"), payload, n.user)
	down := append(append([]string{}, scpArgs...), n.user.Username+"@"+host+":scp.txt", filepath.Join(dir, "scp-down.txt"))
	if out, err := exec.Command(testenv.Command(t, "scp"), down...).CombinedOutput(); err != nil {
		t.Fatalf("scp down: %v\n%s", err, out)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "scp-down.txt")); err != nil || string(got) != string(payload) {
		t.Fatalf("scp download: %v", err)
	}
	// The sftp server runs as the login: it cannot write where the login cannot.
	deny := filepath.Join(dir, "batch-deny")
	if err := os.WriteFile(deny, []byte("put "+local+" /root/owned-by-sftp.txt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	denyArgs := append([]string{"-F", "/dev/null", "-P", port, "-b", deny}, opts...)
	denyArgs = append(denyArgs, n.user.Username+"@"+host)
	if out, err := exec.Command(testenv.Command(t, "sftp"), denyArgs...).CombinedOutput(); err == nil {
		t.Fatalf("sftp wrote into /root as %s:\n%s", n.user.Username, out)
	}
	if _, err := os.Stat("/root/owned-by-sftp.txt"); err == nil {
		os.Remove("/root/owned-by-sftp.txt")
		t.Fatal("the sftp server wrote as root")
	}
}

func checkOwnedCopy(t *testing.T, path string, want []byte, u *user.User) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || string(got) != string(want) {
		t.Fatalf("%s: %v (%d bytes, want %d)", path, err, len(got), len(want))
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if owner := st.Sys().(*syscall.Stat_t).Uid; int(owner) != uid(t, u) {
		t.Fatalf("%s is owned by uid %d, want the login's uid %s", path, owner, u.Uid)
	}
}

func TestSignalsAndExitSignalReachTheClient(t *testing.T) {
	n := startSSHNode(t)
	key := n.key(t, n.user.Username)
	c := n.dial(t, key, n.user.Username)
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("echo started; exec sleep 60"); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 8)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "started\n" {
		t.Fatalf("read %q: %v", line, err)
	}
	if err := s.Signal(ssh.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = s.Wait()
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.Signal() != "TERM" {
		t.Fatalf("wait: %v, want exit-signal TERM", err)
	}
}

// dial is an x/crypto/ssh client of the node with key, checking the host certificate
// against the cluster's host CA.
func (n *sshNode) dial(t *testing.T, key *userKey, login string) *ssh.Client {
	t.Helper()
	signer, err := ssh.NewCertSigner(key.Cert, key.Signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", n.agent.Addr().String(), n.clientConfig(t, login, ssh.PublicKeys(signer)))
	if err != nil {
		t.Fatalf("dial: %v\nnode log:\n%s", err, n.log.String())
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (n *sshNode) clientConfig(t *testing.T, login string, methods ...ssh.AuthMethod) *ssh.ClientConfig {
	hostCA := n.g.Auth().CA().Host.SigningKey()
	checker := &ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool {
		return string(k.Marshal()) == string(hostCA.Marshal())
	}}
	return &ssh.ClientConfig{User: login, Auth: methods, HostKeyCallback: checker.CheckHostKey, Timeout: 10 * time.Second}
}

// A program the node cannot start (here: the login's shell is missing) is reported as
// sshd does: the request succeeds, the reason is on stderr and the exit status is 1 —
// not a bare refusal the user reads as "exec request failed" with no reason.
func TestAProgramThatCannotStartSaysWhy(t *testing.T) {
	n := startSSHNode(t)
	login := n.user.Username
	if out, err := exec.Command(testenv.Command(t, "usermod"), "-s", "/nonexistent/shell", login).CombinedOutput(); err != nil {
		t.Fatalf("usermod: %v\n%s", err, out)
	}
	code, out, stderr := n.ssh(t, n.key(t, login), login, nil, "id -un")
	if code != 1 || out != "" || !strings.Contains(stderr, "node: cannot start the exec") || !strings.Contains(stderr, "/nonexistent/shell") {
		t.Fatalf("exit %d stdout %q stderr %q", code, out, stderr)
	}
	if !strings.Contains(n.log.String(), "session program not started") {
		t.Fatalf("not logged:\n%s", n.log)
	}
}

// The cluster's ciphers option reaches the node agent's SSH server too: with AES-GCM only,
// a client that insists on ChaCha20 is refused and a default client negotiates AES-GCM.
func TestCiphersOptionLimitsTheNodeAgent(t *testing.T) {
	n := startSSHNode(t, func(c *node.Config) { c.Ciphers = []string{"aes128-gcm@openssh.com"} })
	login := n.user.Username
	code, _, stderr := n.ssh(t, n.key(t, login), login, []string{"-c", "chacha20-poly1305@openssh.com"}, "true")
	if code != 255 || !strings.Contains(stderr, "no matching cipher") {
		t.Fatalf("a ChaCha20-only client: exit %d stderr %q", code, stderr)
	}
	code, out, stderr := n.ssh(t, n.key(t, login), login, []string{"-v"}, "id -un")
	if code != 0 || out != login+"\n" || !strings.Contains(stderr, "cipher: aes128-gcm@openssh.com") {
		t.Fatalf("a default client: exit %d stdout %q stderr %q", code, out, stderr)
	}
}
