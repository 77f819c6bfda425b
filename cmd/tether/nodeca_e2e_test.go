package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/internal/testenv"
)

// TestLoginCertificatesDoNotOpenAnOpenSSHNode is attacker test (a) of the openssh CA,
// with real processes: a root and a leaf tetherd, an OpenSSH server on the leaf whose
// TrustedUserCAKeys is what `tetherctl auth export --type=openssh` printed. Users who
// can reach the server's port offer it their login certificates straight, with
// OpenSSH's own client: bob, a leaf-local user who signed in at the leaf (`tether login`,
// a certificate of the leaf's user CA with the login among its principals), and alice,
// signed in at the root. sshd refuses both, and says why in its log (the CA is not
// trusted). The leaf's own connection for alice, through root → tunnel → leaf, after its
// ssh.session decision, logs in.
func TestLoginCertificatesDoNotOpenAnOpenSSHNode(t *testing.T) {
	p := newLeafPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// bob signs in at the leaf itself, with the login the OpenSSH server has.
	bob := user{bin: p.alice.bin, home: filepath.Join(t.TempDir(), "bob")}
	added := p.leaf.ctl(t, p.tetherctl, "users", "add", "bob", "--roles=access", "--logins="+p.login)
	secret := bob.signUp(t, added, "bob password 12")
	proxy := regexp.MustCompile(`--proxy=(\S+)`).FindStringSubmatch(added)[1]
	caFile := regexp.MustCompile(`--ca-file=(\S+)`).FindStringSubmatch(added)[1]
	bob.must(t, "bob password 12\n"+auth.TOTPCode(secret, time.Now().Add(auth.TOTPPeriod))+"\n", "login", "--proxy="+proxy, "--ca-file="+caFile, "--user=bob")

	leafUserCA := strings.Fields(p.leaf.ctl(t, p.tetherctl, "auth", "export", "--type=user"))[1]
	openSSHExport := p.leaf.ctl(t, p.tetherctl, "auth", "export", "--type=openssh")
	if strings.Contains(openSSHExport, leafUserCA) {
		t.Fatalf("auth export --type=openssh holds the leaf's user CA key:\n%s", openSSHExport)
	}

	host, port, _ := net.SplitHostPort(p.sshdAddr)
	direct := func(t *testing.T, home, name string) (string, error) {
		t.Helper()
		keys := filepath.Join(home, "keys", "127.0.0.1")
		certFile := filepath.Join(keys, name+"-cert.pub")
		data, err := os.ReadFile(certFile)
		if err != nil {
			t.Fatalf("%s's login certificate: %v", name, err)
		}
		cert := parseCertFile(t, data)
		if !slices.Contains(cert.ValidPrincipals, p.login) {
			t.Fatalf("%s's login certificate lacks the login %s (principals %v): the attack would not be tried", name, p.login, cert.ValidPrincipals)
		}
		cmd := exec.CommandContext(ctx, p.ssh, "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ControlPath=none", "-o", "IdentityAgent=none",
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null",
			"-o", "IdentitiesOnly=yes", "-i", filepath.Join(keys, name), "-o", "CertificateFile="+certFile,
			"-p", port, p.login+"@"+host, "echo", "reached-the-node")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, tc := range []struct{ who, home, name, keyID string }{
		{"leaf_local_user_signed_in_at_the_leaf", bob.home, "bob", "bob"},
		{"root_user_signed_in_at_the_root", p.profile, "alice", "alice"},
	} {
		t.Run(tc.who+"_is_refused_by_sshd", func(t *testing.T) {
			out, err := direct(t, tc.home, tc.name)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 255 || strings.Contains(out, "reached-the-node") || !strings.Contains(out, "Permission denied") {
				t.Fatalf("ssh straight to the node with %s's login certificate: %v\n%s\nsshd:\n%s", tc.name, err, out, p.sshdLog)
			}
			testenv.Eventually(t, 5*time.Second, func() error {
				if !strings.Contains(p.sshdLog.String(), "Failed publickey for "+p.login) {
					return fmt.Errorf("sshd did not log the refusal:\n%s", p.sshdLog)
				}
				return nil
			})
		})
	}

	t.Run("control_a_certificate_of_the_openssh_CA_logs_in_the_same_way", func(t *testing.T) {
		// The same client, port and options with a node certificate of the leaf's openssh
		// CA (what make bench's direct baseline uses): the refusals above are the CA's.
		d := newDirectClient(t, filepath.Join(p.leaf.dataDir, "ca"), p.login, p.sshdAddr)
		out, err := exec.CommandContext(ctx, p.ssh, append(append([]string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ControlPath=none",
			"-o", "IdentityAgent=none", "-o", "GlobalKnownHostsFile=/dev/null"}, d.sshArgs()...), p.login+"@"+host, "echo", "reached-the-node")...).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "reached-the-node" {
			t.Fatalf("ssh with an openssh CA certificate: %v\n%s\nsshd:\n%s", err, out, p.sshdLog)
		}
	})

	t.Run("the_leafs_decided_connection_through_root_and_leaf_logs_in", func(t *testing.T) {
		out, err := p.tether(ctx, nil, "ssh", "--cluster="+p.leafName, p.target(), "echo reached-through-the-leaf").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "reached-through-the-leaf" {
			t.Fatalf("tether ssh through the leaf: %v\n%s\nsshd:\n%s\nleaf:\n%s", err, out, p.sshdLog, p.leaf.log)
		}
		testenv.Eventually(t, 5*time.Second, func() error {
			if !regexp.MustCompile(`Accepted certificate ID "alice@root.example.com via leaf.example.com" \(serial \d+\) signed by ED25519 CA SHA256:\S+ via .*tether_openssh_ca.pub`).MatchString(p.sshdLog.String()) {
				return fmt.Errorf("sshd did not accept the leaf's openssh CA certificate:\n%s", p.sshdLog)
			}
			return nil
		})
	})
}

func parseCertFile(t *testing.T, data []byte) *ssh.Certificate {
	t.Helper()
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		t.Fatal(err)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		t.Fatal("not a certificate")
	}
	return cert
}

// TestOpenSSHCARotationReachesOpenSSHNodes: tetherctl auth rotate --type=openssh on a
// running cluster with an OpenSSH node. The enforcement point's node certificates follow
// the signing key at once; the node's admin re-exports (auth export --type=openssh) after
// init, when it prints both keys, so the switch at update_clients cuts nothing. A node
// that was not given the new key is refused from update_clients on, and the user is told
// which export to give it.
func TestOpenSSHCARotationReachesOpenSSHNodes(t *testing.T) {
	c := newSSHCluster(t)
	target := c.login + "@node1"
	ssh := func(t *testing.T) (string, string, int) {
		t.Helper()
		return c.tether(t, "ssh", "--cluster="+c.cluster, target, "echo on-the-node")
	}
	works := func(t *testing.T, when string) {
		t.Helper()
		if out, errOut, code := ssh(t); code != 0 || out != "on-the-node\n" {
			t.Fatalf("%s: exit %d, %q\n%s\nsshd:\n%s", when, code, out, errOut, c.sshdLog)
		}
	}
	rotate := func(t *testing.T, phase string) string {
		t.Helper()
		out := c.root.ctl(t, c.tetherctl, "auth", "rotate", "--type=openssh", "--phase="+phase)
		if !strings.Contains(out, "The openssh CA is in phase "+phase) {
			t.Fatalf("auth rotate: %s", out)
		}
		return strings.Fields(out[strings.Index(out, "signing"):])[1]
	}
	works(t, "before the rotation")
	old := rotate(t, "init")
	works(t, "init, sshd not re-exported yet (the old key still signs)")

	t.Run("a_node_not_given_the_new_key_is_refused_once_it_signs", func(t *testing.T) {
		newKey := rotate(t, "update_clients")
		if newKey == old {
			t.Fatal("update_clients did not switch the signing key")
		}
		_, errOut, code := ssh(t)
		if code == 0 || !strings.Contains(errOut, `refused the login "`+c.login+`"`) || !strings.Contains(errOut, "auth export --type=openssh") {
			t.Fatalf("exit %d, stderr:\n%s", code, errOut)
		}
		rotate(t, "rollback")
		works(t, "after the rollback")
		rotate(t, "standby")
		old = rotate(t, "init")
	})

	c.sshd.trustOpenSSHCA(t) // the admin's re-export after init: both keys
	if fps := exportedFingerprints(t, c.sshd.userCAs); len(fps) != 2 || fps[0] != old {
		t.Fatalf("auth export --type=openssh during init printed %v, want the signing key %s and the new one", fps, old)
	}
	newKey := rotate(t, "update_clients")
	works(t, "update_clients with both keys exported")
	testenv.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(c.sshdLog.String(), "CA ED25519 "+newKey) {
			return fmt.Errorf("sshd did not accept a certificate of the new key %s:\n%s", newKey, c.sshdLog)
		}
		return nil
	})
	rotate(t, "update_servers")
	rotate(t, "standby")
	c.sshd.trustOpenSSHCA(t) // after standby: the new key alone
	if fps := exportedFingerprints(t, c.sshd.userCAs); len(fps) != 1 || fps[0] != newKey {
		t.Fatalf("auth export --type=openssh after standby printed %v, want %s alone", fps, newKey)
	}
	works(t, "standby with the new key alone")
}

// exportedFingerprints reads a TrustedUserCAKeys file as sshd does, one key a line, and
// returns the keys' fingerprints in order.
func exportedFingerprints(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, ssh.FingerprintSHA256(k))
	}
	return out
}
