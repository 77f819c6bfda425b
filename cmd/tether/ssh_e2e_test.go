package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/internal/testenv"
)

// sshCluster is a running root cluster with a signed-in user and an OpenSSH server
// registered as node "node1" (labels env=test), for the SSH access path's tests.
type sshCluster struct {
	root            *proc
	tetherd         string
	tetherctl       string
	alice           user
	login           string // a Unix login sshd accepts (the user running the tests)
	sshdLog         *testenv.Buffer
	sshdAddr        string
	sshd            *openSSHD
	declog, profile string
	ssh, keygen     string
	cluster         string
}

// startTetherdWithLog is startTetherd with the decision log written to a file.
func startTetherdWithLog(t *testing.T, bin, name string, args ...string) (*proc, string) {
	t.Helper()
	p := launchTetherd(t, bin, name, func(dir, addr string) string {
		return fmt.Sprintf("cluster_name: %s\ndata_dir: %s/data\nproxy:\n  web_listen_addr: %s\npolicy:\n  decision_log:\n    file: %s\n", name, dir, addr, filepath.Join(dir, "decisions.jsonl"))
	}, args...)
	return p, decisionLogOf(p)
}

// openSSHD is a running OpenSSH server registered (by its admin) as a node.
type openSSHD struct {
	addr, name, hostKey string
	userCAs             string // the TrustedUserCAKeys file
	log                 *testenv.Buffer
	cmd                 *exec.Cmd
	ctl                 func(args ...string) string
}

// sign writes a host certificate for the server's key from the cluster's host CA as it is
// now (tetherctl auth sign), as its admin does at first and in a rotation's update_servers.
func (d *openSSHD) sign(t *testing.T) {
	t.Helper()
	hostCert := d.ctl("auth", "sign", "--host="+d.name, "--pub="+d.hostKey+".pub")
	if err := os.WriteFile(d.hostKey+"-cert.pub", []byte(hostCert), 0o644); err != nil {
		t.Fatal(err)
	}
}

// trustOpenSSHCA writes the cluster's openssh CA keys as they are now (tetherctl auth
// export --type=openssh) to the TrustedUserCAKeys file, as its admin does at first and in
// a rotation of the openssh CA. sshd reads the file at every login.
func (d *openSSHD) trustOpenSSHCA(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(d.userCAs, []byte(d.ctl("auth", "export", "--type=openssh")), 0o644); err != nil {
		t.Fatal(err)
	}
}

// reload makes sshd read its configuration and host certificate again (SIGHUP: it
// executes itself anew, same PID).
func (d *openSSHD) reload(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// runOpenSSHD is startOpenSSHD for a node named name, returning the server. Its
// TrustedUserCAKeys file is d.userCAs, written from auth export --type=openssh.
func runOpenSSHD(t *testing.T, keygen string, ctl func(args ...string) string, name string) *openSSHD {
	t.Helper()
	sshd := testenv.Command(t, "sshd")
	dir := t.TempDir()
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	d := &openSSHD{name: name, hostKey: hostKey, ctl: ctl, userCAs: filepath.Join(dir, "tether_openssh_ca.pub")}
	d.sign(t)
	d.trustOpenSSHCA(t)
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Skipf("sshd needs /run/sshd (run the tests as root): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	l.Close()
	conf := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`Port %s
ListenAddress 127.0.0.1
HostKey %s
HostCertificate %s-cert.pub
TrustedUserCAKeys %s
AuthorizedKeysFile none
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
PidFile none
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
LogLevel VERBOSE
`, port, hostKey, hostKey, d.userCAs)), 0o600); err != nil {
		t.Fatal(err)
	}
	log := &testenv.Buffer{}
	cmd := exec.Command(sshd, "-D", "-e", "-f", conf)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.addr, d.log, d.cmd = addr, log, cmd
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	testenv.Eventually(t, 10*time.Second, func() error {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		if !strings.HasPrefix(line, "SSH-2.0-") {
			return fmt.Errorf("no banner from sshd: %q %v\n%s", line, err, log)
		}
		return nil
	})
	return d
}

func newSSHCluster(t *testing.T) *sshCluster {
	t.Helper()
	tetherd, tetherctl, tether := binaries(t)
	c := &sshCluster{tetherd: tetherd, tetherctl: tetherctl, cluster: "root.example.com",
		ssh: testenv.Command(t, "ssh"), keygen: testenv.Command(t, "ssh-keygen")}
	me, err := osuser.Current()
	if err != nil {
		t.Fatal(err)
	}
	c.login = me.Username
	c.root, c.declog = startTetherdWithLog(t, tetherd, c.cluster)

	// alice signs in with the preset access role and the login sshd knows.
	c.alice = user{bin: tether, home: filepath.Join(t.TempDir(), "profile")}
	added := c.root.ctl(t, tetherctl, "users", "add", "alice", "--roles=access", "--logins="+c.login)
	secret := c.alice.signUp(t, added, "alice password 1")
	proxy := regexp.MustCompile(`--proxy=(\S+)`).FindStringSubmatch(added)[1]
	caFile := regexp.MustCompile(`--ca-file=(\S+)`).FindStringSubmatch(added)[1]
	c.alice.must(t, "alice password 1\n"+auth.TOTPCode(secret, time.Now().Add(auth.TOTPPeriod))+"\n", "login", "--proxy="+proxy, "--ca-file="+caFile, "--user=alice")
	c.profile = c.alice.home

	// An OpenSSH server whose host key the admin signs with tetherctl auth sign, trusting
	// the cluster's openssh CA.
	c.sshd = runOpenSSHD(t, c.keygen, func(args ...string) string { return c.root.ctl(t, tetherctl, args...) }, "node1")
	c.sshdAddr, c.sshdLog = c.sshd.addr, c.sshd.log
	node := fmt.Sprintf("kind: node\nversion: v2\nmetadata:\n  name: node1\n  labels:\n    env: test\nspec:\n  addr: %s\n  hostname: node1\n", c.sshdAddr)
	c.root.ctl(t, tetherctl, "create", writeTemp(t, node))
	return c
}

func (c *sshCluster) tether(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	out, errOut, err := c.alice.run(t, "", args...)
	return out, errOut, exitCode(t, err)
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("running: %v", err)
	return -1
}

// openssh runs the OpenSSH client with args, with alice's TETHER_HOME.
func (c *sshCluster) openssh(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.ssh, append([]string{"-o", "BatchMode=yes", "-o", "ControlPath=none", "-o", "IdentityAgent=none", "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no"}, args...)...)
	cmd.Env = append(os.Environ(), "TETHER_HOME="+c.profile)
	return cmd
}

func (c *sshCluster) proxyCommandArgs() []string {
	keys := filepath.Join(c.profile, "keys", "127.0.0.1")
	return []string{
		"-o", fmt.Sprintf("ProxyCommand=%s proxy ssh --cluster=%s %%r@%%h:%%p", c.alice.bin, c.cluster),
		"-o", "UserKnownHostsFile=" + filepath.Join(c.profile, "known_hosts"),
		"-o", "IdentitiesOnly=yes", "-i", filepath.Join(keys, "alice"),
		"-o", "CertificateFile=" + filepath.Join(keys, "alice-cert.pub"),
	}
}

func TestSSHAccessPath(t *testing.T) {
	c := newSSHCluster(t)
	target := c.login + "@node1"

	t.Run("tether_ssh_runs_the_command_and_returns_its_exit_status", func(t *testing.T) {
		out, errOut, code := c.tether(t, "ssh", "--cluster="+c.cluster, target, "echo hi; exit 3")
		if out != "hi\n" || code != 3 {
			t.Fatalf("stdout %q, exit %d, stderr:\n%s\ncluster log:\n%s", out, code, errOut, c.root.log)
		}
	})

	t.Run("tether_ssh_-t_gets_a_terminal_on_the_node", func(t *testing.T) {
		out, errOut, code := c.tether(t, "ssh", "-t", "--cluster="+c.cluster, target, "tty; echo cols=$(stty size)")
		if code != 0 || !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "cols=24 80") {
			t.Fatalf("stdout %q, exit %d, stderr:\n%s", out, code, errOut)
		}
	})

	t.Run("tether_ssh_finds_the_cluster_of_a_unique_node", func(t *testing.T) {
		out, errOut, code := c.tether(t, "ssh", target, "echo found")
		if out != "found\n" || code != 0 {
			t.Fatalf("stdout %q, exit %d, stderr:\n%s", out, code, errOut)
		}
	})

	t.Run("the_node_sees_a_short_lived_certificate_of_the_cluster_user_CA", func(t *testing.T) {
		testenv.Eventually(t, 5*time.Second, func() error {
			if !strings.Contains(c.sshdLog.String(), `Accepted certificate ID "alice@root.example.com via root.example.com"`) {
				return fmt.Errorf("sshd log:\n%s", c.sshdLog)
			}
			return nil
		})
	})

	t.Run("a_login_the_roles_lack_is_denied_with_the_teleport_message", func(t *testing.T) {
		_, errOut, code := c.tether(t, "ssh", "--cluster="+c.cluster, "visitor@node1", "true")
		t.Logf("denied: %s", errOut)
		want := "user alice@root.example.com is not authorized to login as visitor@root.example.com: "
		if code == 0 || !strings.Contains(errOut, want) || strings.Contains(errOut, "ssh: ") {
			t.Fatalf("exit %d, stderr:\n%s", code, errOut)
		}
	})

	// OpenSSH's sshd refuses a login at authentication ("Permission denied"), so ssh -N
	// (no session, only forwards) ends at once. A login the roles lack is refused there
	// too, with the reason shown as the SSH banner OpenSSH prints, not left waiting with
	// nothing said until a forward is used.
	t.Run("openssh_-N_with_a_login_the_roles_lack_ends_at_once_saying_why", func(t *testing.T) {
		for _, extra := range [][]string{{"-N"}, {"-N", "-L", filepath.Join(t.TempDir(), "fwd.sock") + ":127.0.0.1:22"}} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			args := append(append(c.proxyCommandArgs(), extra...), "visitor@node1."+c.cluster)
			start := time.Now()
			out, err := c.openssh(ctx, args...).CombinedOutput()
			waited := ctx.Err() != nil
			cancel()
			if waited {
				t.Fatalf("ssh %v still waiting after %v:\n%s", extra, time.Since(start).Round(time.Second), out)
			}
			want := "user alice@root.example.com is not authorized to login as visitor@root.example.com: "
			if exitCode(t, err) != 255 || !strings.Contains(string(out), want) || !strings.Contains(string(out), "Permission denied") {
				t.Fatalf("ssh %v: %v\n%s", extra, err, out)
			}
		}
		// tether ssh -N alike.
		_, errOut, code := c.tether(t, "ssh", "-N", "--cluster="+c.cluster, "visitor@node1")
		if code != 255 || !strings.Contains(errOut, "is not authorized to login as visitor@") || strings.Contains(errOut, "ssh: ") {
			t.Fatalf("tether ssh -N: exit %d, stderr:\n%s", code, errOut)
		}
	})

	t.Run("an_unknown_node_is_denied_and_nothing_is_dialed", func(t *testing.T) {
		before := strings.Count(c.sshdLog.String(), "Connection from")
		_, errOut, code := c.tether(t, "ssh", "--cluster="+c.cluster, c.login+"@ghost", "true")
		if code == 0 || !strings.Contains(errOut, `node "ghost" not found in cluster root.example.com`) {
			t.Fatalf("exit %d, stderr:\n%s", code, errOut)
		}
		if after := strings.Count(c.sshdLog.String(), "Connection from"); after != before {
			t.Fatalf("sshd was dialed for an unknown node:\n%s", c.sshdLog)
		}
		// A name that is an address is a name like any other: not found, never dialed.
		_, errOut, code = c.tether(t, "ssh", "--cluster="+c.cluster, c.login+"@"+c.sshdAddr, "true")
		if code == 0 || !strings.Contains(errOut, "not found") {
			t.Fatalf("exit %d, stderr:\n%s", code, errOut)
		}
		if after := strings.Count(c.sshdLog.String(), "Connection from"); after != before {
			t.Fatalf("sshd was dialed for an address the user named:\n%s", c.sshdLog)
		}
		if !strings.Contains(c.root.log.String(), "no such node registered") {
			t.Fatalf("the denial is not logged:\n%s", c.root.log)
		}
	})

	t.Run("every_session_decision_is_in_the_decision_log", func(t *testing.T) {
		testenv.Eventually(t, 10*time.Second, func() error {
			data, _ := os.ReadFile(c.declog)
			var allowed, denied bool
			for _, line := range strings.Split(string(data), "\n") {
				if !strings.Contains(line, `"ssh.session"`) || !strings.Contains(line, `"node1"`) {
					continue
				}
				var ev map[string]any
				if json.Unmarshal([]byte(line), &ev) != nil {
					continue
				}
				if strings.Contains(line, `"visitor"`) {
					denied = true
				} else if strings.Contains(line, `"`+c.login+`"`) {
					allowed = true
				}
			}
			if !allowed || !denied {
				return fmt.Errorf("allowed %v denied %v in:\n%s", allowed, denied, data)
			}
			return nil
		})
	})

	t.Run("openssh_with_tether_config_reaches_the_node", func(t *testing.T) {
		cfgText, errOut, code := c.tether(t, "config")
		if code != 0 || !strings.Contains(cfgText, "Match originalhost *."+c.cluster+",*."+c.cluster+".\n") {
			t.Fatalf("tether config: %d\n%s%s", code, cfgText, errOut)
		}
		cfg := writeTemp(t, cfgText)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := c.openssh(ctx, "-F", cfg, c.login+"@node1."+c.cluster, "echo via-config; exit 4").CombinedOutput()
		if exitCode(t, err) != 4 || !strings.Contains(string(out), "via-config") {
			t.Fatalf("ssh -F: %v\n%s", err, out)
		}
		// The name in capitals reaches the node as well (OpenSSH's Host patterns are
		// case-sensitive: the block did not apply and ssh went to DNS); with a final dot
		// tether proxy ssh says what to type (the host certificate names no dotted name).
		out, err = c.openssh(ctx, "-F", cfg, c.login+"@NODE1."+strings.ToUpper(c.cluster), "echo upper-case").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "upper-case") {
			t.Fatalf("ssh -F NODE1.%s: %v\n%s", strings.ToUpper(c.cluster), err, out)
		}
		out, err = c.openssh(ctx, "-F", cfg, c.login+"@node1."+c.cluster+".", "echo dotted").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "ends in a dot: type node1."+c.cluster+" ") {
			t.Fatalf("ssh -F node1.%s.: %v\n%s", c.cluster, err, out)
		}
	})

	t.Run("tether_config_works_from_a_shell_without_TETHER_HOME", func(t *testing.T) {
		cfgText, _, _ := c.tether(t, "config")
		cfg := writeTemp(t, cfgText)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := c.openssh(ctx, "-F", cfg, c.login+"@node1."+c.cluster, "echo no-tether-home")
		cmd.Env = nil
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "TETHER_HOME=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, "HOME="+t.TempDir()) // no ~/.tether to fall back on
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "no-tether-home") {
			t.Fatalf("ssh -F without TETHER_HOME: %v\n%s\nconfig:\n%s", err, out, cfgText)
		}
	})

	t.Run("scp_through_tether_config_uses_the_sftp_subsystem", func(t *testing.T) {
		cfgText, _, _ := c.tether(t, "config")
		cfg := writeTemp(t, cfgText)
		src := writeTemp(t, "copied through the proxy\n")
		dst := filepath.Join(t.TempDir(), "copy")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, testenv.Command(t, "scp"), "-F", cfg, "-o", "BatchMode=yes", "-o", "ControlPath=none", src, c.login+"@node1."+c.cluster+":"+dst)
		cmd.Env = append(os.Environ(), "TETHER_HOME="+c.profile)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("scp: %v\n%s", err, out)
		}
		if got, err := os.ReadFile(dst); err != nil || string(got) != "copied through the proxy\n" {
			t.Fatalf("copied %q %v", got, err)
		}
	})

	t.Run("openssh_proxycommand_reaches_the_node", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := c.openssh(ctx, append(c.proxyCommandArgs(), c.login+"@node1."+c.cluster, "echo via-proxycommand")...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "via-proxycommand") {
			t.Fatalf("ssh -o ProxyCommand: %v\n%s", err, out)
		}
	})

	t.Run("twenty_parallel_proxycommand_sessions", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := c.openssh(ctx, append(c.proxyCommandArgs(), c.login+"@node1."+c.cluster, fmt.Sprintf("echo session-%d", i))...).CombinedOutput()
				if err != nil || !strings.Contains(string(out), fmt.Sprintf("session-%d", i)) {
					errs <- fmt.Errorf("session %d: %v\n%s", i, err, out)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("ls_lists_the_node_with_the_allowed_logins", func(t *testing.T) {
		out, errOut, code := c.tether(t, "ls", "-f", "json")
		// tsh ls --format=json's node resources, Tether's logins under "tether".
		var nodes []struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Tether struct {
				Logins []string `json:"logins"`
			} `json:"tether"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &nodes) != nil || len(nodes) != 1 || nodes[0].Kind != "node" || nodes[0].Metadata.Name != "node1" || strings.Join(nodes[0].Tether.Logins, ",") != c.login {
			t.Fatalf("ls: %d %s %s", code, out, errOut)
		}
		if out, _, _ := c.tether(t, "ls", "env=prod"); strings.Contains(out, "node1") {
			t.Fatalf("ls env=prod lists node1:\n%s", out)
		}
	})

	t.Run("forwarding_flags_with_bad_input_say_what_to_do", func(t *testing.T) {
		for _, tc := range []struct{ flag, want string }{
			{"-A", "SSH_AUTH_SOCK is not set: start ssh-agent"},
			{"-L8080", "bad forwarding specification \"8080\" (wrong number of fields): use -L [bind_address:]port:host:hostport"},
			{"-R8080", "remote dynamic forwarding (-R [bind:]port alone) is not supported"},
		} {
			cmd := exec.Command(c.alice.bin, "ssh", tc.flag, "--cluster="+c.cluster, target, "true")
			cmd.Env = append(os.Environ(), "TETHER_HOME="+c.profile, "SSH_AUTH_SOCK=")
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("%s: %v %s", tc.flag, err, out)
			}
		}
	})

	t.Run("an_expired_profile_says_to_run_tether_login", func(t *testing.T) {
		path := filepath.Join(c.profile, "profile.json")
		saved, _ := os.ReadFile(path)
		defer os.WriteFile(path, saved, 0o600)
		var p map[string]any
		_ = json.Unmarshal(saved, &p)
		p["valid_before"] = time.Now().Add(-time.Minute).Format(time.RFC3339)
		expired, _ := json.Marshal(p)
		if err := os.WriteFile(path, expired, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"ssh", "--cluster=" + c.cluster, target, "true"}, {"proxy", "ssh", "--cluster=" + c.cluster, target + ":22"}, {"ls"}} {
			_, errOut, code := c.tether(t, args...)
			if code == 0 || !strings.Contains(errOut, "expired") || !strings.Contains(errOut, "run tether login") {
				t.Fatalf("%v: %d %s", args, code, errOut)
			}
		}
	})
	t.Run("a_leaf_the_roles_do_not_reach_reads_as_not_found", func(t *testing.T) {
		leaf := startTetherd(t, c.tetherd, "leaf.example.com", "--insecure")
		tok := regexp.MustCompile(`The cluster invite token: (\S+)`).FindStringSubmatch(c.root.ctl(t, c.tetherctl, "tokens", "add", "--type=trusted_cluster", "--ttl=5m"))[1]
		tc := fmt.Sprintf("kind: trusted_cluster\nversion: v2\nmetadata:\n  name: root.example.com\nspec:\n  enabled: true\n  token: %s\n  tunnel_addr: %s\n  web_proxy_addr: %s\n  role_map:\n    - remote: access\n      local: [access]\n", tok, c.root.addr, c.root.addr)
		leaf.ctl(t, c.tetherctl, "create", writeTemp(t, tc))
		c.root.ctl(t, c.tetherctl, "update", "rc/leaf.example.com", "--set-labels=env=demo")
		for _, cluster := range []string{"leaf.example.com", "ghost.example.com"} {
			_, errOut, code := c.tether(t, "ssh", "--cluster="+cluster, target, "true")
			if code == 0 || !strings.Contains(errOut, "cluster "+cluster+" not found") {
				t.Fatalf("%s: %d %s", cluster, code, errOut)
			}
		}
		testenv.Eventually(t, 10*time.Second, func() error {
			data, _ := os.ReadFile(c.declog)
			if !regexp.MustCompile(`"cluster.route".*"leaf.example.com"|"leaf.example.com".*"cluster.route"`).Match(data) {
				return fmt.Errorf("no cluster.route decision for the leaf in the decision log")
			}
			return nil
		})
	})

	// Last: the lock denies alice everything from here on.
	// Teleport's options.max_connections: with the limit at 1, a second connection while
	// one is open is refused at sign-in saying why (tether ssh and OpenSSH alike); once the
	// first ends, a new one is let in.
	t.Run("max_connections_refuses_a_connection_over_the_roles_limit", func(t *testing.T) {
		role := func(options string) string {
			return "kind: role\nversion: v5\nmetadata: {name: access}\nspec:\n" + options +
				"  allow:\n    logins: ['{{internal.logins}}']\n    node_labels: {'*': '*'}\n"
		}
		c.root.ctl(t, c.tetherctl, "create", "-f", writeTemp(t, role("  options: {max_connections: 1}\n")))
		t.Cleanup(func() { c.root.ctl(t, c.tetherctl, "create", "-f", writeTemp(t, role(""))) })
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		first := exec.CommandContext(ctx, c.alice.bin, "ssh", "--cluster="+c.cluster, target, "sleep 60")
		first.Env = append(os.Environ(), "TETHER_HOME="+c.profile)
		endFirst := startSession(t, first, c.sshdLog)
		want := "has 1 connections open at " + c.cluster + ", the most the roles allow (options.max_connections: 1)"
		testenv.Eventually(t, 10*time.Second, func() error {
			_, errOut, code := c.tether(t, "ssh", "--cluster="+c.cluster, target, "true")
			if code != 255 || !strings.Contains(errOut, want) {
				return fmt.Errorf("second connection: exit %d, stderr:\n%s", code, errOut)
			}
			return nil
		})
		out, err := c.openssh(ctx, append(c.proxyCommandArgs(), c.login+"@node1."+c.cluster, "true")...).CombinedOutput()
		if exitCode(t, err) != 255 || !strings.Contains(string(out), want) || !strings.Contains(string(out), "Permission denied") {
			t.Fatalf("OpenSSH over the limit: %v\n%s", err, out)
		}
		endFirst()
		testenv.Eventually(t, 10*time.Second, func() error {
			if _, errOut, code := c.tether(t, "ssh", "--cluster="+c.cluster, target, "true"); code != 0 {
				return fmt.Errorf("after the first ended: exit %d, stderr:\n%s", code, errOut)
			}
			return nil
		})
	})

	t.Run("a_lock_ends_a_live_session", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		before := strings.Count(c.sshdLog.String(), "Starting session")
		cmd := exec.CommandContext(ctx, c.alice.bin, "ssh", "--cluster="+c.cluster, target, "sleep 80")
		cmd.Env = append(os.Environ(), "TETHER_HOME="+c.profile)
		errOut := &testenv.Buffer{}
		cmd.Stderr = errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		testenv.Eventually(t, 30*time.Second, func() error {
			if strings.Count(c.sshdLog.String(), "Starting session") == before {
				return fmt.Errorf("the session has not started:\n%s", c.sshdLog)
			}
			return nil
		})
		locked := time.Now()
		c.root.ctl(t, c.tetherctl, "create", writeTemp(t, "kind: lock\nversion: v2\nmetadata: {name: incident-1}\nspec:\n  target: {user: alice}\n  message: credentials leaked\n"))
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("the session ended with status 0")
			}
			if d := time.Since(locked); d > 20*time.Second {
				t.Fatalf("the session ended %v after the lock", d)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the session outlived the lock by 30 s\n%s", c.root.log)
		}
		if !strings.Contains(c.root.log.String(), "session no longer allowed") {
			t.Fatalf("the cut is not logged:\n%s", c.root.log)
		}
		if !strings.Contains(errOut.String(), "credentials leaked") {
			t.Fatalf("the cut session does not tell the user why: %q", errOut.String())
		}
		// A new session is denied with the lock's reason.
		_, msg, code := c.tether(t, "ssh", "--cluster="+c.cluster, target, "true")
		if code == 0 || !strings.Contains(msg, "is not authorized to login as") {
			t.Fatalf("after the lock: %d %s", code, msg)
		}
		t.Logf("after the lock: %s", msg)
	})
}
