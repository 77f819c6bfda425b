package node_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/node"
	"github.com/tetherproject/tether/internal/testenv"
)

// TestOnlyValidUserCertificatesOfTheClusterLogIn: every other credential is refused by
// the node, whatever OpenSSH's client offers, and the reason is logged.
func TestOnlyValidUserCertificatesOfTheClusterLogIn(t *testing.T) {
	n := startSSHNode(t)
	login := n.user.Username
	evil, err := ca.NewCluster("evil.example.com", ca.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	expiring := newUserKey(t, n.g.Auth().CA().OpenSSH, []string{login}, time.Second)
	hostSigned := func() *userKey {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		signer, _ := ssh.NewSignerFromKey(priv)
		cert, err := n.g.Auth().CA().Host.IssueHost(ca.HostCertRequest{PublicKey: signer.PublicKey(), Principals: []string{login}, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return writeUserKey(t, priv, signer, cert)
	}()
	plain := func() *userKey {
		k := n.key(t, login)
		// The same key without its certificate: only authorized_keys would take it.
		if err := removeFile(k.Path + "-cert.pub"); err != nil {
			t.Fatal(err)
		}
		return k
	}()
	// Wait until the one-second certificate has expired (polling, not sleeping blind).
	testenv.Eventually(t, 5*time.Second, func() error {
		if time.Now().Unix() < int64(expiring.Cert.ValidBefore) {
			return errors.New("the short certificate is still valid")
		}
		return nil
	})
	for _, tc := range []struct {
		name, login string
		key         *userKey
		reason      string
	}{
		{"certificate_of_another_CA", login, newUserKey(t, evil.OpenSSH, []string{login}, time.Hour), "not a trusted openssh CA key"},
		{"expired_certificate", login, expiring, "expired at"},
		{"login_not_in_principals", login, n.key(t, "someoneelse"), "does not allow login"},
		{"plain_key_without_certificate", login, plain, "not a certificate"},
		{"login_that_does_not_exist_here", "nosuchlogin9", n.key(t, "nosuchlogin9"), "no such user on this node"},
		// What tether login gets: the cluster's user CA, the login among its principals, but
		// no enforcement-point decision behind it. The node trusts only the openssh CA.
		{"a_users_login_certificate_straight_to_the_node", login, loginCertificate(t, n.g.Auth().CA().User, login), "is a user's login certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := n.ssh(t, tc.key, tc.login, nil, "id -un")
			if code != 255 || out != "" || !strings.Contains(stderr, "Permission denied (publickey)") {
				t.Fatalf("exit %d stdout %q stderr %q: want ssh's publickey denial", code, out, stderr)
			}
			testenv.Eventually(t, 5*time.Second, func() error {
				if !strings.Contains(n.log.String(), tc.reason) {
					return errors.New("the node did not log the reason " + tc.reason + "\n" + n.log.String())
				}
				return nil
			})
		})
	}
	t.Run("host_certificate_as_user_certificate", func(t *testing.T) {
		// OpenSSH's client never offers a host certificate for user authentication; a
		// hand-made client does.
		signer, err := ssh.NewCertSigner(hostSigned.Cert, hostSigned.Signer)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ssh.Dial("tcp", n.agent.Addr().String(), n.clientConfig(t, login, ssh.PublicKeys(signer))); err == nil {
			t.Fatal("a host certificate logged in as a user")
		}
		testenv.Eventually(t, 5*time.Second, func() error {
			if !strings.Contains(n.log.String(), "is a host certificate, not a user certificate") {
				return errors.New("the reason is not logged")
			}
			return nil
		})
	})
	t.Run("password_and_keyboard_interactive", func(t *testing.T) {
		// OpenSSH's client is told only publickey exists.
		code, _, stderr := n.ssh(t, n.key(t, login), login, []string{"-o", "PreferredAuthentications=password,keyboard-interactive"}, "true")
		if code != 255 || !strings.Contains(stderr, "Permission denied (publickey)") {
			t.Fatalf("exit %d stderr %q", code, stderr)
		}
		// A client that tries them anyway is refused, and the attempt logged.
		_, err := ssh.Dial("tcp", n.agent.Addr().String(), n.clientConfig(t, login,
			ssh.Password("hunter2"),
			ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) { return []string{"hunter2"}, nil })))
		if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Fatalf("password login: %v", err)
		}
	})
}

// TestForwardingNeedsTheCertificatesPermits is the attacker's side: a certificate the
// enforcement point issued without permit-port-forwarding / permit-agent-forwarding (the
// policy denied them) gets no forwarding from the node, whatever the client asks; X11
// and Unix socket forwarding are never served.
func TestForwardingNeedsTheCertificatesPermits(t *testing.T) {
	n := startSSHNode(t)
	login := n.user.Username
	key := newUserKeyWithout(t, n.g.Auth().CA().OpenSSH, []string{login}, "permit-port-forwarding", "permit-agent-forwarding")
	t.Run("remote_port_forward_with_openssh", func(t *testing.T) {
		code, _, stderr := n.ssh(t, key, login, []string{"-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:9"}, "true")
		if code != 255 || !strings.Contains(stderr, "remote port forwarding failed") {
			t.Fatalf("exit %d stderr %q, want the forward refused", code, stderr)
		}
	})
	c := n.dial(t, key, login)
	t.Run("local_port_forward", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		_, err = c.Dial("tcp", l.Addr().String())
		if err == nil || !strings.Contains(err.Error(), "port forwarding is not allowed") {
			t.Fatalf("direct-tcpip: %v", err)
		}
	})
	t.Run("remote_port_forward", func(t *testing.T) {
		if _, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
			t.Fatal("tcpip-forward accepted")
		}
	})
	t.Run("agent_and_X11_forwarding", func(t *testing.T) {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for _, req := range []string{"auth-agent-req@openssh.com", "x11-req"} {
			payload := []byte{}
			if req == "x11-req" {
				payload = ssh.Marshal(struct {
					Single        bool
					Proto, Cookie string
					Screen        uint32
				}{false, "MIT-MAGIC-COOKIE-1", "00", 0})
			}
			ok, err := s.SendRequest(req, true, payload)
			if err != nil || ok {
				t.Fatalf("%s: accepted=%v err=%v", req, ok, err)
			}
		}
	})
	t.Run("agent_channel_opened_by_nobody", func(t *testing.T) {
		// A node never opens an agent channel the session did not ask for; a client
		// opening one towards the node is refused too.
		if _, _, err := c.OpenChannel("auth-agent@openssh.com", nil); err == nil {
			t.Fatal("auth-agent channel accepted by the node")
		}
	})
	if !strings.Contains(n.log.String(), "the certificate does not permit port forwarding") {
		t.Errorf("refusals not logged:\n%s", n.log.String())
	}
}

// TestRemoteForwardOfAPrivilegedPortFailsLikeOpenSSH: a login that is not root may not
// listen below 1024, even with permit-port-forwarding.
func TestRemoteForwardOfAPrivilegedPortFailsLikeOpenSSH(t *testing.T) {
	n := startSSHNode(t)
	key := n.key(t, n.user.Username)
	code, _, stderr := n.ssh(t, key, n.user.Username, []string{"-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:81:127.0.0.1:9"}, "true")
	if code != 255 || !strings.Contains(stderr, "remote port forwarding failed for listen port 81") {
		t.Fatalf("exit %d stderr %q, want the privileged forward refused", code, stderr)
	}
	if !strings.Contains(n.log.String(), "only root may forward ports below 1024") {
		t.Errorf("refusal not logged:\n%s", n.log.String())
	}
}

// newUserKeyWithout is newUserKey with some OpenSSH permits withheld.
func newUserKeyWithout(t *testing.T, authority *ca.Authority, logins []string, withhold ...string) *userKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := authority.IssueUser(ca.UserCertRequest{PublicKey: signer.PublicKey(), Username: "alice", Logins: logins, TTL: 10 * time.Minute, MaxTTL: 10 * time.Minute, Withhold: withhold, NodeAccess: true})
	if err != nil {
		t.Fatal(err)
	}
	return writeUserKey(t, priv, signer, cert)
}

func TestSessionsDropPrivilegesToTheLogin(t *testing.T) {
	n := startSSHNode(t)
	key := n.key(t, n.user.Username)
	code, out, stderr := n.ssh(t, key, n.user.Username, nil, "id -u; id -g; cat /proc/self/status | grep -E '^(Uid|Gid|Groups):'")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(out, "\n")
	if lines[0] != n.user.Uid || lines[1] != n.user.Gid {
		t.Fatalf("id -u/-g: %q, want %s/%s", out, n.user.Uid, n.user.Gid)
	}
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "Uid:":
			for _, v := range f[1:] {
				if v != n.user.Uid {
					t.Errorf("%s: real, effective, saved or fs uid is not the login's", l)
				}
			}
		case "Groups:":
			for _, v := range f[1:] {
				if v == "0" {
					t.Errorf("%s: root's group kept", l)
				}
			}
		}
	}
}

func TestALiveConnectionEndsWhenItsCertificateExpires(t *testing.T) {
	n := startSSHNode(t)
	key := newUserKey(t, n.g.Auth().CA().OpenSSH, []string{n.user.Username}, 2*time.Second)
	c := n.dial(t, key, n.user.Username)
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the connection outlived its certificate")
	}
}

// TestOpenSSHCARotationReachesTheNodeByHeartbeats: the node trusts the openssh CA keys
// the last heartbeat brought: a certificate of the new key logs in once the rotation began,
// and one of the old key stops logging in once the rotation ended.
func TestOpenSSHCARotationReachesTheNodeByHeartbeats(t *testing.T) {
	u := testUser(t)
	g := startCluster(t)
	cfg := nodeConfig(t, g, "rot1", nodeToken(t, g, auth.TokenOptions{}), t.TempDir())
	cfg.HeartbeatInterval = 100 * time.Millisecond
	a, err := node.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	n := &sshNode{g: g, agent: a, user: u}
	userCA := g.Auth().CA().OpenSSH
	old := n.key(t, u.Username)
	login := func(k *userKey) error {
		signer, err := ssh.NewCertSigner(k.Cert, k.Signer)
		if err != nil {
			return err
		}
		c, err := ssh.Dial("tcp", a.Addr().String(), n.clientConfig(t, u.Username, ssh.PublicKeys(signer)))
		if err != nil {
			return err
		}
		return c.Close()
	}
	if err := login(old); err != nil {
		t.Fatal(err)
	}
	for _, p := range []ca.RotationPhase{ca.Init, ca.UpdateClients} {
		if err := userCA.Rotate(p); err != nil {
			t.Fatal(err)
		}
	}
	rotated := n.key(t, u.Username) // signed by the new key
	if string(rotated.Cert.SignatureKey.Marshal()) == string(old.Cert.SignatureKey.Marshal()) {
		t.Fatal("the rotation did not change the signing key")
	}
	testenv.Eventually(t, 10*time.Second, func() error { return login(rotated) })
	if err := login(old); err != nil {
		t.Fatalf("the old key stopped working mid-rotation: %v", err)
	}
	for _, p := range []ca.RotationPhase{ca.UpdateServers, ca.Standby} {
		if err := userCA.Rotate(p); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if login(old) == nil {
			return errors.New("a certificate of the dropped key still logs in")
		}
		return nil
	})
	if err := login(rotated); err != nil {
		t.Fatal(err)
	}
}

// loginCertificate is a certificate as a user's sign-in gets it (no ExtNodeAccess).
func loginCertificate(t *testing.T, authority *ca.Authority, login string) *userKey {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := authority.IssueUser(ca.UserCertRequest{PublicKey: signer.PublicKey(), Username: "alice", Logins: []string{login}, Roles: []string{"access"}, IssuedVia: "local", TTL: 10 * time.Minute, MaxTTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return writeUserKey(t, priv, signer, cert)
}
