package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/internal/testproc"
)

// badInput is issue 10's bad input against the running federation: each case says what
// to do next, never a Go error chain, and nothing is dialed that should not be.
func (s *scenario) badInput(t *testing.T) {
	notChain := func(t *testing.T, r testproc.Result) {
		t.Helper()
		if r.Code == 0 {
			t.Fatalf("succeeded: %s", r)
		}
		for _, chain := range []string{"ssh: handshake failed", "ssh: rejected", "dial tcp", "EOF"} {
			if strings.Contains(r.Stderr, chain) {
				t.Fatalf("reads as a Go error chain (%q): %s", chain, r.Stderr)
			}
		}
		t.Logf("said: %s", strings.TrimSpace(r.Stderr))
	}
	t.Run("an_unknown_cluster", func(t *testing.T) {
		r := s.tsh(t, s.myuser, "ghost.example.com", "visitor@"+stageNode, "true")
		notChain(t, r)
		if !strings.Contains(r.Stderr, "cluster ghost.example.com not found") {
			t.Fatalf("%s", r)
		}
	})
	t.Run("an_unknown_node_is_refused_by_the_leaf_and_nothing_is_dialed", func(t *testing.T) {
		before := strings.Count(s.prod.Log(), "Connection from")
		for _, node := range []string{"ghost", s.prod.Addr} {
			r := s.tsh(t, s.myuser, leafName, "visitor@"+node, "true")
			notChain(t, r)
			if !strings.Contains(r.Stderr, "not found in cluster "+leafName) {
				t.Fatalf("%s: %s", node, r)
			}
		}
		if after := strings.Count(s.prod.Log(), "Connection from"); after != before {
			t.Fatalf("the leaf dialed for a name that is not a registered node:\n%s", s.prod.Log())
		}
		// The root asked the leaf for "ghost"; the leaf refused and logged it.
		if !strings.Contains(s.leaf.Log(), "refused a tunnel dial for a name that is not a registered node") {
			t.Fatalf("the leaf did not log the refused dial:\n%s", s.leaf.Log())
		}
	})
	t.Run("a_login_the_user_lacks", func(t *testing.T) {
		r := s.tsh(t, s.myuser, leafName, "root@"+stageNode, "true")
		notChain(t, r)
		if !strings.Contains(r.Stderr, "not authorized to login as root@"+leafName) {
			t.Fatalf("%s", r)
		}
	})
	t.Run("a_node_that_refuses_the_connection", func(t *testing.T) {
		// Registered, allowed by policy, but nothing listens at its address.
		down := testproc.FreeAddr(t)
		s.leaf.Create(t, fmt.Sprintf("kind: node\nversion: v2\nmetadata:\n  name: mongodb-down\n  labels:\n    env: stage\nspec:\n  addr: %s\n  hostname: mongodb-down\n", down))
		defer s.leaf.MustCtl(t, "rm", "node/mongodb-down")
		r := s.tsh(t, s.myuser, leafName, "visitor@mongodb-down", "true")
		notChain(t, r)
		if !strings.Contains(r.Stderr, `node "mongodb-down" in cluster leaf refused the connection or could not be reached`) || strings.Contains(r.Stderr, down) {
			t.Fatalf("%s", r)
		}
	})
	t.Run("a_node_that_refuses_the_login", func(t *testing.T) {
		// An OpenSSH server that trusts the root's openssh CA, not the leaf's: the leaf's
		// certificate for the session is refused by the server itself.
		other := testproc.StartSSHD(t, t, s.ssh, s.leaf, "mongodb-strict", s.root.OpenSSHCAFile(t, t))
		s.leaf.Create(t, fmt.Sprintf("kind: node\nversion: v2\nmetadata:\n  name: mongodb-strict\n  labels:\n    env: stage\nspec:\n  addr: %s\n  hostname: mongodb-strict\n", other.Addr))
		defer s.leaf.MustCtl(t, "rm", "node/mongodb-strict")
		r := s.tsh(t, s.myuser, leafName, "visitor@mongodb-strict", "echo should-not-run")
		notChain(t, r)
		if strings.Contains(r.Stdout, "should-not-run") || !strings.Contains(r.Stderr, `node "mongodb-strict" in cluster leaf refused the login "visitor"`) {
			t.Fatalf("%s", r)
		}
	})
	t.Run("a_node_whose_host_certificate_is_for_another_name_is_not_trusted", func(t *testing.T) {
		// Registered at the prod server's address, which proves only that it is mongodb-prod.
		s.leaf.Create(t, fmt.Sprintf("kind: node\nversion: v2\nmetadata:\n  name: mongodb-impostor\n  labels:\n    env: stage\nspec:\n  addr: %s\n", s.prod.Addr))
		defer s.leaf.MustCtl(t, "rm", "node/mongodb-impostor")
		r := s.tsh(t, s.myuser, leafName, "visitor@mongodb-impostor", "echo should-not-run")
		notChain(t, r)
		if strings.Contains(r.Stdout, "should-not-run") || !strings.Contains(r.Stderr, `node "mongodb-impostor" in cluster leaf did not present a host certificate`) {
			t.Fatalf("%s", r)
		}
	})
	t.Run("an_expired_profile_says_to_run_tether_login", func(t *testing.T) {
		path := filepath.Join(s.alice.Home, "profile.json")
		saved, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(path, saved, 0o600)
		var p map[string]any
		if err := json.Unmarshal(saved, &p); err != nil {
			t.Fatal(err)
		}
		p["valid_before"] = time.Now().Add(-time.Minute).Format(time.RFC3339)
		expired, _ := json.Marshal(p)
		if err := os.WriteFile(path, expired, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"ssh", "--cluster=" + leafName, "visitor@" + stageNode, "true"}, {"proxy", "ssh", "--cluster=" + leafName, "visitor@" + stageNode + ":22"}, {"clusters"}} {
			r := s.alice.Tether(t, "", args...)
			notChain(t, r)
			if !strings.Contains(r.Stderr, "expired") || !strings.Contains(r.Stderr, "run tether login") {
				t.Fatalf("%v: %s", args, r)
			}
		}
	})
	t.Run("a_stale_profile_missing_its_certificate_says_to_run_tether_login", func(t *testing.T) {
		cert := filepath.Join(s.alice.Home, "keys", hostOf(s.root.Addr), "alice-cert.pub")
		saved, err := os.ReadFile(cert)
		if err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(cert, saved, 0o644)
		if err := os.Remove(cert); err != nil {
			t.Fatal(err)
		}
		r := s.tsh(t, s.alice, leafName, "visitor@"+stageNode, "true")
		notChain(t, r)
		if !strings.Contains(r.Stderr, "run tether login") {
			t.Fatalf("%s", r)
		}
	})
	t.Run("a_client_that_disconnects_mid-session_ends_the_session_on_the_node", func(t *testing.T) {
		marker := fmt.Sprintf("sleep 7%d", time.Now().UnixNano()%1000) // a command line to find on the node
		cmd := s.myuser.Command(context.Background(), "ssh", "-t", "--cluster="+leafName, "visitor@"+prodNode, "echo started; "+marker)
		out := &testenv.Buffer{}
		cmd.Stdout = out
		live := testproc.Start(t, t, "tether ssh", cmd)
		testenv.Eventually(t, 60*time.Second, func() error {
			if !strings.Contains(out.String(), "started") {
				return fmt.Errorf("the session has not started: %s", live.Log)
			}
			return nil
		})
		waitRunning(t, marker)
		live.Stop(syscall.SIGKILL)
		testenv.Eventually(t, 30*time.Second, func() error {
			if processRunning(marker) {
				return fmt.Errorf("%q still runs on the node after the client went away", marker)
			}
			return nil
		})
	})
}
