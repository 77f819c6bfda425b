package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/internal/testproc"
)

// startTetherdWith starts tetherd with extra configuration (YAML appended) and a decision
// log, and waits for its web API.
func startTetherdWith(t *testing.T, bin, name, extra string, args ...string) (*proc, string) {
	t.Helper()
	p := launchTetherd(t, bin, name, func(dir, addr string) string {
		return fmt.Sprintf("cluster_name: %s\ndata_dir: %s/data\nproxy:\n  web_listen_addr: %s\n  tunnel_listen_addr: 127.0.0.1:0\npolicy:\n  decision_log:\n    file: %s\n%s", name, dir, addr, filepath.Join(dir, "decisions.jsonl"), extra)
	}, args...)
	return p, decisionLogOf(p)
}

// Node lists and identity through the federation, with real processes: a root, a leaf
// joined over the tunnel with a Tether node agent (node-east, env=stage) and a node
// registered by hand (node-prod, env=prod), and alice signed in at the root. The leaf
// maps the root's access to its own visitor role, which reaches stage nodes only.
func TestFederatedNodeListsEndToEnd(t *testing.T) {
	tetherd, tetherctl, tether := binaries(t)
	me, err := osuser.Current()
	if err != nil {
		t.Fatal(err)
	}
	login := me.Username
	const rootName, leafName = "root.example.com", "leaf-east.example.com"
	root, _ := startTetherdWith(t, tetherd, rootName, "")
	leaf, leafLog := startTetherdWith(t, tetherd, leafName,
		"node:\n  enabled: true\n  name: node-east\n  labels: {env: stage}\n  listen_addr: 127.0.0.1:0\n  public_addr: 127.0.0.1:0\n", "--insecure")
	leaf.ctl(t, tetherctl, "create", writeTemp(t, fmt.Sprintf("kind: role\nversion: v5\nmetadata: {name: visitor}\nspec:\n  allow:\n    logins: ['{{internal.logins}}']\n    node_labels: {env: stage}\n")))
	leaf.ctl(t, tetherctl, "create", writeTemp(t, "kind: node\nversion: v2\nmetadata:\n  name: node-prod\n  labels: {env: prod}\nspec:\n  addr: 127.0.0.1:1\n"))
	tok := regexp.MustCompile(`The cluster invite token: (\S+)`).FindStringSubmatch(root.ctl(t, tetherctl, "tokens", "add", "--type=trusted_cluster", "--ttl=5m"))[1]
	trust := func(enabled bool, token string) string {
		return fmt.Sprintf("kind: trusted_cluster\nversion: v2\nmetadata:\n  name: %s\nspec:\n  enabled: %v\n  token: %q\n  tunnel_addr: %s\n  web_proxy_addr: %s\n  role_map:\n    - remote: access\n      local: [visitor]\n", rootName, enabled, token, testproc.PingTunnelAddr(t, root.addr), root.addr)
	}
	leaf.ctl(t, tetherctl, "create", writeTemp(t, trust(true, tok)))

	alice := user{bin: tether, home: filepath.Join(t.TempDir(), "profile")}
	added := root.ctl(t, tetherctl, "users", "add", "alice", "--roles=access", "--logins="+login)
	secret := alice.signUp(t, added, "alice password 1")
	proxy := regexp.MustCompile(`--proxy=(\S+)`).FindStringSubmatch(added)[1]
	caFile := regexp.MustCompile(`--ca-file=(\S+)`).FindStringSubmatch(added)[1]
	alice.must(t, "alice password 1\n"+auth.TOTPCode(secret, time.Now().Add(auth.TOTPPeriod))+"\n", "login", "--proxy="+proxy, "--ca-file="+caFile, "--user=alice")
	testenv.Eventually(t, 60*time.Second, func() error {
		out, _, _ := alice.run(t, "", "ls", "--cluster="+leafName)
		if !strings.Contains(out, "node-east") {
			return fmt.Errorf("leaf not listed yet: %s\nleaf log:\n%s", out, leaf.log)
		}
		return nil
	})

	t.Run("ls_lists_the_leafs_nodes_as_the_leafs_policy_decides", func(t *testing.T) {
		out := alice.must(t, "", "ls", "--cluster="+leafName)
		if !regexp.MustCompile(`(?m)^Node Name +Address +Labels +Logins *$`).MatchString(out) ||
			!regexp.MustCompile(`(?m)^node-east +127\.0\.0\.1:\d+ +env=stage +`+regexp.QuoteMeta(login)+` *$`).MatchString(out) || strings.Contains(out, "node-prod") {
			t.Fatalf("ls --cluster=%s:\n%s", leafName, out)
		}
		var nodes []struct {
			Metadata struct{ Name string }
			Spec     struct{ Hostname, Addr string }
			Tether   struct {
				Cluster string
				Logins  []string
			}
		}
		if err := json.Unmarshal([]byte(alice.must(t, "", "ls", "--cluster="+leafName, "--format=json")), &nodes); err != nil || len(nodes) != 1 ||
			nodes[0].Metadata.Name != "node-east" || nodes[0].Spec.Hostname != "node-east" || nodes[0].Spec.Addr == "" || nodes[0].Tether.Cluster != leafName || strings.Join(nodes[0].Tether.Logins, ",") != login {
			t.Fatalf("ls -f json: %+v %v", nodes, err)
		}
		if out := alice.must(t, "", "ls", "--cluster="+leafName, "env=prod"); strings.Contains(out, "node-") {
			t.Fatalf("ls env=prod:\n%s", out)
		}
		testenv.Eventually(t, 10*time.Second, func() error {
			data, _ := os.ReadFile(leafLog)
			if !regexp.MustCompile(`"path":"tether/access/node_logins".*"node-east"`).Match(data) {
				return fmt.Errorf("no node list event in the leaf's decision log:\n%s", data)
			}
			return nil
		})
	})

	t.Run("status_shows_the_roles_the_leaf_maps_to", func(t *testing.T) {
		var st struct {
			Leaves []struct {
				Name   string   `json:"name"`
				State  string   `json:"state"`
				Mapped []string `json:"mapped_roles"`
				Known  bool     `json:"mapped_roles_known"`
			} `json:"leaf_clusters"`
		}
		if err := json.Unmarshal([]byte(alice.must(t, "", "status", "-f", "json")), &st); err != nil {
			t.Fatal(err)
		}
		if len(st.Leaves) != 1 || st.Leaves[0].Name != leafName || st.Leaves[0].State != "ok" || !st.Leaves[0].Known || strings.Join(st.Leaves[0].Mapped, ",") != "visitor" {
			t.Fatalf("status leaves: %+v", st.Leaves)
		}
		if out := alice.must(t, "", "status"); !strings.Contains(out, leafName+": roles visitor") {
			t.Fatalf("status:\n%s", out)
		}
	})

	t.Run("ssh_without_cluster_finds_a_leaf_node", func(t *testing.T) {
		out, errOut, err := alice.run(t, "", "ssh", login+"@node-east", "echo found-on-the-leaf")
		if err != nil || out != "found-on-the-leaf\n" {
			t.Fatalf("ssh: %v\n%s%s\nleaf log:\n%s", err, out, errOut, leaf.log)
		}
		// NODE.CLUSTER with the cluster's name in capitals and a final dot, as for DNS names.
		typed := "node-east." + strings.ToUpper(leafName) + "."
		if out, errOut, err := alice.run(t, "", "ssh", login+"@"+typed, "echo fqdn"); err != nil || out != "fqdn\n" {
			t.Fatalf("ssh %s: %v\n%s%s", typed, err, out, errOut)
		}
	})

	// tsh login LEAF with a valid sign-in (the seed guide's "tsh login east") reissues the
	// certificates for the leaf without asking the password again; they end when the
	// sign-in does. An unknown cluster changes nothing.
	t.Run("login_LEAF_with_a_valid_sign_in_asks_no_password", func(t *testing.T) {
		type st struct {
			Selected   string    `json:"selected_cluster"`
			ValidUntil time.Time `json:"valid_until"`
		}
		status := func() st {
			var s st
			if err := json.Unmarshal([]byte(alice.must(t, "", "status", "-f", "json")), &s); err != nil {
				t.Fatal(err)
			}
			return s
		}
		before := status()
		// No password on stdin: a prompt would fail.
		out, errOut, err := alice.run(t, "", "login", leafName)
		if err != nil || !strings.Contains(errOut, "Reissued your certificates for cluster "+leafName) {
			t.Fatalf("login %s: %v\n%s%s", leafName, err, out, errOut)
		}
		after := status()
		if after.Selected != leafName || after.ValidUntil.After(before.ValidUntil) {
			t.Fatalf("after login %s: selected %q valid until %v (before %v)", leafName, after.Selected, after.ValidUntil, before.ValidUntil)
		}
		if out := alice.must(t, "", "ls"); !strings.Contains(out, "node-east") {
			t.Fatalf("ls in the selected leaf:\n%s", out)
		}
		if out, errOut, err := alice.run(t, "", "ssh", login+"@node-east", "echo reissued"); err != nil || out != "reissued\n" {
			t.Fatalf("ssh with the reissued certificate: %v\n%s%s", err, out, errOut)
		}
		_, errOut, err = alice.run(t, "", "login", "ghost.example.com")
		if err == nil || !strings.Contains(errOut, `"ghost.example.com" not found`) {
			t.Fatalf("login ghost: %v\n%s", err, errOut)
		}
		if s := status(); s.Selected != leafName {
			t.Fatalf("a refused login changed the profile: %+v", s)
		}
		alice.must(t, "", "login", rootName)
		if s := status(); s.Selected != rootName {
			t.Fatalf("login %s: selected %q", rootName, s.Selected)
		}
	})

	t.Run("ssh_without_cluster_says_where_it_looked", func(t *testing.T) {
		_, errOut, err := alice.run(t, "", "ssh", login+"@ghost", "true")
		if err == nil || !strings.Contains(errOut, "node ghost not found in clusters "+rootName+", "+leafName) {
			t.Fatalf("ghost: %v\n%s", err, errOut)
		}
		// A node the leaf's policy hides is not found either: the leaf decided.
		if _, errOut, err = alice.run(t, "", "ssh", login+"@node-prod", "true"); err == nil || !strings.Contains(errOut, "node node-prod not found in clusters") {
			t.Fatalf("node-prod: %v\n%s", err, errOut)
		}
	})

	t.Run("ssh_without_cluster_names_the_clusters_of_an_ambiguous_node", func(t *testing.T) {
		root.ctl(t, tetherctl, "create", writeTemp(t, "kind: node\nversion: v2\nmetadata:\n  name: node-east\n  labels: {env: stage}\nspec:\n  addr: 127.0.0.1:1\n"))
		defer root.ctl(t, tetherctl, "rm", "node/node-east")
		_, errOut, err := alice.run(t, "", "ssh", login+"@node-east", "true")
		want := fmt.Sprintf("node node-east is in more than one cluster (%s, %s): choose one with --cluster=%s or --cluster=%s", rootName, leafName, rootName, leafName)
		if err == nil || !strings.Contains(errOut, want) {
			t.Fatalf("ambiguous: %v\n%s", err, errOut)
		}
		if out, errOut, err := alice.run(t, "", "ssh", "--cluster="+leafName, login+"@node-east", "echo picked"); err != nil || out != "picked\n" {
			t.Fatalf("--cluster picks: %v\n%s%s", err, out, errOut)
		}
	})

	// The node list is served from parsed documents kept by store revision: a node the
	// leaf's admin removes is gone from the next list, a relabelled one shows its labels.
	t.Run("a_removed_node_is_gone_from_the_next_list", func(t *testing.T) {
		alice.must(t, "", "ls", "--cluster="+leafName) // the leaf's view is warm
		leaf.ctl(t, tetherctl, "create", writeTemp(t, "kind: node\nversion: v2\nmetadata:\n  name: node-brief\n  labels: {env: stage}\nspec:\n  addr: 127.0.0.1:2\n"))
		if out := alice.must(t, "", "ls", "--cluster="+leafName); !strings.Contains(out, "node-brief") {
			t.Fatalf("a new node is not listed:\n%s", out)
		}
		leaf.ctl(t, tetherctl, "create", "--force", writeTemp(t, "kind: node\nversion: v2\nmetadata:\n  name: node-brief\n  labels: {env: prod}\nspec:\n  addr: 127.0.0.1:2\n"))
		if out := alice.must(t, "", "ls", "--cluster="+leafName); strings.Contains(out, "node-brief") {
			t.Fatalf("a node relabelled out of reach is still listed:\n%s", out)
		}
		leaf.ctl(t, tetherctl, "create", "--force", writeTemp(t, "kind: node\nversion: v2\nmetadata:\n  name: node-brief\n  labels: {env: stage}\nspec:\n  addr: 127.0.0.1:2\n"))
		alice.must(t, "", "ls", "--cluster="+leafName)
		leaf.ctl(t, tetherctl, "rm", "node/node-brief")
		if out := alice.must(t, "", "ls", "--cluster="+leafName); strings.Contains(out, "node-brief") {
			t.Fatalf("a removed node is still listed:\n%s", out)
		}
	})

	t.Run("a_hidden_leaf_reads_as_an_unknown_one", func(t *testing.T) {
		root.ctl(t, tetherctl, "update", "rc/"+leafName, "--set-labels=env=secret")
		defer root.ctl(t, tetherctl, "update", "rc/"+leafName, "--set-labels=")
		for _, cluster := range []string{leafName, "ghost.example.com"} {
			_, errOut, err := alice.run(t, "", "ls", "--cluster="+cluster)
			if err == nil || !strings.Contains(errOut, "cluster "+cluster+" not found: run tether clusters") {
				t.Fatalf("ls --cluster=%s: %v\n%s", cluster, err, errOut)
			}
		}
		if _, errOut, _ := alice.run(t, "", "ls", "--cluster="+leafName); strings.Contains(errOut, "offline") || strings.Contains(errOut, "refused") {
			t.Fatalf("a hidden leaf leaks its state: %s", errOut)
		}
	})

	// cluster_labels are the root's view: a leaf the root hides from alice is still reached
	// at the leaf's own proxy with her root-signed certificate, since the leaf's role_map
	// maps her roles (Teleport behaves the same; DESIGN §3a: root-signed certificates used
	// directly at a leaf skip the check, role_map is the boundary). The leaf's admin removes
	// the mapping or the trust, or locks her, to keep her out.
	t.Run("a_leaf_hidden_by_cluster_labels_is_still_reached_at_its_own_proxy", func(t *testing.T) {
		root.ctl(t, tetherctl, "update", "rc/"+leafName, "--set-labels=env=secret")
		defer root.ctl(t, tetherctl, "update", "rc/"+leafName, "--set-labels=")
		if _, errOut, err := alice.run(t, "", "ls", "--cluster="+leafName); err == nil || !strings.Contains(errOut, "cluster "+leafName+" not found") {
			t.Fatalf("the leaf is not hidden at the root: %v\n%s", err, errOut)
		}
		sshBin, err := exec.LookPath("ssh")
		if err != nil {
			t.Skip("no OpenSSH client (make tools installs it)")
		}
		keys := filepath.Join(alice.home, "keys", "127.0.0.1")
		_, port, _ := net.SplitHostPort(leaf.addr)
		auth := []string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-i", filepath.Join(keys, "alice"),
			"-o", "CertificateFile=" + filepath.Join(keys, "alice-cert.pub"), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null"}
		jump := sshBin + " " + strings.Join(auth, " ") + " -p " + port + " -W %h:%p alice@127.0.0.1"
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		args := append(append([]string{}, auth...), "-o", "ControlPath=none", "-o", "ProxyCommand="+jump, login+"@node-east", "echo direct-at-the-leaf")
		out, err := exec.CommandContext(ctx, sshBin, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "direct-at-the-leaf") {
			t.Fatalf("alice's root certificate at the leaf's own proxy, the leaf hidden at the root: %v\n%s\nleaf log:\n%s", err, out, leaf.log)
		}
	})

	// A user locked at the leaf (by the leaf's own admin) gets an empty node list from the
	// leaf's policy: the search of ssh without --cluster said only "node not found" (gaps
	// brief, item 1). The leaf now answers the list with its denial, which ls, ssh without
	// --cluster and ssh --cluster each say.
	t.Run("a_user_locked_at_the_leaf_is_told_so", func(t *testing.T) {
		out := leaf.ctl(t, tetherctl, "lock", "--user=alice", "--message=leaf maintenance", "--ttl=10m")
		name := regexp.MustCompile(`lock "(\S+)"`).FindStringSubmatch(out)[1]
		defer leaf.ctl(t, tetherctl, "rm", "lock/"+name)
		reason := `locked by lock "` + name + `": leaf maintenance`
		refused := "cluster " + leafName + " refused to list its nodes: " + reason
		if _, errOut, err := alice.run(t, "", "ls", "--cluster="+leafName); err == nil || !strings.Contains(errOut, refused) {
			t.Errorf("ls --cluster=%s: %v\n%s", leafName, err, errOut)
		}
		want := "node node-east not found in clusters " + rootName + "; " + refused
		if _, errOut, err := alice.run(t, "", "ssh", login+"@node-east", "true"); err == nil || !strings.Contains(errOut, want) {
			t.Errorf("ssh without --cluster: %v\n%s", err, errOut)
		}
		_, errOut, err := alice.run(t, "", "ssh", "--cluster="+leafName, login+"@node-east", "true")
		if err == nil || !strings.Contains(errOut, reason) {
			t.Errorf("ssh --cluster=%s: %v\n%s", leafName, err, errOut)
		}
		t.Logf("ssh --cluster=%s: %s", leafName, errOut)
	})

	// A lock names the user, not a cluster: a user locked on the root is told so by ls and
	// status, as ssh --cluster tells them, not that the leaf does not exist (acceptance
	// pass: ls --cluster said "cluster ... not found").
	t.Run("a_locked_user_is_told_so", func(t *testing.T) {
		out := root.ctl(t, tetherctl, "lock", "--user=alice", "--message=maintenance window", "--ttl=10m")
		name := regexp.MustCompile(`lock "(\S+)"`).FindStringSubmatch(out)[1]
		defer root.ctl(t, tetherctl, "rm", "lock/"+name)
		want := "access to cluster " + leafName + ` denied: locked by lock "` + name + `": maintenance window`
		if _, errOut, err := alice.run(t, "", "ls", "--cluster="+leafName); err == nil || !strings.Contains(errOut, want) {
			t.Errorf("ls --cluster=%s: %v\n%s", leafName, err, errOut)
		}
		if _, errOut, err := alice.run(t, "", "ssh", "--cluster="+leafName, login+"@node-east", "true"); err == nil || !strings.Contains(errOut, want) {
			t.Errorf("ssh --cluster=%s: %v\n%s", leafName, err, errOut)
		}
		// The leaf is listed as locked, and the search says why it found nothing there.
		if out := alice.must(t, "", "clusters"); !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(leafName) + ` +locked +leaf `).MatchString(out) {
			t.Errorf("clusters:\n%s", out)
		}
		// The root refuses its own list too (the lock is the root's): no cluster was searched.
		if _, errOut, err := alice.run(t, "", "ssh", login+"@node-east", "true"); err == nil || !strings.Contains(errOut, "node node-east not found; cluster "+rootName+" refused to list its nodes: "+want[strings.Index(want, "locked by"):]+"; "+want) {
			t.Errorf("ssh without --cluster: %v\n%s", err, errOut)
		}
	})

	t.Run("an_offline_leaf_is_reported_honestly", func(t *testing.T) {
		leaf.ctl(t, tetherctl, "create", "--force", writeTemp(t, trust(false, "")))
		testenv.Eventually(t, 30*time.Second, func() error {
			_, errOut, _ := alice.run(t, "", "ls", "--cluster="+leafName)
			if !strings.Contains(errOut, "cluster "+leafName+" is offline") {
				return fmt.Errorf("ls: %s", errOut)
			}
			return nil
		})
		if out := alice.must(t, "", "status"); !strings.Contains(out, leafName+": roles offline") {
			t.Fatalf("status:\n%s", out)
		}
		_, errOut, err := alice.run(t, "", "ssh", login+"@ghost", "true")
		if err == nil || !strings.Contains(errOut, "node ghost not found in clusters "+rootName+"; not searched: cluster "+leafName+" is offline") {
			t.Fatalf("ssh with the leaf offline: %v\n%s", err, errOut)
		}
	})
}
