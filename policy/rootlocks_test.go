package policy

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestReplicatedRootRoleLocks: a root's lock on one of its roles, replicated to the leaf,
// locks the root's users who hold that role at the root, and no one else. The fixture's
// leaf maps the root's access to its visitor and full-access to stage-access; before
// replicated locks were shipped with a root_role target, the root's lock on a root role
// named visitor also locked every root user the leaf maps to its own visitor role.
func TestReplicatedRootRoleLocks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		lockRole  string
		certRoles []string
		locked    bool
	}{
		{"the_root_role_is_locked", "access", []string{"access"}, true},
		{"one_locked_root_role_of_two", "full-access", []string{"access", "full-access"}, true},
		{"another_root_role", "full-access", []string{"access"}, false},
		{"a_leaf_role_of_the_same_name_as_the_locked_root_role", "visitor", []string{"access"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.yaml += fmt.Sprintf(`---
kind: lock
version: v2
metadata:
  name: ops@%[1]s
  labels: {tether.dev/replicated-from: %[1]s}
spec:
  target: {role: %[2]s, remote_cluster: %[1]s}
  message: incident
`, rootName, tc.lockRole)
			e := f.engine(t, Options{})
			in := &Input{Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow,
				Cert: f.rootCert("alice", tc.certRoles, []string{"visitor"}), Login: "visitor",
				Node: &Node{Name: "n1", Labels: map[string]string{"env": "stage"}}}
			d, err := e.Decide(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if tc.locked != !d.Allow || tc.locked != strings.Contains(strings.Join(d.Reasons, "\n"), "locked by lock") {
				t.Fatalf("root lock on role %s, certificate roles %v: allow=%v reasons %q, want locked=%v",
					tc.lockRole, tc.certRoles, d.Allow, d.Reasons, tc.locked)
			}
			// The public query says the same.
			p, err := e.DecidePlain(context.Background(), in)
			if err != nil || p.Allow != d.Allow {
				t.Fatalf("public query: %+v, %v; engine allow=%v", p, err, d.Allow)
			}
		})
	}
}

// TestReplicatedRootNodeLocks: a root's lock on its node db1, replicated to the leaf, does
// not lock the root's users out of the leaf's own db1; a root lock written db1.LEAF does,
// for the root's users only. Engine and public query alike.
func TestReplicatedRootNodeLocks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		lockNode string
		locked   bool
	}{
		{"a_root_node_of_the_same_name", "n1", false},
		{"the_leaf_node_named_in_full", "n1." + leafName, true},
		{"another_leaf_node_named_in_full", "n2." + leafName, false},
		{"a_node_of_another_leaf", "n1.other.example.com", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.yaml += fmt.Sprintf(`---
kind: lock
version: v2
metadata:
  name: db@%[1]s
  labels: {tether.dev/replicated-from: %[1]s}
spec:
  target: {node: %[2]s, remote_cluster: %[1]s}
  message: incident
`, rootName, tc.lockNode)
			e := f.engine(t, Options{})
			in := &Input{Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow,
				Cert: f.rootCert("alice", []string{"access"}, []string{"visitor"}), Login: "visitor",
				Node: &Node{Name: "n1", Labels: map[string]string{"env": "stage"}}}
			d, err := e.Decide(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if tc.locked != !d.Allow || tc.locked != strings.Contains(strings.Join(d.Reasons, "\n"), "locked by lock") {
				t.Fatalf("root lock on node %s: allow=%v reasons %q, want locked=%v", tc.lockNode, d.Allow, d.Reasons, tc.locked)
			}
			p, err := e.DecidePlain(context.Background(), in)
			if err != nil || p.Allow != d.Allow {
				t.Fatalf("public query: %+v, %v; engine allow=%v", p, err, d.Allow)
			}
			// The node list agrees with the single decision.
			list, err := e.NodeList(context.Background(), &Input{Action: ActionNodeList, Cluster: leafName, Now: fixtureNow, Cert: in.Cert},
				[]Node{*in.Node})
			if err != nil {
				t.Fatal(err)
			}
			listed := len(list) == 1 && len(list[0].Logins) > 0
			if listed == tc.locked {
				t.Fatalf("node list %+v disagrees with the decision (locked=%v)", list, tc.locked)
			}
		})
	}
}
