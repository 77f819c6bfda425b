package testproc

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
)

// OpenSSH is the paths of the OpenSSH programs the tests run.
type OpenSSH struct {
	SSH, SSHD, Keygen string
}

// RequireOpenSSH finds ssh, sshd and ssh-keygen, or skips the test saying they are missing
// and how to install them (scripts/install-tools.sh, which `make tools` runs, installs them;
// CI has them).
func RequireOpenSSH(t testing.TB) OpenSSH {
	t.Helper()
	var o OpenSSH
	var missing []string
	for _, p := range []struct {
		name string
		dst  *string
	}{{"ssh", &o.SSH}, {"sshd", &o.SSHD}, {"ssh-keygen", &o.Keygen}} {
		*p.dst = lookCommand(p.name)
		if *p.dst == "" {
			missing = append(missing, p.name)
		}
	}
	if len(missing) > 0 {
		t.Skipf("SKIPPED: OpenSSH's %s not installed; this scenario runs the real OpenSSH client and server: run scripts/install-tools.sh (make tools)", strings.Join(missing, ", "))
	}
	return o
}

func lookCommand(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// EnsureUnixUser makes sure the host has the account name, with a shell and an unlocked
// (password-less, key-only) entry so OpenSSH's sshd and the node agent can run sessions as
// it. It creates the account when it is missing and the test runs as root; otherwise the
// test fails saying what to do. A created account is kept: other tests and `make demo` on
// the same host may be running sessions as it, and removing it under them would break them.
func EnsureUnixUser(t testing.TB, name string) {
	t.Helper()
	if _, err := user.Lookup(name); err == nil {
		unlockForKeys(t, name)
		return
	}
	if os.Geteuid() != 0 {
		t.Fatalf("the scenario logs in to its nodes as %q, which this host lacks: create it (useradd -m -s /bin/sh -p '*' %s) or run the test as root", name, name)
	}
	out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", "-p", "*", name).CombinedOutput()
	if err != nil {
		if _, lookErr := user.Lookup(name); lookErr == nil {
			return // created meanwhile by another test or the demo
		}
		t.Fatalf("creating the Unix user %s: %v\n%s", name, err, out)
	}
	t.Logf("created the Unix user %s (no password, key-only) for the nodes' sessions; it is kept", name)
}

// unlockForKeys: an account made with plain `useradd` (as `make demo` does) is locked ("!" in
// /etc/shadow), and sshd without PAM refuses locked accounts even for certificates. As root,
// it is set to "*": still no password that could ever match, but not locked.
func unlockForKeys(t testing.TB, name string) {
	t.Helper()
	data, err := os.ReadFile("/etc/shadow")
	if err != nil {
		return // not root: nothing to check or change
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && f[0] == name && strings.HasPrefix(f[1], "!") {
			if out, err := exec.Command("usermod", "-p", "*", name).CombinedOutput(); err != nil {
				t.Fatalf("the account %s is locked, which OpenSSH's sshd refuses; unlocking it for key-only logins (usermod -p '*' %s): %v\n%s", name, name, err, out)
			}
			t.Logf("unlocked the account %s for key-only logins (its password field was %q, now \"*\")", name, f[1])
		}
	}
}

// SSHD is a real OpenSSH server registered as a node: its host key carries a host
// certificate of the cluster's host CA for the node name, and it trusts one user CA.
type SSHD struct {
	Name, Addr string
	proc       *Background
}

// StartSSHD starts sshd on a free 127.0.0.1 port for node name: a new host key signed by
// cluster (`tetherctl auth sign --host=NAME`) and TrustedUserCAKeys = trustedUserCA. It does
// not register the node. owner's end stops it.
func StartSSHD(t testing.TB, owner Owner, o OpenSSH, cluster *Cluster, name, trustedUserCA string) *SSHD {
	t.Helper()
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("sshd needs its privilege separation directory /run/sshd: %v (run the test as root)", err)
	}
	dir := owner.TempDir()
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	if out, err := exec.Command(o.Keygen, "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	cert := cluster.Ctl(t, "auth", "sign", "--host="+name, "--pub="+hostKey+".pub")
	if cert.Code != 0 {
		t.Fatalf("tetherctl auth sign: %s", cert)
	}
	if err := os.WriteFile(hostKey+"-cert.pub", []byte(cert.Stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &SSHD{Name: name, Addr: FreeAddr(t)}
	_, port, _ := net.SplitHostPort(s.Addr)
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
PermitRootLogin no
UsePAM no
StrictModes no
PidFile none
MaxStartups 100:30:200
LogLevel VERBOSE
`, port, hostKey, hostKey, trustedUserCA)), 0o600); err != nil {
		t.Fatal(err)
	}
	s.proc = Start(t, owner, "sshd "+name, exec.Command(o.SSHD, "-D", "-e", "-f", conf))
	testenv.Eventually(t, 30*time.Second, func() error {
		if s.proc.Exited() {
			t.Fatalf("sshd %s exited: %v\n%s", name, s.proc.Err(), s.proc.Log)
		}
		conn, err := net.DialTimeout("tcp", s.Addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		if !strings.HasPrefix(line, "SSH-2.0-") {
			return fmt.Errorf("no banner from sshd: %q %v", line, err)
		}
		return nil
	})
	return s
}

// Log is what sshd logged so far.
func (s *SSHD) Log() string { return s.proc.Log.String() }
