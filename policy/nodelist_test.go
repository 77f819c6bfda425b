package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestNodeListEqualsSingleDecisions: for random certificates, times and nodes, NodeList
// answers in one evaluation exactly what one ssh.session decision per (node, login) says,
// with the fixture's operator deny (which reads only login and labels, so it is asked per
// label set) and with one that reads the node's name (asked per node); the node list on
// OPA's plan and on topdown, the single decisions on the public query.
func TestNodeListEqualsSingleDecisions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		operator string
		nameFree bool
	}{
		{"operator_deny_reads_labels", fixtureOperatorModule, true},
		{"operator_deny_reads_node_name", fixtureOperatorModule + "\ndeny contains \"no node-3\" if input.node.name == \"node-3\"\n", false},
	} {
		for _, ev := range []string{EvaluatorPlanned, EvaluatorTopdown} {
			t.Run(tc.name+"/"+ev, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t)
				f.operator = tc.operator
				e := f.engine(t, Options{CacheSize: -1, Evaluator: ev})
				if got, _, _ := strings.Cut(e.Evaluators()["nodes"], ":"); got != ev {
					t.Fatalf("node lists are evaluated by %q, want %s", got, ev)
				}
				if got := e.cur.Load().denyIgnoresNodeName; got != tc.nameFree {
					t.Fatalf("denyIgnoresNodeName = %v, want %v", got, tc.nameFree)
				}
				ctx := context.Background()
				r := rand.New(rand.NewPCG(3, 4))
				reachable, n := 0, 60
				if testing.Short() {
					n = 15
				}
				for i := 0; i < n; i++ {
					in := f.randomInput(r)
					nodes := make([]Node, 8)
					for j := range nodes {
						nodes[j] = *f.randomInput(r).Node
						nodes[j].Name = fmt.Sprintf("node-%d", j)
					}
					got, err := e.NodeList(ctx, in, nodes)
					if err != nil {
						t.Fatal(err)
					}
					if len(got) != len(nodes) {
						t.Fatalf("%d entries for %d nodes", len(got), len(nodes))
					}
					logins := append(slices.Clone(in.Cert.Principals), "visitor", "root", "login-3")
					for j, node := range nodes {
						var want []string
						for _, login := range logins {
							req := *in
							req.Action, req.Login, req.Node = ActionSSHSession, login, &node
							d, err := e.DecidePlain(ctx, &req)
							if err != nil {
								t.Fatal(err)
							}
							if d.Allow && !slices.Contains(want, login) {
								want = append(want, login)
							}
						}
						slices.Sort(want)
						if !slices.Equal(got[j].Logins, want) {
							t.Fatalf("request %d node %+v: NodeList says %q, single decisions %q\ncert %+v at %s", i, node, got[j].Logins, want, in.Cert, in.Now)
						}
						if len(want) > 0 {
							reachable++
						}
					}
				}
				if reachable == 0 {
					t.Fatal("no node was reachable: the comparison proves little")
				}
			})
		}
	}
}
