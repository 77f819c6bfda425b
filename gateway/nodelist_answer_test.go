package gateway

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/tetherproject/tether/gateway/tunnel"
)

// A leaf answers a root's node list without the entries the root refuses (a node stored
// before node names were checked on write, a label a node agent's heartbeat brought in):
// the root refuses a whole list for one such entry, so before, one bad node made the
// leaf's every node unlistable and unfindable for every root user (tether ls
// --cluster=LEAF, tether ssh without --cluster). Found by the acceptance pass with
// tetherctl nodes add --name=../x on the demo's leaf-east.
func TestLeafNodeAnswerLeavesOutWhatTheRootRefuses(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	nodes := []tunnel.LeafNode{
		{Name: "../x", Addr: "127.0.0.1:22", Logins: []string{"visitor"}},
		{Name: "node-east", Addr: "127.0.0.1:3022", Labels: map[string]string{"env": "stage"}, Logins: []string{"visitor"}},
		{Name: "10.0.0.1", Addr: "10.0.0.1:22", Logins: []string{"visitor"}},
		{Name: "node-evil", Addr: "127.0.0.1:3023", Labels: map[string]string{"env": "\x1b[31m"}, Logins: []string{"visitor"}},
		{Name: "node-west", Addr: "127.0.0.1:3024", Logins: []string{"visitor"}},
	}
	data, err := json.Marshal(tunnel.NodeListAnswer{Nodes: leafNodesForRoot(nodes, log)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := tunnel.DecodeNodeList(data)
	if err != nil {
		t.Fatalf("the root refuses the leaf's answer: %v", err)
	}
	if len(got) != 2 || got[0].Name != "node-east" || got[1].Name != "node-west" {
		t.Fatalf("answer %+v, want node-east and node-west", got)
	}
}
