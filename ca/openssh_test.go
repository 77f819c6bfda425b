package ca_test

import (
	"bufio"
	"context"
	"crypto"
	"encoding/pem"
	"errors"
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

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
)

// TestOpenSSH proves Tether's certificates against real OpenSSH: sshd trusts the openssh
// CA's public key file as Save writes it (TrustedUserCAKeys) and presents a host
// certificate from the host CA (HostCertificate); the ssh client trusts the host CA with
// an @cert-authority line and logs in with a node certificate of the openssh CA. A
// user's login certificate, from the same cluster's user CA, is refused. sshd and ssh are
// required: `make tools` installs them.
func TestOpenSSH(t *testing.T) {
	t.Parallel()
	sshdPath, sshPath, keygenPath := requireTool(t, "sshd"), requireTool(t, "ssh"), requireTool(t, "ssh-keygen")
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []ca.Algorithm{ca.Ed25519, ca.ECDSAP256} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			// The CAs go to disk and come back: sshd reads the .pub file Save wrote,
			// and certificates come from the loaded private keys.
			created, err := ca.NewCluster("root.example.com", alg)
			if err != nil {
				t.Fatal(err)
			}
			if err := created.Save(filepath.Join(dir, "cas")); err != nil {
				t.Fatal(err)
			}
			cluster, err := ca.LoadCluster(filepath.Join(dir, "cas"))
			if err != nil {
				t.Fatal(err)
			}
			stranger, err := ca.NewCluster("evil.example.com", alg)
			if err != nil {
				t.Fatal(err)
			}

			t.Run("ssh-keygen_reads_the_saved_ca_private_key", func(t *testing.T) {
				out, err := exec.Command(keygenPath, "-y", "-f", filepath.Join(dir, "cas", "user", "key-1")).CombinedOutput()
				if err != nil {
					t.Fatalf("ssh-keygen -y: %v\n%s", err, out)
				}
				if got := strings.Fields(string(out)); len(got) < 2 || got[0]+" "+got[1] != ca.AuthorizedKey(cluster.User.SigningKey()) {
					t.Errorf("ssh-keygen -y printed %q, want %q", out, ca.AuthorizedKey(cluster.User.SigningKey()))
				}
			})

			// The host: its key and a certificate from the host CA for the address the
			// client dials.
			hostPriv, hostPub := newKey(t, alg)
			hostCert, err := cluster.Host.IssueHost(ca.HostCertRequest{PublicKey: hostPub, Principals: []string{"127.0.0.1", "localhost"}, TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			hostKey := writeKeyAndCert(t, dir, "host", hostPriv, hostCert)
			srv := startSSHD(t, sshdPath, dir, sshdConfig{
				HostKey:           hostKey,
				HostCertificate:   hostKey + "-cert.pub",
				TrustedUserCAKeys: filepath.Join(dir, "cas", "openssh", "key-1.pub"),
			})
			knownHosts := writeFile(t, dir, "known_hosts", fmt.Sprintf("@cert-authority [127.0.0.1]:%d %s\n", srv.port, ca.AuthorizedKey(cluster.Host.SigningKey())))
			strangerHosts := writeFile(t, dir, "known_hosts_stranger", fmt.Sprintf("@cert-authority [127.0.0.1]:%d %s\n", srv.port, ca.AuthorizedKey(stranger.Host.SigningKey())))

			userPriv, userPub := newKey(t, alg)
			login := func(a *ca.Authority, keyID string, logins []string, clock time.Time) string {
				a.Clock = fixedClock(clock)
				req := aliceRequest(userPub)
				req.KeyID, req.Logins, req.TTL = keyID, logins, time.Hour
				req.NodeAccess = a.Type() == ca.OpenSSHCA
				cert, err := a.IssueUser(req)
				if err != nil {
					t.Fatal(err)
				}
				return writeKeyAndCert(t, dir, keyID, userPriv, cert)
			}
			now := time.Now()
			caFP, strangerFP := ca.Fingerprint(cluster.OpenSSH.SigningKey()), ca.Fingerprint(stranger.OpenSSH.SigningKey())
			userFP := ca.Fingerprint(cluster.User.SigningKey())
			for _, tc := range []struct {
				name       string
				key        string // written key; its certificate is key + "-cert.pub"
				knownHosts string
				wantErr    string   // empty: `true` runs and exits 0
				sshdLog    []string // what sshd must have logged, in order
			}{
				{name: "node_certificate_of_the_openssh_ca_logs_in", key: login(cluster.OpenSSH, "alice-ok", []string{me.Username, "visitor"}, now), knownHosts: knownHosts,
					sshdLog: []string{`Accepted certificate ID "alice-ok"`, "CA " + caFP + " via " + filepath.Join(dir, "cas", "openssh", "key-1.pub"), "Accepted publickey for " + me.Username}},
				{name: "login_certificate_of_the_same_clusters_user_ca_is_refused", key: login(cluster.User, "alice-login", []string{me.Username}, now), knownHosts: knownHosts,
					wantErr: "Permission denied", sshdLog: []string{"Failed publickey for " + me.Username, "ID alice-login", "CA " + alg2ssh(alg) + " " + userFP}},
				{name: "certificate_from_another_ca_is_refused", key: login(stranger.OpenSSH, "alice-stranger", []string{me.Username}, now), knownHosts: knownHosts,
					wantErr: "Permission denied", sshdLog: []string{"Failed publickey for " + me.Username, "ID alice-stranger", "CA " + alg2ssh(alg) + " " + strangerFP}},
				{name: "login_not_among_the_principals_is_refused", key: login(cluster.OpenSSH, "alice-visitor", []string{"visitor"}, now), knownHosts: knownHosts,
					wantErr: "Permission denied", sshdLog: []string{"Certificate invalid: name is not a listed principal", "ID alice-visitor"}},
				{name: "expired_certificate_is_refused", key: login(cluster.OpenSSH, "alice-expired", []string{me.Username}, now.Add(-2*time.Hour)), knownHosts: knownHosts,
					wantErr: "Permission denied", sshdLog: []string{"Certificate invalid: expired", "ID alice-expired"}},
				{name: "host_certificate_from_another_host_ca_is_refused", key: login(cluster.OpenSSH, "alice-strangerhost", []string{me.Username}, now), knownHosts: strangerHosts,
					wantErr: "Host key verification failed"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					out, err := runSSH(sshPath, srv.port, me.Username, tc.key, tc.knownHosts, alg)
					if tc.wantErr == "" && err != nil {
						t.Fatalf("ssh: %v\n%s\nsshd log:\n%s", err, out, srv.log.String())
					}
					if tc.wantErr != "" {
						var exitErr *exec.ExitError
						if !errors.As(err, &exitErr) || exitErr.ExitCode() != 255 || !strings.Contains(out, tc.wantErr) {
							t.Fatalf("ssh: %v, want exit 255 with %q; output:\n%s", err, tc.wantErr, out)
						}
					}
					if len(tc.sshdLog) > 0 && !srv.waitForLog(tc.sshdLog, 5*time.Second) {
						t.Errorf("sshd did not log %q in that order:\n%s", tc.sshdLog, srv.log.String())
					}
				})
			}

			t.Run("ssh-keygen_lists_the_tether_extensions", func(t *testing.T) {
				out, err := exec.Command(keygenPath, "-L", "-f", filepath.Join(dir, "alice-ok-cert.pub")).CombinedOutput()
				if err != nil {
					t.Fatalf("ssh-keygen -L: %v\n%s", err, out)
				}
				for _, want := range []string{"user certificate", "Key ID: \"alice-ok\"", ca.ExtRoles, ca.ExtTraits, ca.ExtUser, ca.ExtMFAVerified, ca.ExtNodeAccess, "permit-pty", "Critical Options: (none)"} {
					if !strings.Contains(string(out), want) {
						t.Errorf("ssh-keygen -L output lacks %q:\n%s", want, out)
					}
				}
			})
		})
	}
}

func alg2ssh(alg ca.Algorithm) string {
	return map[ca.Algorithm]string{ca.Ed25519: "ED25519", ca.ECDSAP256: "ECDSA"}[alg]
}

// requireTool finds an OpenSSH program, failing (not skipping) the test when it is
// missing: these tests are what prove Tether's certificates work with OpenSSH.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	t.Fatalf("%s not found: run `make tools` (it installs openssh-server and openssh-client)", name)
	return ""
}

func isExecutable(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeKeyAndCert writes an OpenSSH private key to dir/name (0600) and its certificate
// to dir/name-cert.pub, the layout ssh and sshd expect, and returns the key's path.
func writeKeyAndCert(t *testing.T, dir, name string, priv crypto.Signer, cert *ssh.Certificate) string {
	t.Helper()
	pemBlock, err := ssh.MarshalPrivateKey(priv, name)
	if err != nil {
		t.Fatal(err)
	}
	key := writeFile(t, dir, name, string(pem.EncodeToMemory(pemBlock)))
	writeFile(t, dir, name+"-cert.pub", string(ssh.MarshalAuthorizedKey(cert)))
	return key
}

type sshdConfig struct {
	HostKey, HostCertificate, TrustedUserCAKeys string
}

type sshdServer struct {
	port int
	log  *testenv.Buffer
}

// startSSHD runs sshd in the foreground (-D), logging to stderr (-e), on a spare
// 127.0.0.1 port, and waits until it answers with its SSH banner. It is killed when the
// test ends.
func startSSHD(t *testing.T, sshdPath, dir string, cfg sshdConfig) *sshdServer {
	t.Helper()
	// sshd refuses to start without its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("creating /run/sshd for sshd (run the tests as root): %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := sparePort()
		if err != nil {
			t.Fatal(err)
		}
		conf := writeFile(t, dir, "sshd_config", fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
HostCertificate %s
TrustedUserCAKeys %s
AuthorizedKeysFile none
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
PidFile none
LogLevel VERBOSE
`, port, cfg.HostKey, cfg.HostCertificate, cfg.TrustedUserCAKeys))
		log := &testenv.Buffer{}
		cmd := exec.Command(sshdPath, "-D", "-e", "-f", conf)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting sshd: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		err = waitForBanner(port, exited, 10*time.Second)
		if err == nil {
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			return &sshdServer{port: port, log: log}
		}
		cmd.Process.Kill()
		<-exited
		lastErr = fmt.Errorf("%v\nsshd log:\n%s", err, log.String())
		if !strings.Contains(log.String(), "Address already in use") {
			break
		}
	}
	t.Fatalf("sshd did not start: %v", lastErr)
	return nil
}

func sparePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitForBanner polls 127.0.0.1:port until an SSH banner comes back, sshd exits, or the
// deadline passes.
func waitForBanner(port int, exited <-chan error, within time.Duration) error {
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.SetDeadline(time.Now().Add(2 * time.Second))
			line, _ := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if strings.HasPrefix(line, "SSH-2.0-") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no SSH banner on %s within %v", addr, within)
		}
		select {
		case err := <-exited:
			return fmt.Errorf("sshd exited: %v", err)
		case <-tick.C:
		}
	}
}

// waitForLog polls sshd's log until it holds the parts in order (sshd's output reaches
// the buffer through a copying goroutine, so it may trail the ssh client's exit).
func (s *sshdServer) waitForLog(parts []string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if containsInOrder(s.log.String(), parts) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}

func containsInOrder(s string, parts []string) bool {
	for _, p := range parts {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}

// runSSH runs `ssh ... true` against the test sshd with key and key-cert.pub, trusting
// only the host CA in knownHosts, and returns ssh's combined output.
func runSSH(sshPath string, port int, login, key, knownHosts string, alg ca.Algorithm) (string, error) {
	hostKeyAlg := map[ca.Algorithm]string{ca.Ed25519: ssh.CertAlgoED25519v01, ca.ECDSAP256: ssh.CertAlgoECDSA256v01}[alg]
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sshPath,
		"-F", "/dev/null",
		"-p", fmt.Sprint(port),
		"-i", key,
		"-o", "CertificateFile="+key+"-cert.pub",
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "UserKnownHostsFile="+knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "HostKeyAlgorithms="+hostKeyAlg,
		"-o", "BatchMode=yes",
		"-o", "PasswordAuthentication=no",
		"-o", "KbdInteractiveAuthentication=no",
		"-o", "ConnectTimeout=10",
		"-o", "ControlPath=none",
		"-o", "UpdateHostKeys=no",
		"-l", login,
		"127.0.0.1", "true")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
