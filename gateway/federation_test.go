package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/tunnel"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/state"
)

// The root's own node list is one Engine.NodeList evaluation; its answers must be those
// of one ssh.session decision per node and login (issue 8 point 5), for certificates with
// different roles and logins, over nodes with varied labels, a deny selector, a denied
// login and a lock on one node.
func TestOwnNodeListEqualsSingleDecisions(t *testing.T) {
	cfg := load(t, t.TempDir())
	run(t, cfg, func(g *Gateway) {
		ctx := context.Background()
		var docs []string
		docs = append(docs,
			"kind: role\nversion: v5\nmetadata: {name: stage}\nspec:\n  allow:\n    logins: [visitor, '{{internal.logins}}']\n    node_labels: {env: [stage, dev]}\n  deny:\n    logins: [root]\n",
			"kind: role\nversion: v5\nmetadata: {name: prod}\nspec:\n  allow:\n    logins: [ops]\n    node_labels: {env: prod, team: '^(db|web)$'}\n  deny:\n    node_labels: {quarantine: 'yes'}\n",
			"kind: role\nversion: v5\nmetadata: {name: all}\nspec:\n  allow:\n    logins: [admin]\n    node_labels: {'*': '*'}\n",
			"kind: lock\nversion: v2\nmetadata: {name: l1}\nspec:\n  target: {node: node-7}\n  message: maintenance\n",
		)
		r := mrand.New(mrand.NewPCG(1, 2))
		envs := []string{"stage", "dev", "prod", "qa"}
		teams := []string{"db", "web", "ml"}
		for i := range 40 {
			labels := fmt.Sprintf("env: %s, team: %s", envs[r.IntN(len(envs))], teams[r.IntN(len(teams))])
			if r.IntN(5) == 0 {
				labels += ", quarantine: 'yes'"
			}
			docs = append(docs, fmt.Sprintf("kind: node\nversion: v2\nmetadata:\n  name: node-%d\n  labels: {%s}\nspec:\n  addr: 127.0.0.1:%d\n", i, labels, 3000+i))
		}
		rs, err := resource.Parse([]byte(strings.Join(docs, "---\n")), "fixture.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.auth.Create(ctx, rs, false); err != nil {
			t.Fatal(err)
		}
		nodes, err := g.auth.Get(ctx, resource.KindNode, "", false)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			roles, logins []string
		}{
			{[]string{"stage"}, []string{"visitor", "alice", "root"}},
			{[]string{"prod"}, []string{"ops", "visitor"}},
			{[]string{"stage", "prod"}, []string{"ops", "visitor", "root"}},
			{[]string{"all", "prod"}, []string{"admin", "ops"}},
			{[]string{"nosuchrole"}, []string{"visitor"}},
		} {
			t.Run(strings.Join(tc.roles, "+"), func(t *testing.T) {
				id := aliceCert(t, g, tc.roles, tc.logins)
				listed, err := g.ownNodes(ctx, id, "test")
				if err != nil {
					t.Fatal(err)
				}
				got := map[string][]string{}
				for _, n := range listed {
					got[n.Name] = n.Logins
				}
				want := map[string][]string{}
				now := time.Now()
				for _, r := range nodes {
					n := r.(*resource.Node)
					for _, login := range tc.logins {
						d, err := g.engine.Decide(ctx, &policy.Input{Action: policy.ActionSSHSession, Cluster: g.cfg.ClusterName, Now: now, Cert: id, Login: login,
							Node: &policy.Node{Name: n.Metadata.Name, Labels: n.Metadata.Labels}})
						if err != nil {
							t.Fatal(err)
						}
						if d.Allow {
							want[n.Metadata.Name] = append(want[n.Metadata.Name], login)
						}
					}
				}
				for name := range want {
					slices.Sort(want[name])
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("node list %v\nsingle decisions %v", got, want)
				}
				if len(tc.roles) > 0 && tc.roles[0] == "stage" && len(got) == 0 {
					t.Fatal("the fixture reaches nothing: the comparison proves little")
				}
			})
		}
	})
}

// TestANodeStoredWithBadLabelsIsLeftOutOfNodeLists: a node written before its labels and
// name were checked on write (an escape sequence in a label, an IP address as its name) is
// left out of the leaf's node list for a root (leafNodesForRoot),
// which a root would otherwise refuse whole: the other nodes stay listed.
func TestANodeStoredWithBadLabelsIsLeftOutOfNodeLists(t *testing.T) {
	cfg := load(t, t.TempDir())
	run(t, cfg, func(g *Gateway) {
		ctx := context.Background()
		rs, err := resource.Parse([]byte("kind: role\nversion: v5\nmetadata: {name: all}\nspec:\n  allow:\n    logins: [admin]\n    node_labels: {'*': '*'}\n"+
			"---\nkind: node\nversion: v2\nmetadata: {name: good, labels: {env: prod}}\nspec:\n  addr: 127.0.0.1:3000\n"), "fixture.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.auth.Create(ctx, rs, false); err != nil {
			t.Fatal(err)
		}
		bad := &resource.Node{Kind: resource.KindNode, Version: "v2",
			Metadata: resource.Metadata{Name: "bad", Labels: map[string]string{"env": "prod\x1b]0;owned\x07"}},
			Spec:     resource.NodeSpec{Addr: "127.0.0.1:3001", Hostname: "bad"}}
		data, err := resource.Marshal(bad)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.store.Put(ctx, state.Item{Key: "resources/node/bad", Value: data}); err != nil {
			t.Fatal(err)
		}
		badName := &resource.Node{Kind: resource.KindNode, Version: "v2", Metadata: resource.Metadata{Name: "10.0.0.1"},
			Spec: resource.NodeSpec{Addr: "10.0.0.1:22", Hostname: "10.0.0.1"}}
		if data, err = resource.Marshal(badName); err != nil {
			t.Fatal(err)
		}
		if _, err := g.store.Put(ctx, state.Item{Key: "resources/node/10.0.0.1", Value: data}); err != nil {
			t.Fatal(err)
		}
		if n, err := g.auth.Nodes(ctx); err != nil || len(n) != 3 {
			t.Fatalf("the store holds %d nodes (%v), want the bad ones beside the good one", len(n), err)
		}
		listed, err := g.ownNodes(ctx, aliceCert(t, g, []string{"all"}, []string{"admin"}), "test")
		if err != nil {
			t.Fatal(err)
		}
		listed = leafNodesForRoot(listed, g.log)
		answer, err := json.Marshal(tunnel.NodeListAnswer{Nodes: listed})
		if err != nil {
			t.Fatal(err)
		}
		got, err := tunnel.DecodeNodeList(answer)
		if err != nil {
			t.Fatalf("a root refuses the leaf's node list: %v", err)
		}
		if len(got) != 1 || got[0].Name != "good" {
			t.Fatalf("listed %+v, want only the good node", got)
		}
	})
}

// aliceCert is the policy view of a certificate of g's user CA for alice with roles and
// logins (also her logins trait), as g's SSH entry would verify it.
func aliceCert(t *testing.T, g *Gateway, roles, logins []string) policy.Cert {
	t.Helper()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := ssh.NewPublicKey(pub)
	c, err := g.auth.CA().User.IssueUser(ca.UserCertRequest{PublicKey: key, Username: "alice", Logins: logins, Roles: roles,
		Traits: map[string][]string{"logins": logins}, TTL: time.Hour, MaxTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ca.VerifyUser(c, g.auth.CA().User.TrustedKeys())
	if err != nil {
		t.Fatal(err)
	}
	id, err := policy.CertFromSSH(c, signer)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
