package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetherproject/tether/gateway"
	"github.com/tetherproject/tether/gateway/config"
	"github.com/tetherproject/tether/resource"
)

// TestNodesAddPrintsAConfigurationThatJoins: the node section `tetherctl nodes add`
// prints, with the node's own addresses filled in, joins the cluster as printed (token
// and pinned CA file included).
func TestNodesAddPrintsAConfigurationThatJoins(t *testing.T) {
	root := startCluster(t, "root.example.com", "")
	out := root.mustCtl(t, "nodes", "add", "--name=web1", "--labels=team=web", "--ttl=5m")
	if !strings.Contains(out, "This token will expire in 5 minutes.") {
		t.Fatalf("nodes add:\n%s", out)
	}
	i := strings.Index(out, "data_dir:")
	if i < 0 {
		t.Fatalf("no configuration in:\n%s", out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfgText := strings.NewReplacer(
		"/var/lib/tether", filepath.Join(dir, "data"),
		"0.0.0.0:3022", free,
		"NODE-ADDRESS:3022", free,
	).Replace(out[i:])
	p := filepath.Join(dir, "tether.yaml")
	if err := os.WriteFile(p, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatalf("the printed configuration does not load: %v\n%s", err, cfgText)
	}
	a, err := gateway.NewNodeAgent(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil)
	if err != nil {
		t.Fatalf("the printed configuration does not join: %v\n%s", err, cfgText)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	rs, err := root.gw.Auth().Get(context.Background(), resource.KindNode, "web1", false)
	if err != nil {
		t.Fatal(err)
	}
	n := rs[0].(*resource.Node)
	if n.Spec.Addr != free || n.Metadata.Labels["team"] != "web" {
		t.Fatalf("node resource %+v", n)
	}
	if got := root.mustCtl(t, "get", "node/web1", "--format", "text"); !strings.Contains(got, "web1") || !strings.Contains(got, "online") {
		t.Fatalf("get node/web1:\n%s", got)
	}
}

// TestNodesAddRegistersAnOpenSSHServer: nodes add --addr registers an OpenSSH server as a
// node (address, labels, no token) and says what its sshd needs; bad input says what to
// give, and a registered name is not taken over.
func TestNodesAddRegistersAnOpenSSHServer(t *testing.T) {
	leaf := startCluster(t, "leaf-west", "")
	out := leaf.mustCtl(t, "nodes", "add", "--name=node-west", "--addr=127.0.0.1:2222", "--labels=env=prod")
	for _, want := range []string{`node "node-west" has been registered`, "auth sign --host=node-west", "auth export --type=openssh", "TrustedUserCAKeys"} {
		if !strings.Contains(out, want) {
			t.Errorf("nodes add --addr does not say %q:\n%s", want, out)
		}
	}
	rs, err := leaf.gw.Auth().Get(context.Background(), resource.KindNode, "node-west", false)
	if err != nil || len(rs) != 1 {
		t.Fatalf("get node/node-west: %v %v", rs, err)
	}
	n := rs[0].(*resource.Node)
	if n.Spec.Addr != "127.0.0.1:2222" || n.Spec.Hostname != "node-west" || len(n.Metadata.Labels) != 1 || n.Metadata.Labels["env"] != "prod" {
		t.Fatalf("registered node: %+v", n)
	}
	if toks := leaf.mustCtl(t, "tokens", "ls"); strings.Contains(toks, "node") {
		t.Errorf("nodes add --addr made a token:\n%s", toks)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--addr=127.0.0.1:22"}, "give its node name with --name"},
		{[]string{"--name=x", "--addr=127.0.0.1"}, "must be HOST:PORT"},
		{[]string{"--name=x", "--addr=127.0.0.1:22", "--ttl=5m"}, "leave --ttl out"},
		{[]string{"--name=node-west", "--addr=10.0.0.9:22"}, "node-west"},
	} {
		out, err := leaf.ctl(t, append([]string{"nodes", "add"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("nodes add %v: %v (want %q)\n%s", tc.args, err, tc.want, out)
		}
	}
	if rs, _ := leaf.gw.Auth().Get(context.Background(), resource.KindNode, "node-west", false); rs[0].(*resource.Node).Spec.Addr != "127.0.0.1:2222" {
		t.Fatalf("a second nodes add moved node-west to %s", rs[0].(*resource.Node).Spec.Addr)
	}
}

// tctl nodes ls, a habit of Teleport admins: the cluster's nodes as a table (the columns
// of get node --format text), or as documents with --format json|yaml. Until the
// acceptance pass, nodes had only add and nodes ls was an unknown command.
func TestNodesLsListsTheNodes(t *testing.T) {
	leaf := startCluster(t, "leaf-west", "")
	if out := leaf.mustCtl(t, "nodes", "ls"); !strings.HasPrefix(out, "Host Name Address Labels Status Last Heartbeat\n") {
		t.Fatalf("nodes ls without nodes:\n%s", out)
	}
	leaf.mustCtl(t, "nodes", "add", "--name=node-west", "--addr=127.0.0.1:2222", "--labels=env=prod")
	out := leaf.mustCtl(t, "nodes", "ls")
	if out != leaf.mustCtl(t, "get", "node", "--format", "text") || !strings.Contains(out, "node-west") || !strings.Contains(out, "127.0.0.1:2222") || !strings.Contains(out, "env=prod") {
		t.Fatalf("nodes ls:\n%s", out)
	}
	if out := leaf.mustCtl(t, "nodes", "ls", "--format", "yaml"); out != leaf.mustCtl(t, "get", "node") {
		t.Fatalf("nodes ls --format yaml:\n%s", out)
	}
	if out := leaf.mustCtl(t, "nodes", "ls", "--format", "json"); !strings.HasPrefix(strings.TrimSpace(out), "[") || !strings.Contains(out, `"node-west"`) {
		t.Fatalf("nodes ls --format json:\n%s", out)
	}
	if _, err := leaf.ctl(t, "nodes", "ls", "--format", "xml"); err == nil {
		t.Fatal("nodes ls --format xml: no error")
	}
}

// A node label the root would refuse in the leaf's node list (empty key, control
// characters, longer than 256 bytes, more than 64 labels) is refused when the node is
// written: until the acceptance pass a leaf admin's node with a label holding an escape
// sequence was stored, and from then on the root answered every user's tether ls of
// that leaf with "cluster ... sent a node list the root cannot read".
func TestNodeLabelsTheRootCannotListAreRefused(t *testing.T) {
	leaf := startCluster(t, "leaf-west", "")
	node := func(labels string) string {
		return writeFile(t, "n.yaml", "kind: node\nversion: v2\nmetadata:\n  name: n1\n  labels:\n"+labels+"spec:\n  addr: 127.0.0.1:22\n")
	}
	many := ""
	for i := 0; i < 65; i++ {
		many += fmt.Sprintf("    k%d: v\n", i)
	}
	for name, labels := range map[string]string{
		"escape_sequence": "    env: \"\\e[31mred\"\n",
		"newline_in_key":  "    \"a\\nb\": x\n",
		"long_value":      "    env: " + strings.Repeat("x", 257) + "\n",
		"too_many_labels": many,
		"c1_control":      "    env: \"a\\u0085b\"\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := leaf.ctl(t, "create", "-f", node(labels)); err == nil || !strings.Contains(err.Error(), `node "n1"`) {
				t.Errorf("create: %v", err)
			}
		})
	}
	if _, err := leaf.ctl(t, "nodes", "add", "--name=n2", "--addr=127.0.0.1:22", "--labels=env=a\x1bb"); err == nil {
		t.Error("nodes add --labels with an escape: no error")
	}
	leaf.mustCtl(t, "create", "-f", node("    env: prod\n    team: \"ünïcode ok\"\n"))
}
