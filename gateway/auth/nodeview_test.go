package auth

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/tetherproject/tether/resource"
)

// Nodes serves the node list from parsed documents kept by store revision: it equals
// what Get reads (without the heartbeat status), and a change is seen on the next call —
// a removed node is gone at once, a relabelled node shows its new labels, a new node
// appears.
func TestNodesFollowTheStoreAtOnce(t *testing.T) {
	ctx := context.Background()
	s := newService(t, "root.example.com")
	var docs []string
	for i := range 50 {
		docs = append(docs, fmt.Sprintf("kind: node\nversion: v2\nmetadata:\n  name: node-%02d\n  labels: {env: stage}\nspec:\n  addr: 127.0.0.1:%d\n", i, 2000+i))
	}
	if _, err := s.Create(ctx, mustParse(t, strings.Join(docs, "---\n")), false); err != nil {
		t.Fatal(err)
	}
	same := func() {
		t.Helper()
		got, err := s.Nodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := s.Get(ctx, resource.KindNode, "", false)
		if err != nil && err != ErrNotFound {
			t.Fatal(err)
		}
		if len(got) != len(rs) {
			t.Fatalf("Nodes has %d nodes, Get %d", len(got), len(rs))
		}
		for i, r := range rs {
			want := *r.(*resource.Node)
			want.Status = resource.NodeStatus{}
			if !reflect.DeepEqual(*got[i], want) {
				t.Fatalf("node %d: Nodes %+v, Get %+v", i, *got[i], want)
			}
		}
	}
	has := func(name string) *resource.Node {
		got, err := s.Nodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range got {
			if n.Metadata.Name == name {
				return n
			}
		}
		return nil
	}
	same()
	if _, err := s.Delete(ctx, resource.KindNode, "node-07"); err != nil {
		t.Fatal(err)
	}
	if has("node-07") != nil {
		t.Fatal("a removed node is still listed")
	}
	same()
	if _, err := s.Create(ctx, mustParse(t, "kind: node\nversion: v2\nmetadata:\n  name: node-08\n  labels: {env: prod}\nspec:\n  addr: 127.0.0.1:9\n"), true); err != nil {
		t.Fatal(err)
	}
	if n := has("node-08"); n == nil || n.Metadata.Labels["env"] != "prod" || n.Spec.Addr != "127.0.0.1:9" {
		t.Fatalf("a changed node reads %+v", n)
	}
	if _, err := s.Create(ctx, mustParse(t, "kind: node\nversion: v2\nmetadata:\n  name: node-new\nspec:\n  addr: 127.0.0.1:10\n"), false); err != nil {
		t.Fatal(err)
	}
	if has("node-new") == nil {
		t.Fatal("a new node is not listed")
	}
	same()
	// Every node removed: an empty list, not the last one seen.
	got, _ := s.Nodes(ctx)
	for _, n := range got {
		if _, err := s.Delete(ctx, resource.KindNode, n.Metadata.Name); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Nodes(ctx); err != nil || len(got) != 0 {
		t.Fatalf("after removing every node: %d nodes, %v", len(got), err)
	}
}
