package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// tether config's blocks make OpenSSH trust nodes only through the @cert-authority lines
// of tether's known_hosts: StrictHostKeyChecking yes, so a host presenting a plain key (a
// root or leaf in the middle, a misregistered node) is refused, never offered as "Are you
// sure you want to continue connecting?", whose "yes" would write that key into tether's
// known_hosts (trust on first use, which tether never does). Read back with the real
// OpenSSH client (ssh -G).
func TestConfigMakesOpenSSHRefuseUnknownHostKeys(t *testing.T) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("no OpenSSH client (make tools installs it)")
	}
	home := t.TempDir()
	t.Setenv("TETHER_HOME", home)
	hostCA, _ := newTestSigner(t)
	p := &Profile{Proxy: "127.0.0.1:3080", User: "alice", Cluster: "root", SelectedCluster: "root", ValidBefore: time.Now().Add(time.Hour)}
	p.dir = home
	if err := p.save(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{p.KeyPath(), p.CertPath(), p.TLSCertPath(), p.TLSKeyPath()} {
		if err := writeFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostCA.PublicKey())))
	kh := "@cert-authority *.root,root,127.0.0.1 " + key + " clustername=root&type=host\n@cert-authority *.leaf,leaf " + key + " clustername=leaf&type=host\n"
	if err := os.WriteFile(p.KnownHostsPath(), []byte(kh), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := rootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"config"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(cfg, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"node1.leaf", "node1.root"} {
		g, err := exec.Command(sshBin, "-G", "-F", cfg, "visitor@"+host).Output()
		if err != nil {
			t.Fatalf("ssh -G %s: %v\n%s", host, err, out.String())
		}
		if !strings.Contains(string(g), "\nstricthostkeychecking true\n") {
			t.Errorf("ssh -G -F (tether config) visitor@%s: StrictHostKeyChecking is not yes:\n%s", host, out.String())
		}
		if !strings.Contains(string(g), "\nuserknownhostsfile "+p.KnownHostsPath()+"\n") {
			t.Errorf("%s: not tether's known_hosts", host)
		}
		// AES-GCM first (the cluster's side is Go: AES instructions, no ChaCha20 assembly),
		// OpenSSH's other default ciphers kept.
		if !strings.Contains(string(g), "\nciphers "+configCiphers+"\n") {
			t.Errorf("%s: ciphers are not tether config's order:\n%s", host, g)
		}
	}
	// The proxy's own block, for ProxyJump: its port, the profile's user and keys, and its
	// host certificate checked under the root cluster's name.
	g, err := exec.Command(sshBin, "-G", "-F", cfg, "127.0.0.1").Output()
	if err != nil {
		t.Fatalf("ssh -G 127.0.0.1: %v\n%s", err, out.String())
	}
	for _, want := range []string{"\nport 3080\n", "\nuser alice\n", "\nhostkeyalias root\n", "\nstricthostkeychecking true\n",
		"\ncertificatefile " + p.CertPath() + "\n", "\nuserknownhostsfile " + p.KnownHostsPath() + "\n"} {
		if !strings.Contains(string(g), want) {
			t.Errorf("ssh -G -F (tether config) 127.0.0.1 lacks %q:\n%s", strings.TrimSpace(want), out.String())
		}
	}
}
