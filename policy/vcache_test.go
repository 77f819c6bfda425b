package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// randomRef draws a short key from a small space, so that keys repeat, share prefixes and
// extend one another; terms of equal value are often distinct pointers.
func randomRef(r *rand.Rand) ast.Ref {
	parts := []*ast.Term{ast.StringTerm("a"), ast.StringTerm("b"), ast.IntNumberTerm(1), ast.BooleanTerm(true),
		ast.ObjectTerm(ast.Item(ast.StringTerm("k"), ast.StringTerm("v")))}
	ref := make(ast.Ref, 1+r.IntN(4))
	for i := range ref {
		ref[i] = parts[r.IntN(len(parts))].Copy()
	}
	return ref
}

// TestFlatCacheAnswersAsOPAs: random sequences of Push, Pop, Put and Get on the pooled
// queries' virtual-document cache and on OPA's own (topdown.NewVirtualCache) give the same
// answers, undefined marks and frames included, and reset forgets everything.
func TestFlatCacheAnswersAsOPAs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	c := newFlatCache()
	for round := 0; round < 200; round++ {
		c.reset()
		want := topdown.NewVirtualCache()
		depth := 0
		for op := 0; op < 300; op++ {
			ref := randomRef(r)
			switch k := r.IntN(10); {
			case k == 0:
				c.Push()
				want.Push()
				depth++
			case k == 1 && depth > 0:
				c.Pop()
				want.Pop()
				depth--
			case k < 5:
				var v *ast.Term
				if r.IntN(4) > 0 {
					v = ast.IntNumberTerm(r.IntN(5))
				}
				c.Put(ref, v)
				want.Put(ref, v)
			default:
				gv, gu := c.Get(ref)
				wv, wu := want.Get(ref)
				if !gv.Equal(wv) || gu != wu {
					t.Fatalf("round %d op %d: Get(%v) = %v, %v; OPA's cache says %v, %v", round, op, ref, gv, gu, wv, wu)
				}
			}
			if got, want := refSet(c.Keys()), refSet(want.Keys()); !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d op %d: Keys() = %v; OPA's cache says %v", round, op, got, want)
			}
		}
	}
	c.reset()
	if v, u := c.Get(ast.Ref{ast.StringTerm("a")}); v != nil || u || len(c.Keys()) > 0 {
		t.Fatal("reset left entries behind")
	}
}

func refSet(refs []ast.Ref) map[string]bool {
	m := map[string]bool{}
	for _, r := range refs {
		m[r.String()] = true
	}
	return m
}

// baseModel states what topdown.BaseCache promises, as plainly as possible, to hold the
// flat cache to: every Put is remembered in order; a Put at a path forgets every earlier
// Put at that path or below it (a nil value stores nothing); a Get is answered by the
// stored path that is the shortest non-empty prefix of the ref read, looking inside its
// value for the rest of the ref (nil where the value has nothing there).
type baseModel struct {
	puts []modelPut
}

type modelPut struct {
	path  ast.Ref
	value ast.Value
}

func (m *baseModel) Put(ref ast.Ref, value ast.Value) {
	m.puts = slices.DeleteFunc(m.puts, func(p modelPut) bool { return p.path.HasPrefix(ref) })
	if value != nil {
		m.puts = append(m.puts, modelPut{slices.Clone(ref), value})
	}
}

func (m *baseModel) Get(ref ast.Ref) ast.Value {
	var best *modelPut
	for i := range m.puts {
		p := &m.puts[i]
		if len(p.path) > 0 && ref.HasPrefix(p.path) && (best == nil || len(p.path) < len(best.path)) {
			best = p
		}
	}
	if best == nil {
		return nil
	}
	v, err := best.value.Find(ref[len(best.path):])
	if err != nil {
		return nil
	}
	return v
}

// TestFlatBaseCacheAnswersAsOPAs: random Put and Get sequences on the pooled queries'
// base-document cache and on the model of what OPA's promises give the same answers: a read under a stored
// document finds the value inside it, a shorter stored prefix wins, and a Put drops what
// was stored below it.
func TestFlatBaseCacheAnswersAsOPAs(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	parts := []string{"a", "b", "c"}
	ref := func() ast.Ref {
		ref := make(ast.Ref, r.IntN(4))
		for i := range ref {
			ref[i] = ast.StringTerm(parts[r.IntN(len(parts))])
		}
		return ref
	}
	value := func() ast.Value {
		switch r.IntN(4) {
		case 0:
			return nil
		case 1:
			return ast.IntNumberTerm(r.IntN(5)).Value
		}
		// A document with something below it, so that reads look inside.
		return ast.MustParseTerm(fmt.Sprintf(`{"a": {"b": %d}, "c": [%d]}`, r.IntN(5), r.IntN(5))).Value
	}
	var c flatBaseCache
	for round := 0; round < 300; round++ {
		c.reset()
		want := &baseModel{}
		for op := 0; op < 100; op++ {
			k := ref()
			if r.IntN(2) == 0 {
				v := value()
				c.Put(k, v)
				want.Put(k, v)
				continue
			}
			got, w := c.Get(k), want.Get(k)
			if (got == nil) != (w == nil) || (got != nil && ast.Compare(got, w) != 0) {
				t.Fatalf("round %d op %d: Get(%v) = %v; the model says %v", round, op, k, got, w)
			}
		}
	}
}

// TestPooledCachesAnswerAsRego: the engine's pooled evaluations (with their flat caches)
// give the identity and the public decision that the rego package gives with OPA's own
// caches, for random requests.
func TestPooledCachesAnswerAsRego(t *testing.T) {
	f := newFixture(t)
	e := f.engine(t, Options{CacheSize: -1})
	ctx := context.Background()
	p := e.cur.Load()
	prep := func(q string) rego.PreparedEvalQuery {
		pq, err := rego.New(rego.Query(q), rego.Compiler(p.compiler), rego.Store(p.store), rego.StrictBuiltinErrors(true)).PrepareForEval(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return pq
	}
	idq, decq := prep(identityQuery), prep(DecisionQuery)
	r := rand.New(rand.NewPCG(8, 9))
	n := 300
	if testing.Short() {
		n = 60
	}
	for i := 0; i < n; i++ {
		in := f.randomInput(r)
		id, err := e.identity(ctx, p, in)
		if err != nil {
			t.Fatal(err)
		}
		want, err := evalValue(ctx, idq, identityInput(in.Cluster, in.Cert.Value()))
		if err != nil {
			t.Fatal(err)
		}
		if ast.Compare(id.value, want) != 0 {
			t.Fatalf("request %d: identity differs:\npooled: %v\nrego:   %v", i, id.value, want)
		}
		plain, err := e.DecidePlain(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		dv, err := evalValue(ctx, decq, in.Value())
		if err != nil {
			t.Fatal(err)
		}
		wantD, err := decisionFrom(dv, p.revision)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(plain, wantD) {
			t.Fatalf("request %d: decision differs:\npooled: %+v\nrego:   %+v", i, plain, wantD)
		}
	}
}
