package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/transport/frame"
)

// A node name a root refuses in a leaf's node list (frame.ValidNodeName: an IP address, a
// path, a leading '_') must be refused when the node is written, by an admin (tetherctl
// nodes add, create) or by a joining node agent: one such node made the root refuse the
// whole node list, so tether ls and tether ssh without --cluster failed for every user of
// the leaf ("cluster leaf-east sent a node list the root cannot read"). Found by the
// acceptance pass with tetherctl nodes add --name=../x on the demo's leaf-east.
func TestNodeNamesTheRootCannotListAreRefused(t *testing.T) {
	ctx := context.Background()
	s := newService(t, "leaf-east")
	for _, name := range []string{"../x", "x/y", "10.0.0.1", "::1", "_x", "a b", "node\x1b[2J"} {
		if frame.ValidNodeName(name) == nil {
			t.Fatalf("%q: the test expects a name the root refuses", name)
		}
		doc := fmt.Sprintf("kind: node\nversion: v2\nmetadata:\n  name: %q\nspec:\n  addr: 127.0.0.1:22\n", name)
		rs, err := resource.Parse([]byte(doc), "nodes.yaml")
		if err == nil {
			_, err = s.Create(ctx, rs, false)
		}
		if err == nil {
			t.Errorf("node %q was created by an admin; the root could not list this leaf's nodes", name)
		}
		if _, err := s.nodeResource(name, "127.0.0.1:22", nil, nil); err == nil || !errors.Is(err, ErrBadRequest) {
			t.Errorf("node %q could join: %v", name, err)
		}
	}
	// Names a root lists are still taken both ways.
	for _, name := range []string{"node-east", "db1.stage.example.com", "n_1"} {
		if _, err := s.Create(ctx, mustParse(t, fmt.Sprintf("kind: node\nversion: v2\nmetadata:\n  name: %s\nspec:\n  addr: 127.0.0.1:22\n", name)), false); err != nil {
			t.Errorf("node %q refused: %v", name, err)
		}
		if _, err := s.nodeResource(name+"-agent", "127.0.0.1:22", nil, nil); err != nil {
			t.Errorf("node %q-agent could not join: %v", name, err)
		}
	}
}

// A node name is in normal form on every write, as a joining agent's is: lower case,
// without a final dot. An admin's create took "Web" beside "web" (two nodes whose names
// differ only in case) and "db.": OpenSSH lowercases the name a user types, and tether
// config's 'Match originalhost' blocks now catch NODE.CLUSTER in any case, so "ssh
// Web.leaf" reached the node "web", and tether ssh drops a final dot, so "db." could
// never be reached (attacker review of the gaps pass).
func TestNodeNamesAreWrittenInNormalForm(t *testing.T) {
	ctx := context.Background()
	s := newService(t, "leaf-east")
	if _, err := s.Create(ctx, mustParse(t, "kind: node\nversion: v2\nmetadata:\n  name: web\nspec:\n  addr: 127.0.0.1:22\n"), false); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Web", "WEB", "db.", "Db1.Stage.example.com"} {
		doc := fmt.Sprintf("kind: node\nversion: v2\nmetadata:\n  name: %q\nspec:\n  addr: 127.0.0.1:22\n", name)
		rs, err := resource.Parse([]byte(doc), "nodes.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, rs, false); err == nil || !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), resource.NormalizeClusterName(name)) {
			t.Errorf("node %q: err %v, want a refusal saying to write it as %q", name, err, resource.NormalizeClusterName(name))
		}
	}
}
