package node_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/identity"
	"github.com/tetherproject/tether/gateway/node"
	"github.com/tetherproject/tether/gateway/web"
	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/resource"
)

func getNode(t *testing.T, s *auth.Service, name string) *resource.Node {
	t.Helper()
	rs, err := s.Get(context.Background(), resource.KindNode, name, false)
	if err != nil {
		t.Fatalf("get node/%s: %v", name, err)
	}
	return rs[0].(*resource.Node)
}

func TestJoin(t *testing.T) {
	g := startCluster(t)
	good := nodeToken(t, g, auth.TokenOptions{Labels: map[string]string{"team": "ops"}})
	expiredTok, info, err := g.Auth().AddToken(context.Background(), auth.TokenOptions{Roles: []string{resource.TokenRoleNode}, TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, func() error {
		if time.Now().Before(info.Expires) {
			return errors.New("the token has not expired yet")
		}
		return nil
	})
	leafTok := nodeToken(t, g, auth.TokenOptions{Roles: []string{resource.TokenRoleTrustedCluster}})
	// An OpenSSH server registered by hand holds its name too.
	if _, err := g.Auth().Create(context.Background(), []resource.Resource{&resource.Node{
		Kind: resource.KindNode, Version: "v2", Metadata: resource.Metadata{Name: "openssh1"},
		Spec: resource.NodeSpec{Addr: "127.0.0.1:22", Hostname: "openssh1"},
	}}, false); err != nil {
		t.Fatal(err)
	}
	first := t.TempDir()
	for _, tc := range []struct {
		name, node, token, dir string
		wantErr                string
	}{
		// Attackers first.
		{"wrong_token", "node-a", strings.Repeat("0123456789abcdef", 2), t.TempDir(), "the node token was rejected"},
		{"expired_token", "node-a", expiredTok, t.TempDir(), "the node token was rejected"},
		{"trusted_cluster_token", "node-a", leafTok, t.TempDir(), "the node token was rejected"},
		{"no_token", "node-a", "", t.TempDir(), "tetherctl tokens add --type=node"},
		{"name_of_an_openssh_server", "openssh1", good, t.TempDir(), "already registered with another key"},
		{"bad_name", "no/such name", good, t.TempDir(), "node names are host names"},
		{"good_token", "node-a", good, first, ""},
		{"same_key_joins_again", "node-a", good, first, ""}, // identity.json removed below
		{"name_claimed_by_another_key", "node-a", good, t.TempDir(), "already registered with another key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "same_key_joins_again" {
				if err := os.Remove(filepath.Join(first, "identity.json")); err != nil {
					t.Fatal(err)
				}
			}
			a, err := node.New(context.Background(), nodeConfig(t, g, tc.node, tc.token, tc.dir))
			if tc.wantErr != "" {
				if err == nil {
					t.Fatal("joined")
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q, want it to say %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer runAgent(t, a)()
			n := getNode(t, g.Auth(), tc.node)
			if n.Spec.Addr != a.PublicAddr() || n.Metadata.Labels["env"] != "test" || n.Metadata.Labels["team"] != "ops" || n.Status.Connection != resource.ConnectionOnline {
				t.Fatalf("node resource %+v", n)
			}
			for _, f := range []string{"key", "identity.json"} {
				st, err := os.Stat(filepath.Join(tc.dir, f))
				if err != nil || st.Mode().Perm() != 0o600 {
					t.Fatalf("%s: %v %v, want 0600", f, err, st.Mode().Perm())
				}
			}
		})
	}
	if got := getNode(t, g.Auth(), "openssh1"); got.Spec.Addr != "127.0.0.1:22" || got.Status.Connection != "" {
		t.Fatalf("the hand-made node changed: %+v", got)
	}
	t.Run("restart_needs_no_token", func(t *testing.T) {
		a, err := node.New(context.Background(), nodeConfig(t, g, "node-a", "", first))
		if err != nil {
			t.Fatal(err)
		}
		runAgent(t, a)()
	})
	t.Run("removed_node_frees_its_name", func(t *testing.T) {
		if _, err := g.Auth().Delete(context.Background(), resource.KindNode, "node-a"); err != nil {
			t.Fatal(err)
		}
		a, err := node.New(context.Background(), nodeConfig(t, g, "node-a", good, t.TempDir()))
		if err != nil {
			t.Fatalf("a new key could not take the removed node's name: %v", err)
		}
		runAgent(t, a)()
	})
}

// TestANewNodeTokenJoinsAgain: node.token is read again at every start. A token other
// than the one of the join makes the node join again (the admin removed the node and gave
// it a new token; before, it kept the removed identity until identity.json was deleted by
// hand), the same token does not, and a new token that fails leaves the earlier identity.
func TestANewNodeTokenJoinsAgain(t *testing.T) {
	g := startCluster(t)
	good := nodeToken(t, g, auth.TokenOptions{Labels: map[string]string{"team": "ops"}})
	first := t.TempDir()
	a, err := node.New(context.Background(), nodeConfig(t, g, "node-a", good, first))
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)()
	recorded := func(t *testing.T) string {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(first, "identity.json"))
		if err != nil {
			t.Fatal(err)
		}
		var id struct {
			TokenSHA256 string `json:"token_sha256"`
		}
		if err := json.Unmarshal(data, &id); err != nil {
			t.Fatal(err)
		}
		return id.TokenSHA256
	}
	digest := func(tok string) string {
		sum := sha256.Sum256([]byte(tok))
		return hex.EncodeToString(sum[:])
	}
	startWith := func(t *testing.T, token string) (*testenv.Buffer, func()) {
		t.Helper()
		log, buf := logBuffer()
		cfg := nodeConfig(t, g, "node-a", token, first)
		cfg.Labels = map[string]string{"env": "test", "team": "ops"}
		cfg.Logger = log
		a, err := node.New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return buf, runAgent(t, a)
	}
	t.Run("the_same_token_restarts_without_joining", func(t *testing.T) {
		buf, stop := startWith(t, good)
		stop()
		if strings.Contains(buf.String(), "joining again") || recorded(t) != digest(good) {
			t.Fatalf("joined again with the token it joined with (recorded %s):\n%s", recorded(t), buf)
		}
	})
	t.Run("a_new_token_that_fails_keeps_the_earlier_identity", func(t *testing.T) {
		bad := strings.Repeat("fedcba9876543210", 2)
		buf, stop := startWith(t, bad)
		stop()
		if !strings.Contains(buf.String(), "joining with the new node.token failed") {
			t.Fatalf("log:\n%s", buf)
		}
		// Tried once: the next start with the same token does not try it again.
		if recorded(t) != digest(bad) {
			t.Fatalf("recorded %s, want the tried token's digest", recorded(t))
		}
		buf, stop = startWith(t, bad)
		stop()
		if strings.Contains(buf.String(), "joining again") {
			t.Fatalf("tried the refused token again:\n%s", buf)
		}
	})
	t.Run("a_new_token_after_removal_joins_again", func(t *testing.T) {
		if _, err := g.Auth().Delete(context.Background(), resource.KindNode, "node-a"); err != nil {
			t.Fatal(err)
		}
		fresh := nodeToken(t, g, auth.TokenOptions{Labels: map[string]string{"team": "ops"}})
		buf, stop := startWith(t, fresh)
		defer stop()
		if n := getNode(t, g.Auth(), "node-a"); n.Status.Connection != resource.ConnectionOnline {
			t.Fatalf("node %+v, log:\n%s", n, buf)
		}
		data, _ := os.ReadFile(filepath.Join(first, "identity.json"))
		if recorded(t) != digest(fresh) || strings.Contains(string(data), fresh) {
			t.Fatalf("identity.json must record the new token's digest, never the token: %s", data)
		}
	})
}

func TestHeartbeatsKeepANodeOnlineUntilTheyStop(t *testing.T) {
	g := startCluster(t)
	cfg := nodeConfig(t, g, "hb1", nodeToken(t, g, auth.TokenOptions{}), t.TempDir())
	cfg.HeartbeatInterval = 200 * time.Millisecond // online for 600ms after each
	a, err := node.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := runAgent(t, a)
	first := getNode(t, g.Auth(), "hb1").Status.LastHeartbeat
	testenv.Eventually(t, 10*time.Second, func() error {
		n := getNode(t, g.Auth(), "hb1")
		if n.Status.Connection != resource.ConnectionOnline || !n.Status.LastHeartbeat.After(first) {
			return fmt.Errorf("status %+v: want online with a later heartbeat than %v", n.Status, first)
		}
		return nil
	})
	stop()
	testenv.Eventually(t, 10*time.Second, func() error {
		n := getNode(t, g.Auth(), "hb1")
		if n.Status.Connection != resource.ConnectionOffline || n.Status.LastHeartbeat.IsZero() {
			return fmt.Errorf("status %+v: want offline with its last heartbeat", n.Status)
		}
		return nil
	})
}

// TestARemovedNodeRefusesLogins: once an admin removed the node, its heartbeats are
// refused and the node, told so, accepts no login.
func TestARemovedNodeRefusesLogins(t *testing.T) {
	g := startCluster(t)
	cfg := nodeConfig(t, g, "gone1", nodeToken(t, g, auth.TokenOptions{}), t.TempDir())
	cfg.HeartbeatInterval = 100 * time.Millisecond
	logger, buf := logBuffer()
	cfg.Logger = logger
	a, err := node.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	key := newUserKey(t, g.Auth().CA().OpenSSH, []string{"root"}, time.Minute)
	signer, err := ssh.NewCertSigner(key.Cert, key.Signer)
	if err != nil {
		t.Fatal(err)
	}
	clientCfg := &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second} //nolint:gosec // the test is about the client's authentication
	if c, err := ssh.Dial("tcp", a.Addr().String(), clientCfg); err != nil {
		t.Fatalf("login before the removal: %v\n%s", err, buf.String())
	} else {
		c.Close()
	}
	if _, err := g.Auth().Delete(context.Background(), resource.KindNode, "gone1"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(buf.String(), "the cluster no longer knows this node") {
			return errors.New("the node did not notice its removal")
		}
		return nil
	})
	if c, err := ssh.Dial("tcp", a.Addr().String(), clientCfg); err == nil {
		c.Close()
		t.Fatal("a removed node still accepts logins")
	}
	if !strings.Contains(buf.String(), "it accepts no login until it joins again") {
		t.Fatalf("the denial is not logged:\n%s", buf.String())
	}
	if _, err := g.Auth().Get(context.Background(), resource.KindNode, "gone1", false); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("a heartbeat brought the removed node back: %v", err)
	}
}

// TestHeartbeatAndAdminIdentitiesAreNotInterchangeable: the admin identity cannot
// heartbeat as a node, and a node's client certificate is no admin identity.
func TestHeartbeatAndAdminIdentitiesAreNotInterchangeable(t *testing.T) {
	g := startCluster(t)
	dir := t.TempDir()
	a, err := node.New(context.Background(), nodeConfig(t, g, "n1", nodeToken(t, g, auth.TokenOptions{}), dir))
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	admin, err := identity.Load(g.AdminIdentityPath())
	if err != nil {
		t.Fatal(err)
	}
	nodeCert := nodeTLSCert(t, dir)
	post := func(cert tls.Certificate, method, path, body string) (int, string) {
		return callCluster(t, g, cert, method, path, body)
	}
	hb := `{"addr":"127.0.0.1:1","heartbeat_ttl":"1s"}`
	if code, body := post(admin.Cert, http.MethodPost, web.NodeHeartbeatPath, hb); code != http.StatusUnauthorized || !strings.Contains(body, "not a node") {
		t.Fatalf("admin identity heartbeating: %d %s", code, body)
	}
	if code, body := post(nodeCert, http.MethodGet, "/v1/admin/resources/role", ""); code != http.StatusForbidden {
		t.Fatalf("node certificate on the admin API: %d %s", code, body)
	}
	if code, body := post(nodeCert, http.MethodPost, web.NodeHeartbeatPath, hb); code != http.StatusOK {
		t.Fatalf("the node's own heartbeat: %d %s", code, body)
	}
}

// An admin's create -f of a node agent's resource is kept only until its next heartbeat,
// which restores the labels of its configuration and join token: create says so. A node
// registered by hand (an OpenSSH server) has no heartbeat and no such note.
func TestEditingANodeAgentSaysItsHeartbeatWins(t *testing.T) {
	g := startCluster(t)
	a, err := node.New(context.Background(), nodeConfig(t, g, "edit1", nodeToken(t, g, auth.TokenOptions{}), t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer runAgent(t, a)()
	n := getNode(t, g.Auth(), "edit1")
	n.Metadata.Labels = map[string]string{"env": "prod"}
	msgs, err := g.Auth().Create(context.Background(), []resource.Resource{n}, true)
	if err != nil || len(msgs) != 1 || !strings.Contains(msgs[0], "has been updated") || !strings.Contains(msgs[0], "heartbeat") {
		t.Fatalf("create -f of a node agent: %q %v, want a note that its heartbeat restores its labels", msgs, err)
	}
	hand := &resource.Node{Kind: resource.KindNode, Version: "v2", Metadata: resource.Metadata{Name: "openssh2"}, Spec: resource.NodeSpec{Addr: "127.0.0.1:22", Hostname: "openssh2"}}
	if _, err := g.Auth().Create(context.Background(), []resource.Resource{hand}, false); err != nil {
		t.Fatal(err)
	}
	hand.Metadata.Labels = map[string]string{"env": "prod"}
	msgs, err = g.Auth().Create(context.Background(), []resource.Resource{hand}, true)
	if err != nil || len(msgs) != 1 || strings.Contains(msgs[0], "heartbeat") {
		t.Fatalf("create -f of a node registered by hand: %q %v", msgs, err)
	}
}

// TestAnIdentityFromBeforeTheOpenSSHCAIsRefreshedByTheFirstHeartbeat: a node whose saved
// identity.json holds the user CA's keys (user_cas, written before the openssh CA) starts
// without a token, says so, accepts no login on that old answer, and trusts the openssh CA
// once its first heartbeat is answered. A user's login certificate never opens it.
func TestAnIdentityFromBeforeTheOpenSSHCAIsRefreshedByTheFirstHeartbeat(t *testing.T) {
	g := startCluster(t)
	dir := t.TempDir()
	cfg := nodeConfig(t, g, "old1", nodeToken(t, g, auth.TokenOptions{}), dir)
	a, err := node.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)()
	path := writePreOpenSSHIdentity(t, g, dir)

	cfg.Token = "" // a restart needs no token
	cfg.HeartbeatInterval = 20 * time.Minute
	logger, buf := logBuffer()
	cfg.Logger = logger
	b, err := node.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("the node does not start on its old identity: %v", err)
	}
	if !strings.Contains(buf.String(), "predates the cluster's openssh CA") {
		t.Fatalf("no warning about the old identity:\n%s", buf.String())
	}
	runAgent(t, b)
	dial := func(k *userKey) error { return dialAsRoot(b.Addr().String(), k.Cert, k.Signer) }
	// The first heartbeat is sent at once, not after the (20-minute) interval.
	testenv.Eventually(t, 10*time.Second, func() error {
		if err := dial(newUserKey(t, g.Auth().CA().OpenSSH, []string{"root"}, time.Minute)); err != nil {
			return fmt.Errorf("%w\n%s", err, buf.String())
		}
		return nil
	})
	if err := dial(loginCertificate(t, g.Auth().CA().User, "root")); err == nil {
		t.Fatal("a login certificate of the user CA opens the node")
	}
	raw, _ := os.ReadFile(path)
	if !strings.Contains(string(raw), `"node_cas"`) || strings.Contains(string(raw), `"user_cas"`) {
		t.Fatalf("the saved identity was not refreshed:\n%s", raw)
	}
}

// dialAsRoot opens and closes an SSH connection to a node agent at addr as login root with
// cert, the node's host key not checked (the tests are about the client's authentication).
func dialAsRoot(addr string, cert *ssh.Certificate, s ssh.Signer) error {
	signer, err := ssh.NewCertSigner(cert, s)
	if err != nil {
		return err
	}
	c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}) //nolint:gosec // the tests are about the client's authentication
	if err != nil {
		return err
	}
	return c.Close()
}
