package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/internal/testproc"
)

// liveFollowsPolicy: a session already open through root → tunnel → leaf ends within
// seconds when the rules it was allowed under change, whichever side owns them: a lock on
// the root (the root decides its route again, and the lock reaches the leaf too, so a root
// certificate used at the leaf's own proxy is refused),
// new labels on the remote_cluster that the user's cluster_labels no longer match (the
// root's rule), a node relabelled so the leaf's roles no longer reach it, and a node
// removed (the leaf's rules). Each is put back for the steps that follow.
func (s *scenario) liveFollowsPolicy(t *testing.T) {
	session := func(t *testing.T, u *testproc.User, node string) *testproc.Background {
		return liveSession(t, u.Name+" on "+node, u.Command(context.Background(), "ssh", "--cluster="+leafName, "visitor@"+node, "echo started; sleep 60"))
	}
	// expectCut: l ends within 20 s of after, and logOf holds one of logged (the cut).
	expectCut := func(t *testing.T, l *testproc.Background, after time.Time, logOf func() string, logged ...string) {
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
		// The gateway logs the cut before it closes the session, but its log reaches the
		// test through a pipe: look again for a few seconds.
		testenv.Eventually(t, 5*time.Second, func() error {
			for _, want := range logged {
				if strings.Contains(logOf(), want) {
					return nil
				}
			}
			return fmt.Errorf("the cut is not logged as any of %q:\n%s", logged, logOf())
		})
	}

	t.Run("a_lock_on_the_root_ends_a_live_session_through_the_leaf", func(t *testing.T) {
		l := session(t, s.alice, stageNode)
		at := time.Now()
		t.Cleanup(func() { s.root.Ctl(t, "rm", "lock/alice-incident") }) // on failure too; later steps need alice
		s.root.Create(t, "kind: lock\nversion: v2\nmetadata: {name: alice-incident}\nspec:\n  target: {user: alice}\n  message: suspected compromise\n")
		// The root decides its route again every 2 s; the lock reaches the leaf within a
		// second or two as well, and whichever decides first ends the session, saying why.
		expectCut(t, l, at, func() string { return s.root.Log() + s.leaf.Log() },
			"cluster.route no longer allowed", "policy changed; session no longer allowed")
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
	t.Run("a_lock_on_the_root_reaches_the_leaf_for_a_root_certificate_used_there_directly", func(t *testing.T) {
		// The attacker's path: alice, locked at the root, still holds a valid root-signed
		// certificate and can reach the leaf's own proxy (same port for SSH), so she jumps
		// through it instead of the root. The leaf must know the root's lock (Teleport
		// replicates root locks to leaves).
		directCmd := func(ctx context.Context, command string) *exec.Cmd {
			keys := filepath.Join(s.alice.Home, "keys", hostOf(s.root.Addr))
			_, port, _ := net.SplitHostPort(s.leaf.Addr)
			auth := fmt.Sprintf("-o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none -i %s -o CertificateFile=%s -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o GlobalKnownHostsFile=/dev/null",
				filepath.Join(keys, "alice"), filepath.Join(keys, "alice-cert.pub"))
			cmd := exec.CommandContext(ctx, s.ssh.SSH, "-F", "/dev/null", "-o", "ControlPath=none",
				"-o", fmt.Sprintf("ProxyCommand=%s -F /dev/null %s -p %s -W %%h:%%p alice@127.0.0.1", s.ssh.SSH, auth, port))
			cmd.Args = append(cmd.Args, strings.Fields(auth)...)
			cmd.Args = append(cmd.Args, "visitor@"+stageNode, command)
			cmd.Env = s.alice.Env()
			return cmd
		}
		direct := func(command string) testproc.Result {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			return testproc.Run(t, directCmd(ctx, command))
		}
		if r := direct("echo direct-ok"); r.Code != 0 || r.Stdout != "direct-ok\n" {
			t.Fatalf("before the lock, alice's root certificate at the leaf's own proxy: %s", r)
		}
		// A session she holds open that way ends too, within seconds of the root's lock.
		l := liveSession(t, "alice directly at the leaf", directCmd(context.Background(), "echo started; sleep 60"))
		at := time.Now()
		t.Cleanup(func() { s.root.Ctl(t, "rm", "lock/alice-direct") })
		s.root.Create(t, "kind: lock\nversion: v2\nmetadata: {name: alice-direct}\nspec:\n  target: {user: alice}\n  message: stolen laptop\n")
		lockName := "alice-direct@" + rootName
		expectCut(t, l, at, s.leaf.Log, "session no longer allowed")
		if !strings.Contains(l.Log.String(), "stolen laptop") {
			t.Fatalf("the session the leaf cut does not say why: %s", l.Log)
		}
		// Replicated within seconds: pushed at the next tick, then the leaf's bundle is
		// rebuilt (until then the leaf decides with the bundle it had).
		testenv.Eventually(t, 20*time.Second, func() error {
			if r := direct("echo direct-ok"); r.Code == 0 || strings.Contains(r.Stdout, "direct-ok") {
				return fmt.Errorf("alice, locked at the root, reached a leaf node through the leaf's own proxy: %s", r)
			}
			return nil
		})
		if !strings.Contains(s.leaf.Log(), `locked by lock \"`+lockName+`\": stolen laptop`) && !strings.Contains(s.leaf.Log(), `locked by lock "`+lockName+`": stolen laptop`) {
			t.Fatalf("the leaf's refusal does not name the root's lock %q:\n%s", lockName, s.leaf.Log())
		}
		// The lock is scoped to the root's users: the leaf's own admin and users are not
		// touched, and a leaf admin sees where it came from.
		got := s.leaf.MustCtl(t, "get", "lock/"+lockName)
		for _, want := range []string{"remote_cluster: " + rootName, "tether.dev/replicated-from: " + rootName} {
			if !strings.Contains(got, want) {
				t.Fatalf("the replicated lock lacks %q:\n%s", want, got)
			}
		}
		// Removed at the root, removed at the leaf: alice's direct path works again.
		s.root.MustCtl(t, "rm", "lock/alice-direct")
		testenv.Eventually(t, 20*time.Second, func() error {
			if r := direct("echo direct-ok"); r.Code != 0 {
				return fmt.Errorf("after removing the lock at the root: %s", r)
			}
			return nil
		})
		if out := s.leaf.Ctl(t, "get", "lock/"+lockName); out.Code == 0 {
			t.Fatalf("the leaf kept the root's removed lock: %s", out)
		}
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
