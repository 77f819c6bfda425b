package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/internal/testproc"
)

// liveFollowsPolicy: a session already open through root → tunnel → leaf ends within
// seconds when the rules it was allowed under change, whichever side owns them: a lock on
// the root (the leaf does not know the root's locks: the root decides its route again),
// new labels on the remote_cluster that the user's cluster_labels no longer match (the
// root's rule), a node relabelled so the leaf's roles no longer reach it, and a node
// removed (the leaf's rules). Each is put back for the steps that follow.
func (s *scenario) liveFollowsPolicy(t *testing.T) {
	session := func(t *testing.T, u *testproc.User, node string) *testproc.Background {
		return liveSession(t, u.Name+" on "+node, u.Command(context.Background(), "ssh", "--cluster="+leafName, "visitor@"+node, "echo started; sleep 60"))
	}
	expectCut := func(t *testing.T, l *testproc.Background, after time.Time, logOf func() string, logged string) {
		t.Helper()
		select {
		case <-l.Done():
			t.Logf("ended %s after the change: %v; it said: %s", time.Since(after).Round(100*time.Millisecond), l.Err(), strings.TrimSpace(l.Log.String()))
			if l.Err() == nil {
				t.Fatal("the cut session exited 0")
			}
		case <-time.After(20*time.Second - time.Since(after)):
			t.Fatalf("the session outlived the change by 20 s\n%s", logOf())
		}
		if !strings.Contains(logOf(), logged) {
			t.Fatalf("the cut is not logged as %q:\n%s", logged, logOf())
		}
	}

	t.Run("a_lock_on_the_root_ends_a_live_session_through_the_leaf", func(t *testing.T) {
		l := session(t, s.alice, stageNode)
		at := time.Now()
		t.Cleanup(func() { s.root.Ctl(t, "rm", "lock/alice-incident") }) // on failure too; later steps need alice
		s.root.Create(t, "kind: lock\nversion: v2\nmetadata: {name: alice-incident}\nspec:\n  target: {user: alice}\n  message: suspected compromise\n")
		expectCut(t, l, at, s.root.Log, "cluster.route no longer allowed")
		if !strings.Contains(l.Log.String(), "suspected compromise") {
			t.Fatalf("the cut session does not say why: %s", l.Log)
		}
		// A new session names the lock, not a missing cluster.
		r := s.tsh(t, s.alice, leafName, "visitor@"+stageNode, "true")
		if r.Code == 0 || !strings.Contains(r.Stderr, `locked by lock "alice-incident": suspected compromise`) {
			t.Fatalf("a new session under the lock: %s", r)
		}
		s.root.MustCtl(t, "rm", "lock/alice-incident")
		testenv.Eventually(t, 20*time.Second, func() error {
			if r := s.tsh(t, s.alice, leafName, "visitor@"+stageNode, "echo ok"); r.Code != 0 {
				return fmt.Errorf("after removing the lock: %s", r)
			}
			return nil
		})
	})
	t.Run("new_labels_on_the_remote_cluster_end_a_session_cluster_labels_allowed", func(t *testing.T) {
		l := session(t, s.myuser, stageNode)
		at := time.Now()
		t.Cleanup(func() { s.root.Ctl(t, "update", "rc/"+leafName, "--set-labels=env=demo") })
		s.root.MustCtl(t, "update", "rc/"+leafName, "--set-labels=env=elsewhere")
		expectCut(t, l, at, s.root.Log, "cluster.route no longer allowed")
		s.root.MustCtl(t, "update", "rc/"+leafName, "--set-labels=env=demo")
		if r := s.tsh(t, s.myuser, leafName, "visitor@"+stageNode, "echo ok"); r.Code != 0 {
			t.Fatalf("after the labels were put back: %s", r)
		}
	})
	prodYAML := func(env string) string {
		return fmt.Sprintf("kind: node\nversion: v2\nmetadata:\n  name: %s\n  labels:\n    env: %s\nspec:\n  addr: %s\n  hostname: %s\n", prodNode, env, s.prod.Addr, prodNode)
	}
	t.Run("a_node_relabelled_out_of_the_roles_reach_ends_a_live_session", func(t *testing.T) {
		// Alice's stage-access reaches env=stage only: make the prod server stage, open a
		// session, then label it prod again.
		t.Cleanup(func() { s.leaf.Create(t, prodYAML("prod"), "--force") })
		s.leaf.Create(t, prodYAML("stage"), "--force")
		l := session(t, s.alice, prodNode)
		at := time.Now()
		s.leaf.Create(t, prodYAML("prod"), "--force")
		expectCut(t, l, at, s.leaf.Log, "node relabelled; session no longer allowed")
	})
	t.Run("a_removed_node_ends_its_live_sessions", func(t *testing.T) {
		l := session(t, s.myuser, prodNode)
		at := time.Now()
		s.leaf.MustCtl(t, "rm", "node/"+prodNode)
		expectCut(t, l, at, s.leaf.Log, "node removed; ending its sessions")
		s.leaf.Create(t, prodYAML("prod"))
		if r := s.tsh(t, s.myuser, leafName, "visitor@"+prodNode, "echo ok"); r.Code != 0 {
			t.Fatalf("after the node was registered again: %s", r)
		}
	})
}
