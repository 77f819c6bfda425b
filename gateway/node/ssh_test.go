package node_test

import (
	"os/user"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/gateway"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/node"
)

// sshNode is a cluster, a running node agent and a Unix user to log in as.
type sshNode struct {
	g     *gateway.Gateway
	agent *node.Agent
	user  *user.User
	log   interface{ String() string }
}

func startSSHNode(t *testing.T) *sshNode {
	t.Helper()
	u := testUser(t)
	g := startCluster(t)
	cfg := nodeConfig(t, g, "node1", nodeToken(t, g, auth.TokenOptions{}), t.TempDir())
	logger, buf := logBuffer()
	cfg.Logger = logger
	a, err := node.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	return &sshNode{g: g, agent: a, user: u, log: buf}
}

// key is a certificate of the cluster's user CA for logins, valid for ten minutes.
func (n *sshNode) key(t *testing.T, logins ...string) *userKey {
	return newUserKey(t, n.g.Auth().CA().User, logins, 10*time.Minute)
}

// ssh runs OpenSSH's client against the node as login with key.
func (n *sshNode) ssh(t *testing.T, key *userKey, login string, extra []string, command ...string) (int, string, string) {
	host, port := hostPort(t, n.agent)
	args := append(sshArgs(t, n.agent, key), "-p", port)
	args = append(args, extra...)
	args = append(args, login+"@"+host)
	args = append(args, command...)
	return runSSH(t, args)
}

func TestOpenSSHClientRunsACommandAsTheLogin(t *testing.T) {
	n := startSSHNode(t)
	key := n.key(t, n.user.Username)
	code, out, stderr := n.ssh(t, key, n.user.Username, nil, "id -un; id -u; pwd; exit 3")
	if code != 3 {
		t.Fatalf("exit status %d, want 3; stdout %q stderr %q\nnode log:\n%s", code, out, stderr, n.log.String())
	}
	want := n.user.Username + "\n" + n.user.Uid + "\n" + n.user.HomeDir + "\n"
	if out != want {
		t.Fatalf("stdout %q, want %q (login, its uid, its home)", out, want)
	}
	if strings.TrimSpace(n.user.Uid) == "0" {
		t.Fatal("the test user is root")
	}
}
