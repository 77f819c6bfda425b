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
	hostCA, _ := newTestSigner(t)
	p := saveStubProfile(t, t.TempDir(), "127.0.0.1:3080", "root")
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostCA.PublicKey())))
	kh := "@cert-authority *.root,root,127.0.0.1 " + key + " clustername=root&type=host\n@cert-authority *.leaf,leaf " + key + " clustername=leaf&type=host\n"
	if err := os.WriteFile(p.KnownHostsPath(), []byte(kh), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, out := writeTetherConfig(t)
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

// A profile directory with '%' (OpenSSH expands %d, %h... in IdentityFile, CertificateFile,
// UserKnownHostsFile and ProxyCommand), a quote or '$' in its path: tether config printed
// the paths as they are, so OpenSSH read another known_hosts file ("50%done" became
// "50/rootone") and refused to run the ProxyCommand ("percent_expand: unknown key %d"),
// and the shell running the ProxyCommand expanded "$". Found by the acceptance pass with
// TETHER_HOME="/tmp/acc dir 50%done".
func TestConfigQuotesPathsForOpenSSHAndTheShell(t *testing.T) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("no OpenSSH client (make tools installs it)")
	}
	home := filepath.Join(t.TempDir(), `a dir 50%done it's $HOME`)
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	hostCA, _ := newTestSigner(t)
	p := saveStubProfile(t, home, "127.0.0.1:3080", "root")
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostCA.PublicKey())))
	if err := os.WriteFile(p.KnownHostsPath(), []byte("@cert-authority *.leaf,leaf "+key+" clustername=leaf&type=host\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, out := writeTetherConfig(t)
	g, err := exec.Command(sshBin, "-G", "-F", cfg, "visitor@node1.leaf").Output()
	if err != nil {
		t.Fatalf("ssh -G: %v\n%s", err, out.String())
	}
	if !strings.Contains(string(g), "\nuserknownhostsfile "+p.KnownHostsPath()+"\n") {
		t.Errorf("OpenSSH reads another known_hosts than %q:\n%s", p.KnownHostsPath(), out.String())
	}
	// The ProxyCommand as OpenSSH runs it: %% becomes %, then sh -c "exec ...". Its
	// environment part must give tether the profile directory, unexpanded.
	var proxy string
	for _, l := range strings.Split(string(g), "\n") {
		if c, ok := strings.CutPrefix(l, "proxycommand "); ok {
			proxy = c
		}
	}
	envPart, _, ok := strings.Cut(proxy, " proxy ssh ")
	if !ok || !strings.HasPrefix(envPart, "env ") {
		t.Fatalf("ProxyCommand %q: want env TETHER_HOME=... TETHER proxy ssh ...", proxy)
	}
	envPart = strings.ReplaceAll(envPart, "%%", "%")
	// Drop the program (the last word) and print the variable instead.
	sh := envPart[:strings.LastIndex(envPart, " ")] + " printenv TETHER_HOME"
	got, err := exec.Command("/bin/sh", "-c", sh).Output()
	if err != nil || strings.TrimSuffix(string(got), "\n") != home {
		t.Errorf("the ProxyCommand's shell gives TETHER_HOME=%q (%v), want %q", got, err, home)
	}
}

// saveStubProfile saves, in home (made TETHER_HOME), a profile of alice at proxy for
// cluster with placeholder key and certificate files: enough for tether config.
func saveStubProfile(t *testing.T, home, proxy, cluster string) *Profile {
	t.Helper()
	t.Setenv("TETHER_HOME", home)
	p := &Profile{Proxy: proxy, User: "alice", Cluster: cluster, SelectedCluster: cluster, ValidBefore: time.Now().Add(time.Hour)}
	p.dir = home
	if err := p.save(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{p.KeyPath(), p.CertPath(), p.TLSCertPath(), p.TLSKeyPath()} {
		if err := writeFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// writeTetherConfig runs tether config and writes what it prints to a file, for ssh -F.
func writeTetherConfig(t *testing.T) (path string, out *bytes.Buffer) {
	t.Helper()
	cmd := rootCommand()
	out = &bytes.Buffer{}
	cmd.SetOut(out)
	cmd.SetArgs([]string{"config"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, out
}

// OpenSSH matches Host patterns against the name as the user typed it, case-sensitively,
// but lowercases it for %h, HostName and the host certificate check: "ssh
// NODE1.LEAF-EAST.EXAMPLE.COM" missed tether config's "Host *.leaf-east.example.com" and went
// to DNS (gaps brief, item 4). A name with a final dot ("node1.leaf-east.example.com.") is
// caught too, so that tether proxy ssh can say what to type instead of DNS failing. Cluster
// names are stored lowercase without the dot (resource.NormalizeClusterName), so what the
// user types is all that varies. Read back with the real OpenSSH client (ssh -G).
func TestConfigMatchesTheNamesOpenSSHUsersType(t *testing.T) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("no OpenSSH client (make tools installs it)")
	}
	hostCA, _ := newTestSigner(t)
	p := saveStubProfile(t, t.TempDir(), "tether.example.net:3080", "root.example.com")
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostCA.PublicKey())))
	kh := "@cert-authority *.root.example.com,root.example.com " + key + " clustername=root.example.com&type=host\n" +
		"@cert-authority *.leaf-east.example.com,leaf-east.example.com " + key + " clustername=leaf-east.example.com&type=host\n"
	if err := os.WriteFile(p.KnownHostsPath(), []byte(kh), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, out := writeTetherConfig(t)
	sshG := func(host string) string {
		t.Helper()
		g, err := exec.Command(sshBin, "-G", "-F", cfg, "visitor@"+host).Output()
		if err != nil {
			t.Fatalf("ssh -G %s: %v\n%s", host, err, out.String())
		}
		return string(g)
	}
	for _, tc := range []struct{ typed, cluster string }{
		{"node1.leaf-east.example.com", "leaf-east.example.com"},
		{"NODE1.LEAF-EAST.EXAMPLE.COM", "leaf-east.example.com"},
		{"Node1.Leaf-East.Example.Com", "leaf-east.example.com"},
		{"node1.leaf-east.example.com.", "leaf-east.example.com"},
		{"NODE1.ROOT.EXAMPLE.COM.", "root.example.com"},
	} {
		g := sshG(tc.typed)
		for _, want := range []string{" proxy ssh --cluster=" + tc.cluster + " %r@%h:%p\n", "\nstricthostkeychecking true\n", "\nuserknownhostsfile " + p.KnownHostsPath() + "\n"} {
			if !strings.Contains(g, want) {
				t.Errorf("ssh -G -F (tether config) visitor@%s lacks %q:\n%s", tc.typed, strings.TrimSpace(want), out.String())
			}
		}
	}
	// The proxy's block, whatever the case of the proxy's name.
	for _, typed := range []string{"tether.example.net", "TETHER.EXAMPLE.NET", "tether.example.net."} {
		g := sshG(typed)
		for _, want := range []string{"\nport 3080\n", "\nhostkeyalias root.example.com\n"} {
			if !strings.Contains(g, want) {
				t.Errorf("ssh -G -F (tether config) %s lacks %q:\n%s", typed, strings.TrimSpace(want), out.String())
			}
		}
	}
}

// What tether proxy ssh makes of the %h OpenSSH gives it (lowercased, a final dot kept) or
// of a name typed on its command line: the node, with the cluster's name taken off
// whatever its case; a final dot is refused with what to type instead, since OpenSSH
// checks the node's host certificate against the name with the dot, which no certificate
// names.
func TestProxySSHNodeOfName(t *testing.T) {
	for _, tc := range []struct{ host, cluster, node, err string }{
		{"node1.leaf-east.example.com", "leaf-east.example.com", "node1", ""},
		{"NODE1.LEAF-EAST.EXAMPLE.COM", "leaf-east.example.com", "NODE1", ""},
		{"node1", "leaf-east.example.com", "node1", ""},
		{"db.internal.leaf-east.example.com", "leaf-east.example.com", "db.internal", ""},
		{"node1.leaf-east.example.com.", "leaf-east.example.com", "", `"node1.leaf-east.example.com." ends in a dot: type node1.leaf-east.example.com`},
	} {
		node, err := proxyNodeOfName(tc.host, tc.cluster)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %q %v, want an error saying %q", tc.host, node, err, tc.err)
			}
			continue
		}
		if err != nil || node != tc.node {
			t.Errorf("%s in %s: %q %v, want %q", tc.host, tc.cluster, node, err, tc.node)
		}
	}
}

// OpenSSH keeps the first value it reads for an option: tether config's blocks placed
// after a "Host *" block of ~/.ssh/config lose StrictHostKeyChecking and UserKnownHostsFile
// to it (with "StrictHostKeyChecking accept-new" there, ssh then added a node's plain key
// to the user's known_hosts on first use; found by the acceptance pass). The output and the
// help say to put the blocks first; ssh -G shows the order matters.
func TestConfigSaysToComeBeforeHostStar(t *testing.T) {
	p := saveStubProfile(t, t.TempDir(), "127.0.0.1:3080", "root")
	if err := os.WriteFile(p.KnownHostsPath(), []byte("@cert-authority *.root,root,127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFwQ4m9j5cF6nWcLzq4FZ9c0mC0jH2HcvM7vL8Cq0q2B clustername=root&type=host\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, out := writeTetherConfig(t)
	const advice = "before any Host * block"
	if head, _, _ := strings.Cut(out.String(), "\nMatch "); !strings.Contains(head, advice) {
		t.Errorf("tether config does not say, before its first block, to go %s:\n%s", advice, out.String())
	}
	if long := configCommand().Long; !strings.Contains(long, advice) {
		t.Errorf("tether config --help does not say %q:\n%s", advice, long)
	}
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		return
	}
	star := "Host *\n    StrictHostKeyChecking accept-new\n    UserKnownHostsFile /dev/null\n"
	for _, tc := range []struct {
		file, want string
	}{
		{star + out.String(), "\nstricthostkeychecking accept-new\n"},
		{out.String() + star, "\nstricthostkeychecking true\n"},
	} {
		cfg := filepath.Join(t.TempDir(), "config")
		if err := os.WriteFile(cfg, []byte(tc.file), 0o600); err != nil {
			t.Fatal(err)
		}
		g, err := exec.Command(sshBin, "-G", "-F", cfg, "visitor@node1.root").Output()
		if err != nil || !strings.Contains(string(g), tc.want) {
			t.Errorf("ssh -G: %v, want %q", err, strings.TrimSpace(tc.want))
		}
	}
}
