package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/internal/testproc"
)

const (
	rootName = "root.example.com"
	leafName = "leaf"
	// The leaf's servers, named and labelled as the guide's mongodb.stage / mongodb.prod.
	stageNode = "mongodb-stage" // a Tether node agent, env=stage
	prodNode  = "mongodb-prod"  // an OpenSSH sshd registered by hand, env=prod
)

// The leaf's roles (guide step 1): visitor for the root's access role, and stage-access,
// Alice's full-access mapped, which reaches only env=stage servers.
const leafRoles = `kind: role
version: v5
metadata:
  name: visitor
spec:
  allow:
    logins: [visitor]
    node_labels:
      '*': '*'
---
kind: role
version: v5
metadata:
  name: stage-access
spec:
  allow:
    logins: ['{{internal.logins}}']
    node_labels:
      env: stage
  deny:
    logins: [root]
`

// The root's full-access role (Alice's, from the identity provider in the guide).
const rootRoles = `kind: role
version: v5
metadata:
  name: full-access
spec:
  allow:
    logins: ['{{internal.logins}}']
    node_labels:
      '*': '*'
`

// scenario is the running federation and the people using it.
type scenario struct {
	top            *testing.T // owns the processes: they outlive each step
	bins           testproc.Bins
	ssh            testproc.OpenSSH
	root, leaf     *testproc.Cluster
	stage          *testproc.NodeAgent
	prod           *testproc.SSHD
	myuser, alice  *testproc.User
	token          string
	tunnelAddr     string
	webAddr        string
	trustedCluster string // the trusted_cluster resource as `tetherctl get` printed it on the leaf
}

// TestSeedGuide runs the trusted-clusters guide end to end with separate processes.
func TestSeedGuide(t *testing.T) {
	s := &scenario{top: t, bins: testproc.Build(t), ssh: testproc.RequireOpenSSH(t)}
	testproc.EnsureUnixUser(t, "visitor") // the guide's login, on the nodes (this host)
	start := time.Now()
	defer func() { t.Logf("the seed guide took %s", time.Since(start).Round(time.Second)) }()

	steps := []struct {
		name string
		run  func(*testing.T)
	}{
		{"step_1_the_leaf_has_the_visitor_and_stage-access_roles_and_two_servers", s.step1},
		{"step_2_the_root_has_users_with_the_visitor_login", s.step2},
		{"step_3_the_root_issues_an_invitation_token", s.step3},
		{"step_4_the_leaf_creates_the_trusted_cluster_and_users_see_it", s.step4},
		{"step_5_cluster_labels_hide_the_leaf_until_a_role_grants_them", s.step5},
		{"step_6_access_a_server_in_the_leaf_as_role_mapping_allows", s.step6},
		{"bad_input_is_refused_with_what_to_do_next", s.badInput},
		{"live_sessions_end_when_the_rules_they_were_allowed_under_change", s.liveFollowsPolicy},
		{"temporarily_disable_the_trust_cuts_live_sessions_and_re-enable_restores_it", s.disableTrust},
		{"remove_the_leaf_completely_on_both_sides", s.removeLeaf},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.run) {
			t.Fatalf("stopping: the guide's later steps build on %q", st.name)
		}
	}
}

// Step 1/6 (leaf): the visitor role for the root's access, stage-access for Alice's
// full-access, and the guide's prerequisite, servers joined to the leaf: the stage server is
// a Tether node agent joined with a node token; the prod server is OpenSSH's sshd with a host
// certificate of the leaf's host CA, trusting the leaf's user CA, registered by hand.
func (s *scenario) step1(t *testing.T) {
	s.root = testproc.StartCluster(t, s.top, s.bins, testproc.ClusterConfig{Name: rootName})
	// The leaf verifies the root's web proxy with the root's TLS CA (no --insecure).
	s.leaf = testproc.StartCluster(t, s.top, s.bins, testproc.ClusterConfig{Name: leafName,
		Extra: "root_ca_file: " + s.root.TLSCAFile() + "\n"})
	s.leaf.Create(t, leafRoles)

	s.stage = testproc.StartNodeAgent(t, s.top, s.bins, s.leaf, stageNode, "env=stage")
	s.prod = testproc.StartSSHD(t, s.top, s.ssh, s.leaf, prodNode, s.leaf.OpenSSHCAFile(t, s.top))
	s.leaf.Create(t, fmt.Sprintf("kind: node\nversion: v2\nmetadata:\n  name: %s\n  labels:\n    env: prod\nspec:\n  addr: %s\n  hostname: %s\n", prodNode, s.prod.Addr, prodNode))
	out := s.leaf.MustCtl(t, "get", "node", "--format", "text")
	for _, n := range []string{stageNode, prodNode} {
		if !strings.Contains(out, n) {
			t.Fatalf("get node on the leaf does not list %s:\n%s", n, out)
		}
	}
}

// Step 2/6 (root): users with the visitor login. myuser is the guide's own user with the
// access role; Alice has full-access (from the identity provider in the guide). Each signs
// up with the one-time command the admin hands over and signs in with tether.
func (s *scenario) step2(t *testing.T) {
	s.root.Create(t, rootRoles)
	s.myuser = testproc.NewUser(s.top, s.bins, "myuser")
	s.alice = testproc.NewUser(s.top, s.bins, "alice")
	for _, u := range []struct {
		who   *testproc.User
		roles string
	}{{s.myuser, "access"}, {s.alice, "full-access"}} {
		added := s.root.MustCtl(t, "users", "add", u.who.Name, "--roles="+u.roles, "--logins=visitor")
		u.who.SignUp(t, added, "correct horse battery "+u.who.Name)
		out := u.who.Login(t)
		if !strings.Contains(out, "Logged in as:       "+u.who.Name) || !strings.Contains(out, "Logins:             visitor") {
			t.Fatalf("%s: tether login printed:\n%s", u.who.Name, out)
		}
	}
	if yaml := s.root.MustCtl(t, "get", "user/myuser"); !strings.Contains(yaml, "- visitor") {
		t.Fatalf("get user/myuser lacks the visitor login:\n%s", yaml)
	}
	var st struct {
		User  string   `json:"user"`
		Roles []string `json:"roles"`
	}
	if err := json.Unmarshal([]byte(s.alice.MustTether(t, "status", "-f", "json")), &st); err != nil || st.User != "alice" || strings.Join(st.Roles, ",") != "full-access" {
		t.Fatalf("alice's tether status -f json: %v %+v", err, st)
	}
}

// Step 3/6 (root): the invitation token, and the addresses the guide reads from
// /webapi/ping for trusted_cluster.yaml.
func (s *scenario) step3(t *testing.T) {
	added := s.root.MustCtl(t, "tokens", "add", "--type=trusted_cluster", "--ttl=5m")
	m := regexp.MustCompile(`The cluster invite token: (\S+)`).FindStringSubmatch(added)
	if m == nil {
		t.Fatalf("tokens add printed no invite token:\n%s", added)
	}
	s.token = m[1]
	if ls := s.root.MustCtl(t, "tokens", "ls"); !strings.Contains(ls, "trusted_cluster") {
		t.Fatalf("tokens ls does not show the trusted_cluster token:\n%s", ls)
	}
	s.tunnelAddr, s.webAddr = s.ping(t)
}

// Step 4/6 (leaf): the trusted_cluster resource with the role map; the root shows the leaf
// online and so does tether clusters.
func (s *scenario) step4(t *testing.T) {
	tc := fmt.Sprintf(`kind: trusted_cluster
version: v2
metadata:
  name: %s
spec:
  enabled: true
  token: %s
  tunnel_addr: %s
  web_proxy_addr: %s
  role_map:
    - remote: "access"
      local: ["visitor"]
    - remote: "full-access"
      local: ["stage-access"]
`, rootName, s.token, s.tunnelAddr, s.webAddr)
	s.leaf.Create(t, tc)
	s.trustedCluster = s.leaf.MustCtl(t, "get", "trusted_cluster/"+rootName)
	if strings.Contains(s.trustedCluster, s.token) {
		t.Fatalf("the leaf kept the invitation token after the join:\n%s", s.trustedCluster)
	}
	rc := s.root.WaitCtl(t, 60*time.Second, []string{"get", "rc"}, "name: "+leafName, "connection: online", "last_heartbeat:")
	t.Logf("tetherctl get rc on the root:\n%s", rc)
	for _, p := range []*testproc.Cluster{s.root, s.leaf} {
		if strings.Contains(p.Log(), s.token) {
			t.Fatalf("%s logged the invitation token", p.Name)
		}
	}
	for _, u := range []*testproc.User{s.myuser, s.alice} {
		out := u.MustTether(t, "clusters")
		if !strings.HasPrefix(out, "Cluster Name") ||
			!regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(rootName)+` +online +root +\* *$`).MatchString(out) ||
			!regexp.MustCompile(`(?m)^`+leafName+` +online +leaf +$`).MatchString(out) {
			t.Fatalf("%s: tether clusters:\n%s", u.Name, out)
		}
	}
}

// ping reads the root's /webapi/ping as the guide's jq lines do, verifying the proxy with
// the root's TLS CA.
func (s *scenario) ping(t *testing.T) (tunnelAddr, webAddr string) {
	t.Helper()
	pem, err := os.ReadFile(s.root.TLSCAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + s.root.Addr + "/webapi/ping")
	if err != nil {
		t.Fatalf("GET /webapi/ping: %v", err)
	}
	defer resp.Body.Close()
	var ping struct {
		Proxy struct {
			SSH struct {
				PublicAddr string `json:"public_addr"`
				Tunnel     string `json:"ssh_tunnel_public_addr"`
			} `json:"ssh"`
		} `json:"proxy"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ping); err != nil || ping.Proxy.SSH.Tunnel == "" || ping.Proxy.SSH.PublicAddr == "" {
		t.Fatalf("/webapi/ping: %v %+v", err, ping)
	}
	return ping.Proxy.SSH.Tunnel, ping.Proxy.SSH.PublicAddr
}

// tsh runs `tether ssh --cluster=CLUSTER LOGIN@NODE CMD` as u.
func (s *scenario) tsh(t *testing.T, u *testproc.User, cluster, target, command string) testproc.Result {
	t.Helper()
	return u.Tether(t, "", "ssh", "--cluster="+cluster, target, command)
}

func (s *scenario) step6(t *testing.T) {
	t.Run("access_maps_to_visitor_on_the_node_agent", func(t *testing.T) {
		r := s.tsh(t, s.myuser, leafName, "visitor@"+stageNode, "echo ok; id -un")
		if r.Code != 0 || r.Stdout != "ok\nvisitor\n" {
			t.Fatalf("tether ssh visitor@%s: %s\nleaf log:\n%s", stageNode, r, s.leaf.Log())
		}
	})
	t.Run("access_maps_to_visitor_on_the_OpenSSH_server_through_root_and_leaf", func(t *testing.T) {
		r := s.tsh(t, s.myuser, leafName, "visitor@"+prodNode, "echo ok; id -un; exit 3")
		if r.Code != 3 || r.Stdout != "ok\nvisitor\n" {
			t.Fatalf("tether ssh visitor@%s: %s\nsshd log:\n%s", prodNode, r, s.prod.Log())
		}
		// sshd saw a short-lived certificate of the leaf's user CA, naming the root user.
		if !strings.Contains(s.prod.Log(), `Accepted certificate ID "myuser@`+rootName+` via `+leafName+`"`) {
			t.Fatalf("sshd log:\n%s", s.prod.Log())
		}
	})
	t.Run("alice_full-access_maps_to_stage-access_allowed_on_the_stage_server", func(t *testing.T) {
		r := s.tsh(t, s.alice, leafName, "visitor@"+stageNode, "echo ok")
		if r.Code != 0 || r.Stdout != "ok\n" {
			t.Fatalf("alice on %s: %s", stageNode, r)
		}
	})
	t.Run("alice_is_denied_on_the_prod_server_and_told_why", func(t *testing.T) {
		before := strings.Count(s.prod.Log(), "Connection from")
		r := s.tsh(t, s.alice, leafName, "visitor@"+prodNode, "echo should-not-run")
		t.Logf("alice on %s: %s", prodNode, strings.TrimSpace(r.Stderr))
		if r.Code == 0 || strings.Contains(r.Stdout, "should-not-run") {
			t.Fatalf("alice reached %s: %s", prodNode, r)
		}
		for _, want := range []string{"user alice@" + rootName + " is not authorized to login as visitor@" + leafName, prodNode} {
			if !strings.Contains(r.Stderr, want) {
				t.Fatalf("the denial does not say %q: %s", want, r)
			}
		}
		if strings.Contains(r.Stderr, "ssh: ") {
			t.Fatalf("the denial reads as a Go error chain: %s", r.Stderr)
		}
		if after := strings.Count(s.prod.Log(), "Connection from"); after != before {
			t.Fatalf("the leaf dialed %s for a denied session:\n%s", prodNode, s.prod.Log())
		}
	})
	t.Run("the_leaf_decides_and_logs_every_session", func(t *testing.T) {
		testenv.Eventually(t, 20*time.Second, func() error {
			allowed, denied := false, false
			for _, ev := range decisions(t, s.leaf.DecisionLog) {
				if ev.Input.Action != "ssh.session" || ev.Input.Cert.Username != "alice" {
					continue
				}
				if ev.Input.Node.Name == stageNode && ev.Result.Allow {
					allowed = true
				}
				if ev.Input.Node.Name == prodNode && !ev.Result.Allow {
					denied = true
				}
			}
			if !allowed || !denied {
				return fmt.Errorf("alice's decisions on the leaf: allowed on stage %v, denied on prod %v", allowed, denied)
			}
			return nil
		})
	})
	t.Run("opa_eval_of_the_leafs_exported_bundle_gives_its_logged_decisions", func(t *testing.T) {
		// A security team's check: the bundle the leaf decides with, exported from the
		// running cluster, gives the real opa CLI the decisions the leaf logged with it.
		opa := testenv.OPA(t)
		checked := 0
		testenv.Eventually(t, 30*time.Second, func() error {
			for _, target := range []string{"visitor@" + stageNode, "visitor@" + prodNode} {
				s.tsh(t, s.alice, leafName, target, "true")
			}
			path := filepath.Join(t.TempDir(), "leaf.tar.gz")
			out := s.leaf.MustCtl(t, "policy", "export", "-o", path)
			rev, _, ok := strings.Cut(strings.TrimPrefix(out, "bundle revision "), " ")
			if !ok {
				return fmt.Errorf("policy export said %q", out)
			}
			data, err := os.ReadFile(s.leaf.DecisionLog)
			if err != nil {
				return err
			}
			allowed, denied := 0, 0
			for _, line := range strings.Split(string(data), "\n") {
				var ev struct {
					Path    string                               `json:"path"`
					Input   json.RawMessage                      `json:"input"`
					Result  struct{ Allow bool }                 `json:"result"`
					Bundles map[string]struct{ Revision string } `json:"bundles"`
				}
				if json.Unmarshal([]byte(line), &ev) != nil || len(ev.Input) == 0 || !strings.Contains(string(ev.Input), `"username":"alice"`) {
					continue
				}
				same := false
				for _, b := range ev.Bundles {
					same = same || b.Revision == rev
				}
				if !same {
					continue
				}
				in := testproc.WriteFile(t, "input.json", string(ev.Input))
				r := testproc.Run(t, exec.Command(opa, "eval", "-b", path, "-i", in, "--format", "raw", "data.tether.authz.decision.allow"))
				if r.Code != 0 {
					t.Fatalf("opa eval on the exported bundle: %s", r)
				}
				if got := strings.TrimSpace(r.Stdout); got != fmt.Sprint(ev.Result.Allow) {
					t.Fatalf("opa eval -b gives allow=%s, the leaf logged %v for %s (path %s)", got, ev.Result.Allow, ev.Input, ev.Path)
				}
				if ev.Result.Allow {
					allowed++
				} else {
					denied++
				}
			}
			if allowed == 0 || denied == 0 {
				return fmt.Errorf("decisions of alice logged at revision %s: %d allowed, %d denied", rev, allowed, denied)
			}
			checked = allowed + denied
			return nil
		})
		t.Logf("%d logged decisions reproduced by opa eval -b on the exported bundle", checked)
	})
	t.Run("OpenSSH_ssh_with_tether_proxy_ssh_as_ProxyCommand_reaches_a_leaf_node", func(t *testing.T) {
		for _, node := range []string{stageNode, prodNode} {
			r := s.openssh(t, s.myuser, append(s.proxyCommandArgs(s.myuser), "visitor@"+node+"."+leafName, "echo via-proxycommand; id -un")...)
			if r.Code != 0 || r.Stdout != "via-proxycommand\nvisitor\n" {
				t.Fatalf("ssh -o ProxyCommand to %s: %s", node, r)
			}
		}
	})
	t.Run("OpenSSH_ssh_-F_with_tether_config_reaches_a_leaf_node", func(t *testing.T) {
		cfg := s.myuser.MustTether(t, "config")
		if !strings.Contains(cfg, "Match originalhost *."+leafName+",*."+leafName+".\n") {
			t.Fatalf("tether config has no block for the leaf:\n%s", cfg)
		}
		r := s.openssh(t, s.myuser, "-F", testproc.WriteFile(t, "ssh_config", cfg), "visitor@"+prodNode+"."+leafName, "echo via-config; exit 4")
		if r.Code != 4 || r.Stdout != "via-config\n" {
			t.Fatalf("ssh -F: %s", r)
		}
	})
	t.Run("OpenSSH_ssh_-J_through_the_root_proxy_reaches_a_leaf_node", func(t *testing.T) {
		// tether config describes the proxy too (port, keys, its host certificate under the
		// root's name); ProxyJump's inner ssh reads only that file (not -o or -i).
		u := s.myuser
		cfgText := u.MustTether(t, "config")
		proxyHost := hostOf(s.root.Addr)
		if !strings.Contains(cfgText, "Match originalhost "+proxyHost+","+proxyHost+".\n") {
			t.Fatalf("tether config has no block for the proxy %s:\n%s", proxyHost, cfgText)
		}
		cfg := testproc.WriteFile(t, "ssh_config", cfgText)
		jump := []string{"-F", cfg, "-J", proxyHost}
		r := s.openssh(t, u, append(jump, "visitor@"+prodNode+"."+leafName, "echo via-jump; exit 3")...)
		if r.Code != 3 || r.Stdout != "via-jump\n" {
			t.Fatalf("ssh -J: %s", r)
		}
		// The same route and the same refusals as the subsystem: an unknown node is the
		// leaf's answer, and a denied login is the leaf's decision.
		r = s.openssh(t, u, append(jump, "visitor@ghost."+leafName, "true")...)
		if r.Code == 0 || !strings.Contains(r.Stderr, `node "ghost" not found in cluster `+leafName) {
			t.Fatalf("ssh -J to an unknown node: %s", r)
		}
		r = s.openssh(t, u, append(jump, "root@"+prodNode+"."+leafName, "true")...)
		if r.Code == 0 || strings.Contains(r.Stdout, "uid=0") {
			t.Fatalf("ssh -J as a login the user lacks: %s", r)
		}
		// ssh straight to the proxy: it runs no command, and says what it is for.
		r = s.openssh(t, u, "-F", cfg, proxyHost, "true")
		if r.Code != 1 || !strings.Contains(r.Stderr, "the proxy runs no shell or command") {
			t.Fatalf("ssh to the proxy itself: %s", r)
		}
	})
	t.Run("tether_ls_--cluster=leaf_lists_the_leaf_nodes", func(t *testing.T) {
		r := s.myuser.Tether(t, "", "ls", "--cluster="+leafName)
		if r.Code != 0 || !strings.Contains(r.Stdout, stageNode) || !strings.Contains(r.Stdout, prodNode) {
			t.Fatalf("tether ls --cluster=%s: %s", leafName, r)
		}
		// Alice's stage-access reaches only the stage server; the leaf's policy filters.
		if out := s.alice.MustTether(t, "ls", "--cluster="+leafName); !strings.Contains(out, stageNode) || strings.Contains(out, prodNode) {
			t.Fatalf("alice's tether ls --cluster=%s:\n%s", leafName, out)
		}
	})
	t.Run("tether_ssh_without_--cluster_finds_a_leaf_node", func(t *testing.T) {
		r := s.myuser.Tether(t, "", "ssh", "visitor@"+stageNode, "echo found")
		if r.Code != 0 || r.Stdout != "found\n" {
			t.Fatalf("tether ssh visitor@%s without --cluster: %s", stageNode, r)
		}
	})
}

// openssh runs OpenSSH's ssh as u (TETHER_HOME set for a ProxyCommand), strict about host
// keys and with nothing of the machine's own configuration.
func (s *scenario) openssh(t *testing.T, u *testproc.User, args ...string) testproc.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.ssh.SSH, append([]string{"-o", "BatchMode=yes", "-o", "ControlPath=none", "-o", "IdentityAgent=none",
		"-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no"}, args...)...)
	cmd.Env = u.Env()
	return testproc.Run(t, cmd)
}

// proxyCommandArgs are OpenSSH options for reaching leaf nodes as LOGIN@NODE.leaf with
// `tether proxy ssh` as the ProxyCommand and u's key, certificate and known_hosts.
func (s *scenario) proxyCommandArgs(u *testproc.User) []string {
	keys := filepath.Join(u.Home, "keys", hostOf(s.root.Addr))
	return []string{
		"-o", fmt.Sprintf("ProxyCommand=%s proxy ssh --cluster=%s %%r@%%h:%%p", s.bins.Tether, leafName),
		"-o", "UserKnownHostsFile=" + filepath.Join(u.Home, "known_hosts"),
		"-o", "IdentitiesOnly=yes", "-i", filepath.Join(keys, u.Name),
		"-o", "CertificateFile=" + filepath.Join(keys, u.Name+"-cert.pub"),
	}
}

// liveSession starts cmd, a session whose remote command prints "started" and then
// sleeps, and waits until it has started; the test's end stops it.
func liveSession(t *testing.T, name string, cmd *exec.Cmd) *testproc.Background {
	t.Helper()
	out := &testenv.Buffer{}
	cmd.Stdout = out
	live := testproc.Start(t, t, name, cmd)
	testenv.Eventually(t, 60*time.Second, func() error {
		if live.Exited() {
			t.Fatalf("%s ended before it started: %v\n%s%s", name, live.Err(), out, live.Log)
		}
		if !strings.Contains(out.String(), "started") {
			return fmt.Errorf("%s has not started", name)
		}
		return nil
	})
	return live
}

func (s *scenario) step5(t *testing.T) {
	s.root.MustCtl(t, "update", "rc/"+leafName, "--set-labels=env=demo")
	if rc := s.root.MustCtl(t, "get", "rc/"+leafName); !strings.Contains(rc, "env: demo") {
		t.Fatalf("get rc after update --set-labels:\n%s", rc)
	}
	t.Run("a_labelled_leaf_is_hidden_from_roles_without_cluster_labels", func(t *testing.T) {
		for _, u := range []*testproc.User{s.myuser, s.alice} {
			if out := u.MustTether(t, "clusters"); strings.Contains(out, leafName+" ") {
				t.Fatalf("%s still sees the leaf:\n%s", u.Name, out)
			}
			r := s.tsh(t, u, leafName, "visitor@"+stageNode, "true")
			if r.Code == 0 || !strings.Contains(r.Stderr, "cluster "+leafName+" not found") {
				t.Fatalf("%s: tether ssh to the hidden leaf: %s", u.Name, r)
			}
		}
		// The root decided (cluster.route) and logged the denial; the leaf was never asked.
		testenv.Eventually(t, 20*time.Second, func() error {
			for _, ev := range decisions(t, s.root.DecisionLog) {
				if ev.Input.Action == "cluster.route" && ev.Input.RemoteCluster.Name == leafName && ev.Input.Cert.Username == "alice" && !ev.Result.Allow {
					return nil
				}
			}
			return fmt.Errorf("no denied cluster.route decision for alice and %s in the root's decision log", leafName)
		})
	})
	t.Run("a_role_with_matching_cluster_labels_shows_it_after_signing_in_again", func(t *testing.T) {
		s.root.Create(t, "kind: role\nversion: v5\nmetadata:\n  name: demo-cluster-access\nspec:\n  allow:\n    cluster_labels:\n      'env': 'demo'\n")
		grant := func(u *testproc.User) {
			var st struct {
				Username string   `json:"user"`
				Roles    []string `json:"roles"`
			}
			if err := json.Unmarshal([]byte(u.MustTether(t, "status", "-f", "json")), &st); err != nil {
				t.Fatal(err)
			}
			// The guide: ROLES=$(tsh status -f json | jq ...); tctl users update --set-roles.
			s.root.MustCtl(t, "users", "update", st.Username, "--set-roles="+strings.Join(st.Roles, ",")+",demo-cluster-access")
			u.Login(t) // the new role is in the next certificate
		}
		grant(s.myuser)
		out := s.myuser.MustTether(t, "clusters")
		if !regexp.MustCompile(`(?m)^` + leafName + ` +online +leaf +env=demo +$`).MatchString(out) {
			t.Fatalf("tether clusters after the role:\n%s", out)
		}
		r := s.tsh(t, s.myuser, leafName, "visitor@"+stageNode, "echo ok")
		if r.Code != 0 || r.Stdout != "ok\n" {
			t.Fatalf("tether ssh with the role: %s", r)
		}
		// Alice has no such role yet: still hidden.
		if out := s.alice.MustTether(t, "clusters"); strings.Contains(out, leafName+" ") {
			t.Fatalf("alice sees the leaf:\n%s", out)
		}
		grant(s.alice)
		if out := s.alice.MustTether(t, "clusters"); !strings.Contains(out, leafName+" ") {
			t.Fatalf("alice does not see the leaf after the role:\n%s", out)
		}
		if rc := s.root.MustCtl(t, "get", "rc"); !strings.Contains(rc, "env: demo") || !strings.Contains(rc, "connection: online") {
			t.Fatalf("get rc:\n%s", rc)
		}
	})
}

func (s *scenario) disableTrust(t *testing.T) {
	disabled := strings.Replace(s.trustedCluster, "enabled: true", "enabled: false", 1)
	if disabled == s.trustedCluster {
		t.Fatalf("no enabled: true in the trusted_cluster:\n%s", s.trustedCluster)
	}
	// Live sessions through root → tunnel → leaf: tether ssh to the OpenSSH server, and
	// OpenSSH's ssh with tether proxy ssh as its ProxyCommand to the node agent.
	marker := fmt.Sprintf("sleep 6%d", time.Now().UnixNano()%1000) // the program to find on the node
	live := map[string]*testproc.Background{
		"tether ssh to " + prodNode: liveSession(t, "tether ssh to "+prodNode,
			s.myuser.Command(context.Background(), "ssh", "--cluster="+leafName, "visitor@"+prodNode, "echo started; "+marker)),
	}
	waitRunning(t, marker)
	proxied := exec.Command(s.ssh.SSH, append(append([]string{"-o", "BatchMode=yes", "-o", "ControlPath=none", "-o", "IdentityAgent=none",
		"-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes"}, s.proxyCommandArgs(s.myuser)...),
		"visitor@"+stageNode+"."+leafName, "echo started; sleep 60")...)
	proxied.Env = s.myuser.Env()
	live["OpenSSH ProxyCommand to "+stageNode] = liveSession(t, "OpenSSH ProxyCommand to "+stageNode, proxied)

	t.Run("disabling_the_trust_cuts_live_sessions_within_seconds", func(t *testing.T) {
		s.leaf.Create(t, disabled, "--force")
		cut := time.Now()
		for name, l := range live {
			select {
			case <-l.Done():
				t.Logf("%s ended %s after the trust was disabled: %v; it said: %s", name, time.Since(cut).Round(100*time.Millisecond), l.Err(), strings.TrimSpace(l.Log.String()))
				if l.Err() == nil {
					t.Fatalf("%s exited 0 when cut", name)
				}
			case <-time.After(30*time.Second - time.Since(cut)):
				t.Fatalf("%s outlived the disabled trust by 30 s\nleaf log:\n%s", name, s.leaf.Log())
			}
		}
		// The program itself ends on the node (no terminal: OpenSSH's sshd would leave it).
		testenv.Eventually(t, 20*time.Second, func() error {
			if processRunning(marker) {
				return fmt.Errorf("%q still runs on %s after the session was cut", marker, prodNode)
			}
			return nil
		})
	})
	t.Run("the_root_shows_the_leaf_offline_and_new_sessions_say_so", func(t *testing.T) {
		s.root.WaitCtl(t, 30*time.Second, []string{"get", "rc/" + leafName}, "connection: offline")
		r := s.tsh(t, s.myuser, leafName, "visitor@"+stageNode, "true")
		if r.Code == 0 || !strings.Contains(r.Stderr, "cluster "+leafName+" is offline") {
			t.Fatalf("tether ssh to the disabled leaf: %s", r)
		}
		t.Logf("said: %s", strings.TrimSpace(r.Stderr))
	})
	t.Run("re-enabling_the_trust_restores_access_without_a_new_token", func(t *testing.T) {
		s.leaf.Create(t, s.trustedCluster, "--force")
		s.root.WaitCtl(t, 60*time.Second, []string{"get", "rc/" + leafName}, "connection: online")
		r := s.tsh(t, s.myuser, leafName, "visitor@"+stageNode, "echo ok")
		if r.Code != 0 || r.Stdout != "ok\n" {
			t.Fatalf("tether ssh after re-enabling: %s", r)
		}
	})
}

func (s *scenario) removeLeaf(t *testing.T) {
	s.leaf.MustCtl(t, "rm", "tc/"+rootName)
	if out := s.leaf.MustCtl(t, "get", "tc"); strings.Contains(out, rootName) {
		t.Fatalf("the leaf still has the trust:\n%s", out)
	}
	s.root.MustCtl(t, "rm", "rc/"+leafName)
	if out := s.root.MustCtl(t, "get", "rc"); strings.Contains(out, leafName) {
		t.Fatalf("get rc on the root after rm:\n%s", out)
	}
	if out := s.myuser.MustTether(t, "clusters"); strings.Contains(out, leafName+" ") {
		t.Fatalf("tether clusters lists the removed leaf:\n%s", out)
	}
	r := s.tsh(t, s.myuser, leafName, "visitor@"+stageNode, "true")
	if r.Code == 0 || !strings.Contains(r.Stderr, "cluster "+leafName+" not found") {
		t.Fatalf("tether ssh to the removed leaf: %s", r)
	}
	t.Logf("said: %s", strings.TrimSpace(r.Stderr))
}
