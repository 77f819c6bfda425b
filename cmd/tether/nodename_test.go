package main

import "testing"

// NODE.CLUSTER names the cluster with the longest matching name: db.root.example.com is
// the root root.example.com's node db, not the node db.root of a leaf that joined as
// example.com (acceptance pass: tether ssh visitor@db.root.example.com went to that leaf,
// the first cluster in the list whose name ended the host).
func TestClusterOfNameTakesTheLongestClusterName(t *testing.T) {
	clusters := []string{"root.example.com", "example.com", "leaf-east", "east.example.com", "a.east.example.com"}
	for _, tc := range []struct{ node, want string }{
		{"db.root.example.com", "root.example.com"}, // the root's: searched there only
		{"db.example.com", "example.com"},
		{"db.east.example.com", "east.example.com"},
		{"db.a.east.example.com", "a.east.example.com"},
		{"node-east.leaf-east", "leaf-east"},
		{"node-east", ""},
		{"example.com", ""},
	} {
		if got := clusterOfName(tc.node, clusters); got != tc.want {
			t.Errorf("clusterOfName(%q) = %q, want %q", tc.node, got, tc.want)
		}
	}
}
