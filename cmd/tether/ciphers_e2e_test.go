package main

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tetherproject/tether/internal/testenv"
)

// TestCiphersOption: with ciphers set to AES-GCM, an OpenSSH client that insists on
// ChaCha20-Poly1305 is refused at the proxy's SSH entry during key exchange, while
// OpenSSH's default list gets through to authentication; without the option ChaCha20
// clients get through too (x/crypto's defaults, as Teleport).
func TestCiphersOption(t *testing.T) {
	tetherd, _, _ := binaries(t)
	sshBin := testenv.Command(t, "ssh")
	t.Setenv("TETHER_CIPHERS", "aes128-gcm@openssh.com,aes256-gcm@openssh.com")
	restricted := startTetherd(t, tetherd, "aes.example.com")
	os.Unsetenv("TETHER_CIPHERS")
	open := startTetherd(t, tetherd, "default.example.com")
	try := func(p *proc, cipher string) string {
		t.Helper()
		_, port, _ := net.SplitHostPort(p.addr)
		args := []string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentityAgent=none", "-o", "PubkeyAuthentication=no", "-o", "ConnectTimeout=20", "-p", port}
		if cipher != "" {
			args = append(args, "-c", cipher)
		}
		out, err := exec.Command(sshBin, append(args, "nobody@127.0.0.1", "true")...).CombinedOutput()
		if err == nil {
			t.Fatalf("ssh -c %q to %s without credentials succeeded:\n%s", cipher, p.name, out)
		}
		return string(out)
	}
	if out := try(restricted, "chacha20-poly1305@openssh.com"); !strings.Contains(out, "no matching cipher found") {
		t.Errorf("ChaCha20-only client against ciphers: [aes-gcm]:\n%s", out)
	}
	for _, c := range []struct {
		p      *proc
		cipher string
	}{{restricted, ""}, {restricted, "aes256-gcm@openssh.com"}, {open, "chacha20-poly1305@openssh.com"}, {open, ""}} {
		if out := try(c.p, c.cipher); !strings.Contains(out, "Permission denied") || strings.Contains(out, "no matching cipher") {
			t.Errorf("%s, ssh -c %q: want the key exchange to pass and authentication to fail:\n%s", c.p.name, c.cipher, out)
		}
	}
}
