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

// tether ssh and scp read NODE.CLUSTER as OpenSSH users type it: the cluster's name in any
// case (cluster names are stored lowercase), a final dot ignored (tether checks the node's
// host certificate itself, under the cluster's name). Before, "NODE1.LEAF-EAST" searched
// every cluster for a node of that whole name and said "node ... not found".
func TestNodeNamesInAnyCaseAndWithAFinalDot(t *testing.T) {
	clusters := []string{"root.example.com", "leaf-east"}
	for _, tc := range []struct{ typed, cluster, node string }{
		{"NODE-EAST.LEAF-EAST", "leaf-east", "NODE-EAST"},
		{"node-east.leaf-east.", "leaf-east", "node-east"},
		{"db.Root.Example.Com.", "root.example.com", "db"},
		{"node-east.", "", "node-east"},
	} {
		name := userNodeName(tc.typed)
		c := clusterOfName(name, clusters)
		if c != tc.cluster {
			t.Errorf("clusterOfName(%q) = %q, want %q", tc.typed, c, tc.cluster)
		}
		if got := nodeOfName(name, c); c != "" && got != tc.node || c == "" && name != tc.node {
			t.Errorf("%q: node %q in %q, want %q", tc.typed, got, c, tc.node)
		}
	}
}
