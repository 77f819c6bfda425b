package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/agent"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/internal/testproc"
)

// leafPath is issue 10's path with real processes: a root and a leaf tetherd with the
// tunnel up, an OpenSSH server registered on the leaf as node1, and alice signed in at
// the root with the preset access role, which the leaf maps to its role leaf-access.
type leafPath struct {
	root, leaf  *proc
	leafDeclog  string
	tetherctl   string
	alice       user
	login       string
	leafName    string
	sshdAddr    string
	sshdLog     *testenv.Buffer
	sshd        *openSSHD
	ssh, keygen string
	profile     string
}

func newLeafPath(t *testing.T) *leafPath {
	t.Helper()
	return newLeafPathWith(t, nil, nil)
}

// newLeafPathWith is newLeafPath with extra tetherd start arguments for the root and the
// leaf.
func newLeafPathWith(t *testing.T, rootArgs, leafArgs []string) *leafPath {
	t.Helper()
	tetherd, tetherctl, tether := binaries(t)
	me, err := osuser.Current()
	if err != nil {
		t.Fatal(err)
	}
	p := &leafPath{tetherctl: tetherctl, login: me.Username, leafName: "leaf.example.com",
		ssh: testenv.Command(t, "ssh"), keygen: testenv.Command(t, "ssh-keygen")}
	p.root, _ = startTetherdWithLog(t, tetherd, "root.example.com", rootArgs...)
	p.leaf, p.leafDeclog = startTetherdWithLog(t, tetherd, p.leafName, append([]string{"--insecure"}, leafArgs...)...)

	// The leaf's role for root users, then the trust (its local roles must exist).
	p.setLeafRole(t, []string{p.login}, "")
	tok := regexp.MustCompile(`The cluster invite token: (\S+)`).FindStringSubmatch(p.root.ctl(t, tetherctl, "tokens", "add", "--type=trusted_cluster", "--ttl=5m"))[1]
	tc := fmt.Sprintf("kind: trusted_cluster\nversion: v2\nmetadata:\n  name: root.example.com\nspec:\n  enabled: true\n  token: %s\n  tunnel_addr: %s\n  web_proxy_addr: %s\n  role_map:\n    - remote: access\n      local: [leaf-access]\n",
		tok, testproc.PingTunnelAddr(t, p.root.addr), p.root.addr)
	p.leaf.ctl(t, tetherctl, "create", writeTemp(t, tc))
	testenv.Eventually(t, 30*time.Second, func() error {
		out, err := exec.Command(tetherctl, "get", "rc", "--format", "text", "--data-dir", p.root.dataDir).CombinedOutput()
		if err != nil || !strings.Contains(string(out), p.leafName+" online") {
			return fmt.Errorf("get rc: %v\n%s", err, out)
		}
		return nil
	})

	// An OpenSSH server on the leaf, trusting the leaf's openssh CA (auth export
	// --type=openssh).
	p.sshd = runOpenSSHD(t, p.keygen, func(args ...string) string { return p.leaf.ctl(t, tetherctl, args...) }, "node1")
	p.sshdAddr, p.sshdLog = p.sshd.addr, p.sshd.log
	node := fmt.Sprintf("kind: node\nversion: v2\nmetadata:\n  name: node1\n  labels:\n    env: test\nspec:\n  addr: %s\n  hostname: node1\n", p.sshdAddr)
	p.leaf.ctl(t, tetherctl, "create", writeTemp(t, node))

	// alice signs in at the root after the leaf joined, so her known_hosts has its host CA.
	p.alice = user{bin: tether, home: filepath.Join(t.TempDir(), "profile")}
	added := p.root.ctl(t, tetherctl, "users", "add", "alice", "--roles=access", "--logins="+p.login)
	secret := p.alice.signUp(t, added, "alice password 1")
	proxy := regexp.MustCompile(`--proxy=(\S+)`).FindStringSubmatch(added)[1]
	caFile := regexp.MustCompile(`--ca-file=(\S+)`).FindStringSubmatch(added)[1]
	p.alice.must(t, "alice password 1\n"+auth.TOTPCode(secret, time.Now().Add(auth.TOTPPeriod))+"\n", "login", "--proxy="+proxy, "--ca-file="+caFile, "--user=alice")
	p.profile = p.alice.home
	return p
}

// setLeafRole writes the leaf's role leaf-access: logins on every node, and options (a
// YAML flow mapping's body, such as "port_forwarding: false").
func (p *leafPath) setLeafRole(t *testing.T, logins []string, options string) {
	t.Helper()
	role := fmt.Sprintf("kind: role\nversion: v7\nmetadata:\n  name: leaf-access\nspec:\n  allow:\n    logins: [%s]\n    node_labels:\n      '*': '*'\n  options: {%s}\n",
		strings.Join(logins, ", "), options)
	p.leaf.ctl(t, p.tetherctl, "create", "--force", writeTemp(t, role))
}

// tether runs alice's tether with extra environment.
func (p *leafPath) tether(ctx context.Context, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.alice.bin, args...)
	cmd.Env = append(append(os.Environ(), "TETHER_HOME="+p.profile), env...)
	return cmd
}

// openssh runs OpenSSH's client to node1 of the leaf through tether proxy ssh.
func (p *leafPath) openssh(ctx context.Context, args ...string) *exec.Cmd {
	keys := filepath.Join(p.profile, "keys", "127.0.0.1")
	all := []string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ControlPath=none", "-o", "IdentityAgent=none",
		"-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no",
		"-o", fmt.Sprintf("ProxyCommand=%s proxy ssh --cluster=%s %%r@%%h:%%p", p.alice.bin, p.leafName),
		"-o", "UserKnownHostsFile=" + filepath.Join(p.profile, "known_hosts"),
		"-o", "IdentitiesOnly=yes", "-i", filepath.Join(keys, "alice"),
		"-o", "CertificateFile=" + filepath.Join(keys, "alice-cert.pub")}
	cmd := exec.CommandContext(ctx, p.ssh, append(all, args...)...)
	cmd.Env = append(os.Environ(), "TETHER_HOME="+p.profile)
	return cmd
}

func (p *leafPath) target() string { return p.login + "@node1" }

// countingEcho is an echo server that counts the connections it accepted.
type countingEcho struct {
	addr     string
	port     string
	accepted atomic.Int64
}

func newCountingEcho(t *testing.T) *countingEcho {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	e := &countingEcho{addr: l.Addr().String()}
	_, e.port, _ = net.SplitHostPort(e.addr)
	serveEach(l, func(c net.Conn) {
		e.accepted.Add(1)
		_, _ = io.Copy(c, c)
	})
	return e
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// echoOnce writes a line on conn and reads it back.
func echoOnce(conn net.Conn, msg string) error {
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, msg+"\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != msg+"\n" {
		return fmt.Errorf("read %q, %v; want %q", line, err, msg)
	}
	return nil
}

// background starts cmd until the test ends and returns its stderr.
func background(t *testing.T, cmd *exec.Cmd) *testenv.Buffer {
	t.Helper()
	var errOut testenv.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return &errOut
}

// dialEcho connects to a forwarded local port until it answers (the forwarding process
// may still be starting).
func dialEcho(t *testing.T, addr string, within time.Duration, errOut *testenv.Buffer) net.Conn {
	t.Helper()
	var conn net.Conn
	testenv.Eventually(t, within, func() error {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return fmt.Errorf("%v; stderr: %s", err, errOut)
		}
		if err := echoOnce(c, "ping"); err != nil {
			c.Close()
			return fmt.Errorf("%v; stderr: %s", err, errOut)
		}
		conn = c
		return nil
	})
	return conn
}

// socks5Connect asks a SOCKS5 proxy at proxyAddr for dest (an IPv4 address) and returns
// the server's reply code.
func socks5Connect(t *testing.T, proxyAddr, dest string) (net.Conn, byte, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxyAddr, 2*time.Second)
	if err != nil {
		return nil, 0, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	host, port, _ := net.SplitHostPort(dest)
	ip := net.ParseIP(host).To4()
	var pn int
	fmt.Sscan(port, &pn)
	req := append([]byte{5, 1, 0, 5, 1, 0, 1}, ip...)
	req = append(req, byte(pn>>8), byte(pn))
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, 0, err
	}
	var resp [12]byte
	if _, err := io.ReadFull(c, resp[:]); err != nil {
		c.Close()
		return nil, 0, err
	}
	return c, resp[3], nil
}

// agentSocket serves an SSH agent holding one key (comment "alice-forwarded-key") on a
// Unix socket, for -A.
func agentSocket(t *testing.T) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv, Comment: "alice-forwarded-key"}); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "tether-agent-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	serveEach(l, func(c net.Conn) { _ = agent.ServeAgent(keyring, c) })
	return sock
}

// TestForwardingThroughRootAndLeaf: port and agent forwarding through root → tunnel →
// leaf → OpenSSH node, decided by the leaf's roles (issue 10 point 2). The attacker's
// cases: a leaf role with port_forwarding false denies -L/-R/-D and OpenSSH's direct-tcpip
// although the root's access role allows forwarding (and a live forward is cut); agent
// forwarding asked for without forward_agent true; direct-tcpip without a session the
// leaf allows reaches nothing.
func TestForwardingThroughRootAndLeaf(t *testing.T) {
	p := newLeafPath(t)
	echo := newCountingEcho(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	leafFlag := "--cluster=" + p.leafName
	p.setLeafRole(t, []string{p.login}, "forward_agent: true")

	// ---- allowed: the leaf's role sets no port_forwarding and forward_agent true ----
	localPort := freePort(t)
	localErr := background(t, p.tether(ctx, nil, "ssh", leafFlag, "-N", "-L", localPort+":127.0.0.1:"+echo.port, p.target()))
	live := dialEcho(t, "127.0.0.1:"+localPort, 60*time.Second, localErr)
	defer live.Close()

	t.Run("openssh_-L_through_proxycommand", func(t *testing.T) {
		port := freePort(t)
		errOut := background(t, p.openssh(ctx, "-N", "-o", "ExitOnForwardFailure=yes", "-L", port+":127.0.0.1:"+echo.port, p.login+"@node1."+p.leafName))
		c := dialEcho(t, "127.0.0.1:"+port, 60*time.Second, errOut)
		c.Close()
	})

	t.Run("openssh_-W_through_proxycommand", func(t *testing.T) {
		cmd := p.openssh(ctx, "-W", "127.0.0.1:"+echo.port, p.login+"@node1."+p.leafName)
		cmd.Stdin = strings.NewReader("over direct-tcpip\n")
		out, err := cmd.Output()
		if err != nil || string(out) != "over direct-tcpip\n" {
			t.Fatalf("ssh -W: %q %v", out, err)
		}
	})

	t.Run("tether_ssh_-R", func(t *testing.T) {
		port := freePort(t)
		script := fmt.Sprintf(`bash -c 'exec 3<>/dev/tcp/127.0.0.1/%s; echo from-the-node >&3; head -1 <&3'`, port)
		out, err := p.tether(ctx, nil, "ssh", leafFlag, "-R", port+":127.0.0.1:"+echo.port, p.target(), script).CombinedOutput()
		if err != nil || string(out) != "from-the-node\n" {
			t.Fatalf("tether ssh -R: %v\n%s\nsshd:\n%s\nleaf:\n%s", err, out, p.sshdLog, p.leaf.log)
		}
	})

	t.Run("tether_ssh_-D_socks5", func(t *testing.T) {
		port := freePort(t)
		errOut := background(t, p.tether(ctx, nil, "ssh", leafFlag, "-N", "-D", port, p.target()))
		testenv.Eventually(t, 60*time.Second, func() error {
			c, code, err := socks5Connect(t, "127.0.0.1:"+port, echo.addr)
			if err != nil {
				return fmt.Errorf("%v; stderr %s", err, errOut)
			}
			defer c.Close()
			if code != 0 {
				return fmt.Errorf("SOCKS reply %d; stderr %s", code, errOut)
			}
			return echoOnce(c, "socks")
		})
	})

	t.Run("tether_ssh_-A", func(t *testing.T) {
		sock := agentSocket(t)
		out, err := p.tether(ctx, []string{"SSH_AUTH_SOCK=" + sock}, "ssh", leafFlag, "-A", p.target(), "ssh-add -l").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "alice-forwarded-key") {
			t.Fatalf("ssh-add -l on the node: %v\n%s", err, out)
		}
	})

	t.Run("forwarding_decisions_are_in_the_leaf_decision_log", func(t *testing.T) {
		testenv.Eventually(t, 10*time.Second, func() error {
			data, _ := os.ReadFile(p.leafDeclog)
			for _, a := range []string{`"ssh.port_forward"`, `"ssh.agent_forward"`} {
				if !strings.Contains(string(data), a) {
					return fmt.Errorf("no %s decision in the leaf's decision log", a)
				}
			}
			return nil
		})
	})

	// ---- the leaf's role forbids port forwarding; the root's access role does not ----
	p.setLeafRole(t, []string{p.login}, "port_forwarding: false")

	t.Run("a_live_forward_is_cut_when_the_leaf_forbids_forwarding", func(t *testing.T) {
		_ = live.SetReadDeadline(time.Now().Add(60 * time.Second))
		if _, err := live.Read(make([]byte, 1)); err == nil {
			t.Fatal("the live forwarded connection still carries data")
		}
	})

	t.Run("tether_ssh_-L_is_refused_with_the_leaf_reason", func(t *testing.T) {
		before := echo.accepted.Load()
		testenv.Eventually(t, 30*time.Second, func() error {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+localPort, 2*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			if echoOnce(c, "x") == nil {
				return fmt.Errorf("still forwarded")
			}
			if !strings.Contains(localErr.String(), `port forwarding is forbidden by role "leaf-access" (options.port_forwarding: false)`) {
				return fmt.Errorf("stderr: %s", localErr)
			}
			return nil
		})
		if echo.accepted.Load() != before {
			t.Fatal("the node connected to the destination although forwarding was denied")
		}
	})

	t.Run("tether_ssh_-R_is_refused", func(t *testing.T) {
		port := freePort(t)
		out, err := p.tether(ctx, nil, "ssh", leafFlag, "-R", port+":127.0.0.1:"+echo.port, p.target(), "true").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "remote port forwarding of 127.0.0.1:"+port+" was refused by cluster "+p.leafName) {
			t.Fatalf("tether ssh -R: %v\n%s", err, out)
		}
	})

	t.Run("tether_ssh_-D_is_refused", func(t *testing.T) {
		port := freePort(t)
		errOut := background(t, p.tether(ctx, nil, "ssh", leafFlag, "-N", "-D", port, p.target()))
		testenv.Eventually(t, 60*time.Second, func() error {
			c, code, err := socks5Connect(t, "127.0.0.1:"+port, echo.addr)
			if err != nil {
				return err
			}
			c.Close()
			if code == 0 {
				t.Fatal("SOCKS CONNECT succeeded")
			}
			if !strings.Contains(errOut.String(), "port forwarding is forbidden") {
				return fmt.Errorf("stderr %s", errOut)
			}
			return nil
		})
	})

	t.Run("openssh_-W_is_refused", func(t *testing.T) {
		cmd := p.openssh(ctx, "-W", "127.0.0.1:"+echo.port, p.login+"@node1."+p.leafName)
		cmd.Stdin = strings.NewReader("x\n")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "port forwarding is forbidden by role") {
			t.Fatalf("ssh -W: %v\n%s", err, out)
		}
	})

	t.Run("the_session_itself_is_still_allowed", func(t *testing.T) {
		if out, err := p.tether(ctx, nil, "ssh", leafFlag, p.target(), "echo ok").CombinedOutput(); err != nil || string(out) != "ok\n" {
			t.Fatalf("tether ssh: %v\n%s", err, out)
		}
	})

	t.Run("agent_forwarding_without_forward_agent_true_is_refused", func(t *testing.T) {
		sock := agentSocket(t)
		out, err := p.tether(ctx, []string{"SSH_AUTH_SOCK=" + sock}, "ssh", leafFlag, "-A", p.target(), "ssh-add -l").CombinedOutput()
		if err == nil || strings.Contains(string(out), "alice-forwarded-key") || !strings.Contains(string(out), "agent forwarding was refused by cluster "+p.leafName) {
			t.Fatalf("ssh-add -l on the node: %v\n%s", err, out)
		}
	})

	// ---- direct-tcpip without a session the leaf allows ----
	p.setLeafRole(t, []string{"someone-else"}, "")
	t.Run("direct-tcpip_for_a_login_the_leaf_denies_reaches_nothing", func(t *testing.T) {
		before := echo.accepted.Load()
		testenv.Eventually(t, 30*time.Second, func() error {
			cmd := p.openssh(ctx, "-W", "127.0.0.1:"+echo.port, p.login+"@node1."+p.leafName)
			cmd.Stdin = strings.NewReader("x\n")
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "is not authorized to login as "+p.login+"@"+p.leafName) {
				return fmt.Errorf("ssh -W: %v\n%s", err, out)
			}
			return nil
		})
		if echo.accepted.Load() != before {
			t.Fatal("the node connected to the destination for a login the leaf denies")
		}
	})
}

// TestSCPThroughRootAndLeaf: tether scp (sftp) and OpenSSH's scp through tether proxy ssh
// reach the leaf's node as the login the leaf allows, files and directories both ways; a
// login the leaf denies copies nothing.
func TestSCPThroughRootAndLeaf(t *testing.T) {
	p := newLeafPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	leafFlag := "--cluster=" + p.leafName
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"a.txt": "alpha\n", "sub/b.txt": "beta\n"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	node := t.TempDir() // the node is this machine: its side of the copy
	run := func(t *testing.T, cmd *exec.Cmd) string {
		t.Helper()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
		}
		return string(out)
	}
	read := func(t *testing.T, p string) string {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	t.Run("tether_scp_uploads_a_file", func(t *testing.T) {
		run(t, p.tether(ctx, nil, "scp", leafFlag, filepath.Join(src, "a.txt"), p.target()+":"+filepath.Join(node, "up.txt")))
		if read(t, filepath.Join(node, "up.txt")) != "alpha\n" {
			t.Fatal("wrong content")
		}
		if st, _ := os.Stat(filepath.Join(node, "up.txt")); st.Mode().Perm() != 0o640 {
			t.Fatalf("mode %v, want 0640", st.Mode().Perm())
		}
	})
	t.Run("tether_scp_-r_uploads_and_downloads_a_directory", func(t *testing.T) {
		run(t, p.tether(ctx, nil, "scp", "-r", leafFlag, src, p.target()+":"+filepath.Join(node, "tree")))
		if read(t, filepath.Join(node, "tree", "sub", "b.txt")) != "beta\n" {
			t.Fatal("wrong content")
		}
		back := filepath.Join(t.TempDir(), "back")
		run(t, p.tether(ctx, nil, "scp", "-r", leafFlag, p.target()+":"+filepath.Join(node, "tree"), back))
		if read(t, filepath.Join(back, "sub", "b.txt")) != "beta\n" || read(t, filepath.Join(back, "a.txt")) != "alpha\n" {
			t.Fatal("wrong content")
		}
	})
	t.Run("tether_scp_of_a_directory_without_-r_says_so", func(t *testing.T) {
		out, err := p.tether(ctx, nil, "scp", leafFlag, src, p.target()+":"+node).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "is a directory: use -r") {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	t.Run("tether_scp_of_a_missing_remote_file_says_so", func(t *testing.T) {
		out, err := p.tether(ctx, nil, "scp", leafFlag, p.target()+":"+filepath.Join(node, "ghost"), t.TempDir()).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "no such file or directory") || strings.Contains(string(out), "sftp: ") {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	t.Run("openssh_scp_through_proxycommand", func(t *testing.T) {
		keys := filepath.Join(p.profile, "keys", "127.0.0.1")
		cmd := exec.CommandContext(ctx, testenv.Command(t, "scp"), "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ControlPath=none", "-o", "IdentityAgent=none",
			"-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
			"-o", fmt.Sprintf("ProxyCommand=%s proxy ssh --cluster=%s %%r@%%h:%%p", p.alice.bin, p.leafName),
			"-o", "UserKnownHostsFile="+filepath.Join(p.profile, "known_hosts"),
			"-o", "IdentitiesOnly=yes", "-i", filepath.Join(keys, "alice"), "-o", "CertificateFile="+filepath.Join(keys, "alice-cert.pub"),
			filepath.Join(src, "a.txt"), p.login+"@node1."+p.leafName+":"+filepath.Join(node, "openssh.txt"))
		cmd.Env = append(os.Environ(), "TETHER_HOME="+p.profile)
		run(t, cmd)
		if read(t, filepath.Join(node, "openssh.txt")) != "alpha\n" {
			t.Fatal("wrong content")
		}
	})
	t.Run("a_login_the_leaf_denies_copies_nothing", func(t *testing.T) {
		p.setLeafRole(t, []string{"someone-else"}, "")
		target := filepath.Join(node, "denied.txt")
		testenv.Eventually(t, 30*time.Second, func() error {
			out, err := p.tether(ctx, nil, "scp", leafFlag, filepath.Join(src, "a.txt"), p.target()+":"+target).CombinedOutput()
			if err == nil || !strings.Contains(string(out), "is not authorized to login as "+p.login+"@"+p.leafName) {
				return fmt.Errorf("%v\n%s", err, out)
			}
			return nil
		})
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Fatalf("the file was copied: %v", err)
		}
	})
}

// startSession starts cmd, a session to an OpenSSH node whose log is sshdLog, and waits
// until sshd has started it. end kills it and waits for it (once; also when the test
// ends).
func startSession(t *testing.T, cmd *exec.Cmd, sshdLog *testenv.Buffer) (end func()) {
	t.Helper()
	before := strings.Count(sshdLog.String(), "Starting session")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	var once sync.Once
	end = func() { once.Do(func() { _ = cmd.Process.Kill(); <-done }) }
	t.Cleanup(end)
	testenv.Eventually(t, 30*time.Second, func() error {
		if strings.Count(sshdLog.String(), "Starting session") == before {
			return fmt.Errorf("the session has not started:\n%s", sshdLog)
		}
		return nil
	})
	return end
}

// Teleport's proxy counts a user's connections under the root's roles' max_connections
// wherever they go, so a root role's limit holds across its leaves (each leaf counts again
// under the roles it maps to, with its own limit). Before, a root's max_connections
// limited nothing at a leaf.
func TestRootMaxConnectionsHoldAcrossItsLeaves(t *testing.T) {
	p := newLeafPath(t)
	role := "kind: role\nversion: v5\nmetadata:\n  name: access\nspec:\n  options:\n    max_connections: 1\n" +
		"  allow:\n    logins: ['{{internal.logins}}']\n    node_labels:\n      '*': '*'\n"
	p.root.ctl(t, p.tetherctl, "create", "--force", writeTemp(t, role))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leafFlag := "--cluster=" + p.leafName
	endFirst := startSession(t, p.tether(ctx, nil, "ssh", leafFlag, p.target(), "sleep 60"), p.sshdLog)
	want := "user alice@root.example.com has 1 connections open at root.example.com, the most the roles allow (options.max_connections: 1)"
	testenv.Eventually(t, 10*time.Second, func() error {
		out, err := p.tether(ctx, nil, "ssh", leafFlag, p.target(), "true").CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) {
			return fmt.Errorf("second connection: %v\n%s", err, out)
		}
		return nil
	})
	if out, err := p.openssh(ctx, p.login+"@node1."+p.leafName, "true").CombinedOutput(); exitCode(t, err) != 255 || !strings.Contains(string(out), want) {
		t.Fatalf("OpenSSH over the root's limit: %v\n%s", err, out)
	}
	endFirst()
	testenv.Eventually(t, 10*time.Second, func() error {
		if out, err := p.tether(ctx, nil, "ssh", leafFlag, p.target(), "true").CombinedOutput(); err != nil {
			return fmt.Errorf("after the first ended: %v\n%s", err, out)
		}
		return nil
	})
}
