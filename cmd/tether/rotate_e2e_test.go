package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/internal/testenv"
)

// A host CA rotation of a running root, through every phase with tetherctl auth rotate,
// with no restart: users who sign in mid-rotation (both keys in known_hosts) reach the
// node with tether ssh and with OpenSSH through tether proxy ssh in every phase, and users
// who sign in after it (only the new key) reach it too — which needs the proxy's own host
// certificate to follow the host CA's signing key. A profile from before the rotation
// (only the old key) is refused once the old key is dropped.
func TestHostCARotationWithoutRestart(t *testing.T) {
	tetherd, tetherctl, tether := binaries(t)
	me, err := osuser.Current()
	if err != nil {
		t.Fatal(err)
	}
	login := me.Username
	const name = "root.example.com"
	root, _ := startTetherdWith(t, tetherd, name,
		"node:\n  enabled: true\n  name: node1\n  listen_addr: 127.0.0.1:0\n  public_addr: 127.0.0.1:0\n  heartbeat_interval: 500ms\n")
	sshBin := testenv.Command(t, "ssh")
	// An OpenSSH server registered by hand, whose admin follows the rotation: a new host
	// certificate in update_servers (tetherctl auth sign), sshd reloaded.
	sshdNode := runOpenSSHD(t, testenv.Command(t, "ssh-keygen"), func(args ...string) string { return root.ctl(t, tetherctl, args...) }, "node-ssh")
	root.ctl(t, tetherctl, "create", writeTemp(t, fmt.Sprintf("kind: node\nversion: v2\nmetadata:\n  name: node-ssh\nspec:\n  addr: %s\n  hostname: node-ssh\n", sshdNode.addr)))

	signIn := func(who string) user { return addAndSignIn(t, root, tetherctl, tether, who, login) }
	hostCAKeys := func(u user) int {
		data, err := os.ReadFile(filepath.Join(u.home, "known_hosts"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(data), "@cert-authority")
	}
	tetherSSHTo := func(u user, node string) error {
		out, errOut, err := u.run(t, "", "ssh", "--cluster="+name, login+"@"+node, "echo rotated-ok")
		if err != nil || out != "rotated-ok\n" {
			return fmt.Errorf("tether ssh to %s: %v\n%s%s", node, err, out, errOut)
		}
		return nil
	}
	tetherSSH := func(u user) error { return tetherSSHTo(u, "node1") }
	openSSH := func(u user, who string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		keys := filepath.Join(u.home, "keys", "127.0.0.1")
		cmd := exec.CommandContext(ctx, sshBin, "-o", "BatchMode=yes", "-o", "ControlPath=none", "-o", "IdentityAgent=none",
			"-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no",
			"-o", fmt.Sprintf("ProxyCommand=%s proxy ssh --cluster=%s %%r@%%h:%%p", tether, name),
			"-o", "UserKnownHostsFile="+filepath.Join(u.home, "known_hosts"),
			"-o", "IdentitiesOnly=yes", "-i", filepath.Join(keys, who),
			"-o", "CertificateFile="+filepath.Join(keys, who+"-cert.pub"),
			login+"@node1."+name, "echo rotated-ok")
		cmd.Env = append(os.Environ(), "TETHER_HOME="+u.home)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.HasSuffix(string(out), "rotated-ok\n") {
			return fmt.Errorf("OpenSSH through tether proxy ssh: %v\n%s", err, out)
		}
		return nil
	}
	rotate := func(phase string) {
		t.Helper()
		out := root.ctl(t, tetherctl, "auth", "rotate", "--type=host", "--phase="+phase)
		if !strings.Contains(out, "The host CA is in phase "+phase) {
			t.Fatalf("auth rotate --phase=%s:\n%s", phase, out)
		}
	}

	// Bad input says what to give; a skipped phase is refused by the server, which names
	// the phases it allows.
	for _, tc := range []struct{ args, want string }{
		{"--type=ssh --phase=init", `--type="ssh": give --type=user, host, tls or openssh`},
		{"--type=host --phase=later", `--phase="later": give --phase=init`},
		{"--type=host --phase=update_clients", "cannot go from standby to update_clients; the next phase is one of [init]"},
	} {
		out, err := exec.Command(tetherctl, append(append([]string{"auth", "rotate"}, strings.Fields(tc.args)...), "--data-dir", root.dataDir)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) || strings.Count(string(out), "\n") > 2 {
			t.Fatalf("auth rotate %s: %v\n%s", tc.args, err, out)
		}
	}

	before := signIn("alice")
	if n := hostCAKeys(before); n != 1 {
		t.Fatalf("known_hosts before the rotation holds %d host CA lines, want 1", n)
	}
	testenv.Eventually(t, 30*time.Second, func() error { return tetherSSH(before) })

	rotate("init")
	mid := signIn("bob")
	if n := hostCAKeys(mid); n != 2 {
		t.Fatalf("known_hosts mid-rotation holds %d host CA lines, want 2 (old and new key)", n)
	}
	for _, phase := range []string{"init", "update_clients", "update_servers"} {
		if phase != "init" {
			rotate(phase)
		}
		if phase == "update_servers" {
			sshdNode.sign(t)
			sshdNode.reload(t)
		}
		// The node agent renews its host certificate by heartbeat: within a few intervals.
		testenv.Eventually(t, 30*time.Second, func() error { return tetherSSH(mid) })
		if err := openSSH(mid, "bob"); err != nil {
			t.Fatalf("phase %s: %v\n%s", phase, err, root.log)
		}
		testenv.Eventually(t, 30*time.Second, func() error { return tetherSSHTo(mid, "node-ssh") })
	}
	rotate("standby")
	after := signIn("carol")
	if n := hostCAKeys(after); n != 1 {
		t.Fatalf("known_hosts after the rotation holds %d host CA lines, want 1", n)
	}
	testenv.Eventually(t, 30*time.Second, func() error { return tetherSSH(after) })
	if err := openSSH(after, "carol"); err != nil {
		t.Fatalf("after the rotation: %v", err)
	}
	if err := tetherSSHTo(after, "node-ssh"); err != nil {
		t.Fatalf("after the rotation, the OpenSSH node re-signed in update_servers: %v\n%s", err, sshdNode.log)
	}
	if err := tetherSSH(mid); err != nil {
		t.Fatalf("a profile trusting both keys stopped working: %v", err)
	}
	// The old key is gone: a profile that trusts only it must not accept the node (tether
	// reaches the proxy over TLS, whose CA did not change; the node's host certificate is
	// of the new key) nor the proxy's SSH entry (OpenSSH, below).
	if err := tetherSSH(before); err == nil || !strings.Contains(err.Error(), "host key verification failed for node") || !strings.Contains(err.Error(), "the cluster's host CA changed") || !strings.Contains(err.Error(), "run tether login again") {
		t.Fatalf("a profile trusting only the dropped host CA key: %v", err)
	}
	if err := openSSH(before, "alice"); err == nil {
		t.Fatal("OpenSSH trusting only the dropped host CA key still accepted the proxy")
	}
	// The phase survives a look at the status, and the data directory holds one key.
	if st := root.ctl(t, tetherctl, "status"); !strings.Contains(st, "(standby)") {
		t.Fatalf("status after the rotation:\n%s", st)
	}
	if keys, _ := filepath.Glob(filepath.Join(root.dataDir, "ca", "host", "key-*.pub")); len(keys) != 1 || filepath.Base(keys[0]) != "key-2.pub" {
		t.Fatalf("host CA keys on disk after the rotation: %v", keys)
	}
}

// A TLS CA rotation of a running root, through every phase with tetherctl auth rotate,
// with no restart: tetherctl keeps working (the admin identity is issued again), the node
// agent beside the cluster stays online (its heartbeat client certificate is renewed when
// the signing CA changes), and after the rotation the web API presents a certificate of
// the new CA only, which a user added then (--ca-file is the new CA) signs in with.
func TestTLSCARotationWithoutRestart(t *testing.T) {
	tetherd, tetherctl, tether := binaries(t)
	me, err := osuser.Current()
	if err != nil {
		t.Fatal(err)
	}
	const name = "root.example.com"
	root, _ := startTetherdWith(t, tetherd, name,
		"node:\n  enabled: true\n  name: node1\n  listen_addr: 127.0.0.1:0\n  public_addr: 127.0.0.1:0\n  heartbeat_interval: 300ms\n")
	lastHeartbeat := regexp.MustCompile(`last_heartbeat: (\S+)`)
	// onlineSince: node1 is online with a heartbeat accepted after since.
	onlineSince := func(since time.Time) error {
		out, err := exec.Command(tetherctl, "get", "node/node1", "--data-dir", root.dataDir).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "connection: online") {
			return fmt.Errorf("node1: %v\n%s", err, out)
		}
		m := lastHeartbeat.FindStringSubmatch(string(out))
		if m == nil {
			return fmt.Errorf("node1 shows no heartbeat:\n%s", out)
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil || !at.After(since) {
			return fmt.Errorf("node1's last heartbeat %s is not after %s", m[1], since)
		}
		return nil
	}
	testenv.Eventually(t, 30*time.Second, func() error { return onlineSince(time.Time{}) })
	webCertIssuer := func() []byte {
		t.Helper()
		conn, err := tls.Dial("tcp", root.addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only reading the certificate
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].AuthorityKeyId
	}
	first := webCertIssuer()
	for _, phase := range []string{"init", "update_clients", "update_servers", "standby"} {
		out := root.ctl(t, tetherctl, "auth", "rotate", "--type=tls", "--phase="+phase)
		if !strings.Contains(out, "The tls CA is in phase "+phase) {
			t.Fatalf("auth rotate --phase=%s:\n%s", phase, out)
		}
		if st := root.ctl(t, tetherctl, "status"); !strings.Contains(st, "("+phase+")") {
			t.Fatalf("status in %s:\n%s", phase, st)
		}
		// The node's heartbeats are still accepted: one more than a second after the move
		// (several intervals, so a renewed client certificate was sent and used).
		moved := time.Now().Add(time.Second)
		testenv.Eventually(t, 20*time.Second, func() error { return onlineSince(moved) })
	}
	if bytes.Equal(webCertIssuer(), first) {
		t.Fatal("the web API still presents a certificate of the dropped TLS CA")
	}
	newCA, err := os.ReadFile(filepath.Join(root.dataDir, "ca", "tls", "key-2.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(newCA)
	conn, err := tls.Dial("tcp", root.addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("the web API's certificate does not verify with the new TLS CA alone: %v", err)
	}
	conn.Close()

	u := user{bin: tether, home: filepath.Join(t.TempDir(), "dave")}
	added := root.ctl(t, tetherctl, "users", "add", "dave", "--roles=access", "--logins="+me.Username)
	if !strings.Contains(added, "key-2.crt") {
		t.Fatalf("users add after the rotation does not name the new TLS CA:\n%s", added)
	}
	secret := u.signUp(t, added, "dave password 1")
	proxy := regexp.MustCompile(`--proxy=(\S+)`).FindStringSubmatch(added)[1]
	caFile := regexp.MustCompile(`--ca-file=(\S+)`).FindStringSubmatch(added)[1]
	u.must(t, "dave password 1\n"+auth.TOTPCode(secret, time.Now().Add(auth.TOTPPeriod))+"\n", "login", "--proxy="+proxy, "--ca-file="+caFile, "--user=dave")
	if out := u.must(t, "", "ls"); !strings.Contains(out, "node1") {
		t.Fatalf("tether ls after the rotation:\n%s", out)
	}
}
