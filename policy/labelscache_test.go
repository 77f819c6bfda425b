package policy

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestLabelsCacheKeepsNodesApart: label sets that are easy to confuse (a key's text moved
// into the value, an extra empty label, one label set much longer than what is cached)
// each get their own decision, the public query's, in any order and again from the label
// cache; and the cache stays within its bound however many label sets it sees.
func TestLabelsCacheKeepsNodesApart(t *testing.T) {
	f := newFixture(t)
	e := f.engine(t, Options{})
	ctx := context.Background()
	sets := []map[string]string{
		{"env": "stage-1", "team": "team-3"},
		{"env": "stage-1team", "": "team-3"},
		{"env": "stage-1", "team": "team-3", "": ""},
		{"env": "prod", "team": "team-3"},
		{"env": "stage-1", "team": "team-4"},
		{"env": "stage-1", "team": "team-3", "big": strings.Repeat("x", 2*maxCachedLabelsBytes)},
		{},
	}
	for i := 0; i < maxCachedLabelSets+200; i++ {
		sets = append(sets, map[string]string{"env": fmt.Sprintf("stage-%d", i), "team": "team-3"})
	}
	for round := 0; round < 2; round++ {
		for i, labels := range sets {
			in := &Input{Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow,
				Cert: f.rootCert("alice", []string{"access"}, []string{"visitor"}), Login: "visitor",
				Node: &Node{Name: fmt.Sprintf("n-%d-%d", round, i), Labels: labels}}
			got, err := e.Decide(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if got, err = got.Explained(ctx); err != nil {
				t.Fatal(err)
			}
			want, err := e.DecidePlain(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			// The object the engine evaluated with is this request's labels.
			enc := decisionKey(e.cur.Load().gen, in)
			var tb termBlock
			if v := e.labels.get(enc.b[enc.nodeLabels[0]:enc.nodeLabels[1]], labels); ast.Compare(v, tb.labels(labels)) != 0 {
				t.Fatalf("round %d: labels %v were evaluated as %v", round, labels, v)
			}
			enc.release()
			got.Cached = false
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d, labels %v: %+v; the public query says %+v", round, labels, got, want)
			}
		}
	}
	if n := len(e.labels.m); n > maxCachedLabelSets || n == 0 {
		t.Fatalf("the label cache holds %d label sets; want 1 to %d", n, maxCachedLabelSets)
	}
}
