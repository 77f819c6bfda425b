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
			d := decideUnderRootLock(t, "role: "+tc.lockRole, tc.certRoles)
			if tc.locked != !d.Allow || tc.locked != strings.Contains(strings.Join(d.Reasons, "\n"), "locked by lock") {
				t.Fatalf("root lock on role %s, certificate roles %v: allow=%v reasons %q, want locked=%v",
					tc.lockRole, tc.certRoles, d.Allow, d.Reasons, tc.locked)
			}
		})
	}
}

// decideUnderRootLock decides alice's ssh.session as visitor on the leaf's node n1
// (env=stage) with certRoles at the root, under a lock the root replicated with target
// (YAML flow fields, remote_cluster added). The public query and the node list must agree
// with the engine.
func decideUnderRootLock(t *testing.T, target string, certRoles []string) Decision {
	t.Helper()
	f := newFixture(t)
	f.yaml += fmt.Sprintf(`---
kind: lock
version: v2
metadata:
  name: lock@%[1]s
  labels: {tether.dev/replicated-from: %[1]s}
spec:
  target: {%[2]s, remote_cluster: %[1]s}
  message: incident
`, rootName, target)
	e := f.engine(t, Options{})
	in := &Input{Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow,
		Cert: f.rootCert("alice", certRoles, []string{"visitor"}), Login: "visitor",
		Node: &Node{Name: "n1", Labels: map[string]string{"env": "stage"}}}
	d, err := e.Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := e.DecidePlain(context.Background(), in); err != nil || p.Allow != d.Allow {
		t.Fatalf("public query: %+v, %v; engine allow=%v", p, err, d.Allow)
	}
	list, err := e.NodeList(context.Background(), &Input{Action: ActionNodeList, Cluster: leafName, Now: fixtureNow, Cert: in.Cert}, []Node{*in.Node})
	if err != nil {
		t.Fatal(err)
	}
	if listed := len(list) == 1 && len(list[0].Logins) > 0; listed != d.Allow {
		t.Fatalf("node list %+v disagrees with the decision (allow=%v)", list, d.Allow)
	}
	return d
}

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
			d := decideUnderRootLock(t, "node: "+tc.lockNode, []string{"access"})
			if tc.locked != !d.Allow || tc.locked != strings.Contains(strings.Join(d.Reasons, "\n"), "locked by lock") {
				t.Fatalf("root lock on node %s: allow=%v reasons %q, want locked=%v", tc.lockNode, d.Allow, d.Reasons, tc.locked)
			}
		})
	}
}

// TestMaxConnections: Teleport's options.max_connections reaches the enforcement point
// from the identity the leaf gives a root certificate (its mapped roles): the smallest
// limit, 0 when no role sets one.
func TestMaxConnections(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.yaml += `---
kind: role
version: v5
metadata: {name: role-limited-3}
spec:
  options: {max_connections: 3}
  allow: {logins: [visitor]}
---
kind: role
version: v5
metadata: {name: role-limited-2}
spec:
  options: {max_connections: 2}
  allow: {logins: [visitor]}
`
	e := f.engine(t, Options{})
	for _, tc := range []struct {
		certRoles []string
		want      int64
	}{
		{[]string{"access", "rx-0-limited-3", "rx-1-limited-2"}, 2},
		{[]string{"rx-0-limited-3"}, 3},
		{[]string{"access"}, 0},
	} {
		in := &Input{Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow,
			Cert: f.rootCert("alice", tc.certRoles, []string{"visitor"}), Login: "visitor",
			Node: &Node{Name: "n1", Labels: map[string]string{"env": "stage"}}}
		got, err := e.MaxConnections(context.Background(), in)
		if err != nil || got != tc.want {
			t.Fatalf("roles %v: max_connections %d, %v; want %d", tc.certRoles, got, err, tc.want)
		}
	}
	if _, err := (&Engine{}).MaxConnections(context.Background(), &Input{}); err == nil {
		t.Fatal("an engine without a bundle gave a limit")
	}
}
