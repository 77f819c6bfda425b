package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/adminclient"
	"github.com/tetherproject/tether/gateway/identity"
	"github.com/tetherproject/tether/gateway/web"
	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/resource"
)

// tetherdProcess runs `tetherd start -c cfg` until the test ends (or stop).
func tetherdProcess(t *testing.T, cfg string) (stop func(), out *testenv.Buffer) {
	t.Helper()
	cmd := exec.Command(tetherdBinary(t), "start", "-c", cfg)
	out = &testenv.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	stop = func() {
		if done {
			return
		}
		done = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("tetherd did not stop cleanly: %v\n%s", err, out.String())
		}
	}
	t.Cleanup(stop)
	return stop, out
}

func writeFile(t *testing.T, path, data string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// nodeTestUser creates a Unix user (needs root) and removes it at the end.
func nodeTestUser(t *testing.T) *user.User {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("node sessions run as the login's user: this test creates one with useradd and needs root")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := fmt.Sprintf("tdn%x", b)
	if out, err := exec.Command(testenv.Command(t, "useradd"), "--create-home", "--shell", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command("pkill", "-KILL", "-u", name).Run()
		_ = exec.Command(testenv.Command(t, "userdel"), "--remove", name).Run()
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestTetherdServesANodeBesideItsCluster: one tetherd runs the cluster and a node agent
// that joins it by itself; OpenSSH's ssh, sftp run against the node with a certificate
// of the cluster's openssh CA, and the sftp subsystem is tetherd node-sftp run as the login.
func TestTetherdServesANodeBesideItsCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs tetherd")
	}
	u := nodeTestUser(t)
	// The sftp subsystem re-executes tetherd as the login: it must be able to run it.
	if err := os.Chmod(filepath.Dir(tetherdBinary(t)), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	sshAddr := freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "tether.yaml"), fmt.Sprintf(`cluster_name: root.example.com
data_dir: %s
proxy:
  web_listen_addr: %s
node:
  enabled: true
  name: node1
  labels: {env: test}
  listen_addr: %s
`, dataDir, freeAddr(t), sshAddr))
	_, out := tetherdProcess(t, cfg)
	testenv.Eventually(t, 30*time.Second, func() error {
		if !strings.Contains(out.String(), "node agent running") {
			return fmt.Errorf("node agent not running yet:\n%s", out.String())
		}
		return nil
	})
	cluster, err := ca.LoadCluster(filepath.Join(dataDir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	keyPath, knownHosts := openSSHFiles(t, cluster, u.Username)
	host, port := strings.Split(sshAddr, ":")[0], strings.Split(sshAddr, ":")[1]
	opts := []string{"-F", "/dev/null", "-i", keyPath, "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=" + knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"}
	cmd := exec.Command(testenv.Command(t, "ssh"), append(opts, "-p", port, u.Username+"@"+host, "id -un; exit 3")...)
	got, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || string(got) != u.Username+"\n" {
		t.Fatalf("ssh: %v %q, want %q and exit status 3\n%s", err, got, u.Username, out.String())
	}
	local := writeFile(t, filepath.Join(dir, "up.txt"), "through tetherd node-sftp\n")
	batch := writeFile(t, filepath.Join(dir, "batch"), "put "+local+" up.txt\n")
	sftpArgs := append([]string{"-P", port, "-b", batch}, opts...)
	if b, err := exec.Command(testenv.Command(t, "sftp"), append(sftpArgs, u.Username+"@"+host)...).CombinedOutput(); err != nil {
		t.Fatalf("sftp: %v\n%s\n%s", err, b, out.String())
	}
	st, err := os.Stat(filepath.Join(u.HomeDir, "up.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(st.Sys().(*syscall.Stat_t).Uid) != u.Uid {
		t.Fatalf("uploaded file owned by uid %d, want %s", st.Sys().(*syscall.Stat_t).Uid, u.Uid)
	}

	// ssh -W: the connection is made by `tetherd node-net` as the login, not by the
	// root agent.
	dest, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dest.Close()
	type owned struct {
		uid int
		err error
	}
	owner := make(chan owned, 1)
	go func() {
		c, err := dest.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		uid, err := testenv.TCPSocketUID(c.RemoteAddr().(*net.TCPAddr).Port, dest.Addr().(*net.TCPAddr).Port)
		owner <- owned{uid, err}
		_, _ = io.Copy(c, c)
	}()
	cmd = exec.Command(testenv.Command(t, "ssh"), append(opts, "-p", port, "-W", dest.Addr().String(), u.Username+"@"+host)...)
	cmd.Stdin = strings.NewReader("through tetherd node-net\n")
	if got, err := cmd.Output(); err != nil || string(got) != "through tetherd node-net\n" {
		t.Fatalf("ssh -W: %v %q\n%s", err, got, out.String())
	}
	if got := <-owner; got.err != nil || fmt.Sprint(got.uid) != u.Uid {
		t.Fatalf("ssh -W connected as uid %d (%v), want the login's %s", got.uid, got.err, u.Uid)
	}

	// ssh -R: `tetherd node-net listen` listens and accepts as the login for as long as
	// the forward lives, and ends with it.
	remote := freeAddr(t)
	rport, err := strconv.Atoi(remote[strings.LastIndex(remote, ":")+1:])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fwd := exec.CommandContext(ctx, testenv.Command(t, "ssh"), append(opts, "-p", port, "-N", "-o", "ExitOnForwardFailure=yes",
		"-R", remote+":"+dest.Addr().String(), u.Username+"@"+host)...)
	var fwdErr strings.Builder
	fwd.Stderr = &fwdErr
	if err := fwd.Start(); err != nil {
		t.Fatal(err)
	}
	var conn net.Conn
	testenv.Eventually(t, 30*time.Second, func() error {
		var err error
		conn, err = net.Dial("tcp", remote)
		return err
	})
	defer conn.Close()
	go func() { // the destination echoes what the -R connection brings
		c, err := dest.Accept()
		if err == nil {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}
	}()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, "back through node-net\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "back through node-net\n" {
		t.Fatalf("ssh -R: %q %v\n%s\n%s", line, err, fwdErr.String(), out.String())
	}
	if uid, err := testenv.TCPSocketUID(rport, conn.LocalAddr().(*net.TCPAddr).Port); err != nil || fmt.Sprint(uid) != u.Uid {
		t.Fatalf("ssh -R accepted the connection as uid %d (%v), want the login's %s", uid, err, u.Uid)
	}
	_ = fwd.Process.Kill()
	_ = fwd.Wait()
	testenv.Eventually(t, 10*time.Second, func() error {
		if c, err := net.Dial("tcp", remote); err == nil {
			c.Close()
			return fmt.Errorf("%s still accepts after the ssh -R ended", remote)
		}
		return nil
	})
}

// openSSHFiles writes a key with a node certificate of cluster's openssh CA for login, and a
// known_hosts file trusting its host CA.
func openSSHFiles(t *testing.T, cluster *ca.Cluster, login string) (keyPath, knownHosts string) {
	t.Helper()
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	cert, err := cluster.OpenSSH.IssueUser(ca.UserCertRequest{PublicKey: signer.PublicKey(), Username: "alice", Logins: []string{login}, TTL: 10 * time.Minute, MaxTTL: 10 * time.Minute, NodeAccess: true})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := ssh.MarshalPrivateKey(priv, "")
	keyPath = writeFile(t, filepath.Join(dir, "id"), string(pem.EncodeToMemory(block)))
	writeFile(t, keyPath+"-cert.pub", string(ssh.MarshalAuthorizedKey(cert)))
	var kh strings.Builder
	for _, k := range cluster.Host.TrustedKeys() {
		kh.WriteString("@cert-authority * " + ca.AuthorizedKey(k.Key) + "\n")
	}
	return keyPath, writeFile(t, filepath.Join(dir, "known_hosts"), kh.String())
}

// TestTetherdNodeAloneJoinsAndHeartbeats: a second tetherd, a node only, joins a cluster
// with a node token, pinning the cluster's TLS CA by file; the cluster shows it online,
// and offline once its process stopped and the heartbeat TTL passed.
func TestTetherdNodeAloneJoinsAndHeartbeats(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs tetherd")
	}
	dir := t.TempDir()
	clusterData := filepath.Join(dir, "cluster")
	webAddr := freeAddr(t)
	startTetherd(t, writeFile(t, filepath.Join(dir, "cluster.yaml"), fmt.Sprintf("cluster_name: root.example.com\ndata_dir: %s\nproxy:\n  web_listen_addr: %s\n", clusterData, webAddr)), true)
	id, err := identity.Load(filepath.Join(clusterData, identity.FileName))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := adminclient.New(id, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok, err := admin.AddToken(ctx, web.TokenRequest{Roles: []string{resource.TokenRoleNode}, TTL: "5m"})
	if err != nil {
		t.Fatal(err)
	}
	pins, _ := filepath.Glob(filepath.Join(clusterData, "ca", "tls", "key-*.crt"))
	if len(pins) == 0 {
		t.Fatal("no TLS CA certificate file to pin")
	}
	nodeCfg := writeFile(t, filepath.Join(dir, "node.yaml"), fmt.Sprintf(`data_dir: %s
node:
  enabled: true
  name: lonely
  labels: {role: db}
  listen_addr: %s
  auth_server: %s
  token: %s
  ca_pin_file: %s
  heartbeat_interval: 200ms
`, filepath.Join(dir, "node"), freeAddr(t), webAddr, tok.Token, pins[0]))
	stop, out := tetherdProcess(t, nodeCfg)
	status := func() (string, error) {
		docs, err := admin.Get(ctx, resource.KindNode, "lonely", false)
		if err != nil {
			return "", err
		}
		rs, err := resource.Parse([]byte(docs[0]), "node")
		if err != nil {
			return "", err
		}
		n := rs[0].(*resource.Node)
		if n.Metadata.Labels["role"] != "db" {
			return "", fmt.Errorf("labels %v", n.Metadata.Labels)
		}
		return n.Status.Connection, nil
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		s, err := status()
		if err != nil || s != resource.ConnectionOnline {
			return fmt.Errorf("status %q %v\n%s", s, err, out.String())
		}
		return nil
	})
	stop()
	testenv.Eventually(t, 30*time.Second, func() error {
		if s, err := status(); err != nil || s != resource.ConnectionOffline {
			return fmt.Errorf("status %q %v", s, err)
		}
		return nil
	})
}

// TestNodeStoppedWhileJoiningStopsCleanly: SIGTERM while the join request is still
// waiting for the cluster (here a listener that never answers) is a clean stop, exit 0,
// like a stop at any other time.
func TestNodeStoppedWhileJoiningStopsCleanly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // hold it open, answer nothing
		}
	}()
	dir := t.TempDir()
	// A CA to pin; the listener never gets as far as presenting a certificate.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pin"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pin := writeFile(t, filepath.Join(dir, "pin.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	nodeCfg := writeFile(t, filepath.Join(dir, "node.yaml"), fmt.Sprintf(`data_dir: %s
node:
  enabled: true
  name: patient
  listen_addr: %s
  auth_server: %s
  token: 0123456789abcdef0123456789abcdef
  ca_pin_file: %s
`, filepath.Join(dir, "node"), freeAddr(t), ln.Addr(), pin))
	stop, out := tetherdProcess(t, nodeCfg)
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(30 * time.Second):
		t.Fatalf("the node never dialed the cluster:\n%s", out.String())
	}
	stop() // fails the test unless tetherd exits 0
	if !strings.Contains(out.String(), "stopped before the node finished joining") {
		t.Fatalf("no log line saying the node stopped while joining:\n%s", out.String())
	}
}
