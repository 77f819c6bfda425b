package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/gateway/web"
)

// A cluster name a proxy sent at login (a malicious proxy, or a man in the middle of an
// --insecure login) never reaches tether config: an old profile holding one is written
// without it (found by the attacker review: the name ran a command in the ProxyCommand).
func TestAClusterNameFromTheProxyNeverReachesTheShell(t *testing.T) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("no ssh")
	}
	home := t.TempDir()
	marker := filepath.Join(t.TempDir(), "pwned")
	hostCA, _ := newTestSigner(t)
	p := saveStubProfile(t, home, "127.0.0.1:3080", "root")
	evil := "q tether host CA of x * $(touch${IFS}" + marker + ");#"
	// What tether login writes for a host CA whose cluster the proxy named evil.
	line := web.KnownHostsLine(evil, hostCA.PublicKey())
	if err := os.WriteFile(p.KnownHostsPath(), []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, out := writeTetherConfig(t)
	t.Logf("config:\n%s", out)
	g, err := exec.Command(sshBin, "-G", "-F", cfg, "alice@db1.corp.example.com").Output()
	if err != nil {
		t.Fatalf("ssh -G: %v", err)
	}
	var proxy string
	for _, l := range strings.Split(string(g), "\n") {
		if c, ok := strings.CutPrefix(l, "proxycommand "); ok {
			proxy = c
		}
	}
	t.Logf("ProxyCommand for an unrelated host: %q", proxy)
	self, _ := os.Executable()
	sh := strings.Replace(proxy, "'"+self+"'", "true", 1)
	_ = exec.Command("/bin/sh", "-c", "exec "+sh).Run()
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the proxy's cluster name ran a command in the ProxyCommand's shell")
	}
}

// tether login refuses a login answer naming a host CA's cluster with anything but a
// cluster name, before it writes known_hosts.
func TestLoginRefusesAHostCAOfANameThatIsNoClusterName(t *testing.T) {
	hostCA, _ := newTestSigner(t)
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostCA.PublicKey())))
	for _, name := range []string{"x * $(touch /tmp/p);#", "leaf east", "*", "Leaf-East", "a\nb"} {
		resp := &web.LoginResponse{Cluster: "root.example.com", HostCAs: []web.HostCA{
			{Cluster: "root.example.com", Keys: []string{key}}, {Cluster: name, Keys: []string{key}}}}
		if _, err := knownHostsLines(resp, "127.0.0.1"); err == nil || !strings.Contains(err.Error(), "not a cluster name") {
			t.Errorf("host CA of %q: %v, want a refusal", name, err)
		}
	}
}
