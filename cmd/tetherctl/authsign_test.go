package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
)

// auth sign certifies a host key only for names a node can have: a name the cluster
// would refuse for a node (a space, an address, a path) is refused before anything is
// signed, naming the rule, and a good name still signs.
func TestAuthSignRefusesNamesNoNodeCanHave(t *testing.T) {
	dir := t.TempDir()
	cluster, err := ca.NewCluster("leaf.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.Save(filepath.Join(dir, "ca")); err != nil {
		t.Fatal(err)
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(dir, "host.pub")
	if err := os.WriteFile(pubFile, ssh.MarshalAuthorizedKey(sshPub), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"a b", "10.0.0.1", "../x", "_x", "node1,a b", "x\x1b[2J"} {
		out, err := run(t, "auth", "sign", "--data-dir="+dir, "--host="+bad, "--pub="+pubFile)
		if err == nil || strings.Contains(out, "-cert-v01@openssh.com") || !strings.Contains(err.Error(), "node name") {
			t.Errorf("--host=%q: err %v, output %q", bad, err, out)
		}
	}
	out, err := run(t, "auth", "sign", "--data-dir="+dir, "--host=node1", "--pub="+pubFile)
	if err != nil || !strings.Contains(out, "ssh-ed25519-cert-v01@openssh.com") {
		t.Fatalf("--host=node1: %v %q", err, out)
	}
}
