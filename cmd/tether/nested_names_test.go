package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/gateway/web"
)

// A cluster's host CA vouches only for its own names, never for those of a cluster named
// under it. A leaf may choose its name when it joins (an unbound invitation token), so
// the admin of a leaf named example.com joined to the root root.example.com used to get,
// through tether config, both the route and the trust for the root's nodes: the block
// "Host *.example.com" came first (blocks were sorted by name, and OpenSSH takes the first
// ProxyCommand), so ssh -F CFG visitor@db.root.example.com went through the tunnel to that
// leaf, and the known_hosts line "@cert-authority *.example.com" accepted the leaf's host
// certificate for db.root.example.com: the user was served a shell by the leaf, believing
// it the root's node, with StrictHostKeyChecking on and no warning. Checked with the real
// OpenSSH client (ssh -G for the routes, a real host key check for the trust).
func TestANestedClusterNameIsNeitherRouteNorCAForTheOther(t *testing.T) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("no OpenSSH client (make tools installs it)")
	}
	rootCA, _ := newTestSigner(t)
	leafCA, _ := newTestSigner(t)
	otherCA, _ := newTestSigner(t)
	key := func(s ssh.Signer) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))) }
	resp := &web.LoginResponse{Cluster: "root.example.com", HostCAs: []web.HostCA{
		{Cluster: "root.example.com", Keys: []string{key(rootCA)}},
		{Cluster: "example.com", Keys: []string{key(leafCA)}},
		{Cluster: "leaf-east", Keys: []string{key(otherCA)}},
	}}
	// The proxy's host is under the leaf's name too.
	known, err := knownHostsLines(resp, "tether.example.com")
	if err != nil {
		t.Fatal(err)
	}

	p := saveStubProfile(t, t.TempDir(), "tether.example.com:3080", "root.example.com")
	if err := os.WriteFile(p.KnownHostsPath(), []byte(strings.Join(known, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("tether_config_routes_each_name_to_its_own_cluster", func(t *testing.T) {
		cfg, out := writeTetherConfig(t)
		for host, want := range map[string]string{
			"db.root.example.com": "--cluster=root.example.com ",
			"db.example.com":      "--cluster=example.com ",
			"db.leaf-east":        "--cluster=leaf-east ",
			"tether.example.com":  "", // the proxy itself: no ProxyCommand
		} {
			g, err := exec.Command(sshBin, "-G", "-F", cfg, "visitor@"+host).Output()
			if err != nil {
				t.Fatalf("ssh -G %s: %v", host, err)
			}
			var got string
			for _, l := range strings.Split(string(g), "\n") {
				if strings.HasPrefix(l, "proxycommand ") {
					got = l
				}
			}
			if want == "" && got != "" || want != "" && !strings.Contains(got, want) {
				t.Errorf("ssh -G -F (tether config) %s: %q, want a ProxyCommand with %q\n%s", host, got, want, out.String())
			}
		}
		g, err := exec.Command(sshBin, "-G", "-F", cfg, "tether.example.com").Output()
		if err != nil || !strings.Contains(string(g), "\nhostkeyalias root.example.com\n") || !strings.Contains(string(g), "\nport 3080\n") {
			t.Errorf("ssh -G tether.example.com: the proxy's block does not apply (%v):\n%s", err, out.String())
		}
	})

	t.Run("openssh_trusts_a_CA_only_for_its_own_clusters_names", func(t *testing.T) {
		for _, tc := range []struct {
			ca     ssh.Signer
			name   string
			accept bool
		}{
			{rootCA, "db.root.example.com", true},
			{rootCA, "root.example.com", true},
			{leafCA, "db.example.com", true},
			{leafCA, "db.root.example.com", false},
			{leafCA, "root.example.com", false},
			{leafCA, "tether.example.com", false},
			{rootCA, "tether.example.com", true},
			{otherCA, "db.root.example.com", false},
		} {
			out, accepted, refused := opensshHostCheck(t, sshBin, p.KnownHostsPath(), tc.ca, tc.name)
			if accepted == refused || accepted != tc.accept {
				t.Errorf("a host certificate of the %s CA for %s: accepted=%v, want %v\n%s", caName(tc.ca, rootCA, leafCA), tc.name, accepted, tc.accept, out)
			}
		}
	})

	t.Run("tethers_own_check_trusts_only_the_names_cluster", func(t *testing.T) {
		cas, err := knownHostCAs(p, "db.root.example.com")
		if err != nil {
			t.Fatal(err)
		}
		if len(cas) != 1 || !bytes.Equal(cas[0].Key.Marshal(), rootCA.PublicKey().Marshal()) {
			t.Errorf("knownHostCAs(db.root.example.com) = %d keys, want only the root's", len(cas))
		}
		if cas, _ := knownHostCAs(p, "db.example.com"); len(cas) != 1 || !bytes.Equal(cas[0].Key.Marshal(), leafCA.PublicKey().Marshal()) {
			t.Errorf("knownHostCAs(db.example.com) = %d keys, want only the leaf's", len(cas))
		}
	})
}

func caName(s, root, leaf ssh.Signer) string {
	switch {
	case bytes.Equal(s.PublicKey().Marshal(), root.PublicKey().Marshal()):
		return "root"
	case bytes.Equal(s.PublicKey().Marshal(), leaf.PublicKey().Marshal()):
		return "leaf"
	}
	return "other"
}

// refusingSSHServer is an SSH server on loopback presenting hostKey that refuses every
// opensshHostCheck connects real OpenSSH, strict about host keys with knownHosts, to a
// server presenting a host certificate of ca for name: accepted when ssh got as far as
// the (refused) login, refused when it rejected the host key.
func opensshHostCheck(t *testing.T, sshBin, knownHosts string, ca ssh.Signer, name string) (out []byte, accepted, refused bool) {
	t.Helper()
	hostKey, _, _ := testCert(t, ca, ssh.HostCert, name)
	host, port, _ := net.SplitHostPort(refusingSSHServer(t, hostKey))
	out, _ = exec.Command(sshBin, "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "UserKnownHostsFile="+knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "HostKeyAlias="+name,
		"-o", "HostKeyAlgorithms=ssh-ed25519-cert-v01@openssh.com", "-o", "IdentitiesOnly=yes", "-o", "IdentityFile=/nonexistent",
		"-o", "ConnectTimeout=10", "-p", port, "nobody@"+host, "true").CombinedOutput()
	return out, strings.Contains(string(out), "Permission denied"), strings.Contains(string(out), "Host key verification failed")
}

// client: a client that accepts the host key reads "Permission denied".
func refusingSSHServer(t *testing.T, hostKey ssh.Signer) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
		return nil, errors.New("refused")
	}}
	cfg.AddHostKey(hostKey)
	serveEach(l, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		_, _, _, _ = ssh.NewServerConn(c, cfg)
	})
	return l.Addr().String()
}

// serveEach serves every connection l accepts with serve, on a goroutine of its own, and
// closes it after; it returns at once and stops when l is closed.
func serveEach(l net.Listener, serve func(net.Conn)) {
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
}

// The proxy's host stays the root's even when it is under a leaf's name: the root's line
// negates the leaf's names, so the proxy host has a line of its own (an exclusion on the
// root's line would have kept tether from trusting its own proxy).
func TestTheProxyHostUnderALeafsNameIsTheRoots(t *testing.T) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("no OpenSSH client (make tools installs it)")
	}
	rootCA, _ := newTestSigner(t)
	leafCA, _ := newTestSigner(t)
	key := func(s ssh.Signer) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))) }
	resp := &web.LoginResponse{Cluster: "example.com", HostCAs: []web.HostCA{
		{Cluster: "example.com", Keys: []string{key(rootCA)}},
		{Cluster: "east.example.com", Keys: []string{key(leafCA)}},
	}}
	known, err := knownHostsLines(resp, "proxy.east.example.com")
	if err != nil {
		t.Fatal(err)
	}
	p := &Profile{Proxy: "proxy.east.example.com:3080", User: "alice", Cluster: "example.com"}
	p.dir = t.TempDir()
	if err := os.WriteFile(p.KnownHostsPath(), []byte(strings.Join(known, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := clustersInKnownHosts(p); strings.Join(got, ",") != "east.example.com,example.com" {
		t.Errorf("clusters in known_hosts: %v", got)
	}
	for _, tc := range []struct {
		ca     ssh.Signer
		name   string
		accept bool
	}{
		{rootCA, "proxy.east.example.com", true},
		{leafCA, "proxy.east.example.com", false},
		{rootCA, "db.example.com", true},
		{leafCA, "db.east.example.com", true},
		{rootCA, "db.east.example.com", false},
	} {
		out, accepted, _ := opensshHostCheck(t, sshBin, p.KnownHostsPath(), tc.ca, tc.name)
		if accepted != tc.accept {
			t.Errorf("a host certificate of the %s CA for %s: accepted=%v, want %v\n%s", caName(tc.ca, rootCA, leafCA), tc.name, accepted, tc.accept, out)
		}
		cas, _ := knownHostCAs(p, tc.name)
		mine := false
		for _, c := range cas {
			mine = mine || bytes.Equal(c.Key.Marshal(), tc.ca.PublicKey().Marshal())
		}
		if mine != tc.accept {
			t.Errorf("tether's own check: the %s CA for %s: trusted=%v, want %v", caName(tc.ca, rootCA, leafCA), tc.name, mine, tc.accept)
		}
	}
}
