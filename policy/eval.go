package policy

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/resolver"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// query is one of the engine's queries, compiled once per bundle by the bundle's compiler
// and evaluated by OPA's evaluator (topdown) directly, without the rego package's
// per-evaluation set-up: that builds metrics maps, a resolver trie per resolver, a result
// set and a goroutine that watches the context (an in-process A/B
// measured 1.5–2× the CPU per decision through rego; docs/ARCHITECTURE.md). Here an
// evaluation takes a topdown.Query from a pool (each one configured once: compiler, store,
// resolvers, strict builtin errors, no metrics), sets the input, the time and a read
// transaction, and reads one binding. What is evaluated is exactly what rego evaluates.
type query struct {
	text     string
	compiler *ast.Compiler
	store    storage.Store
	qc       ast.QueryCompiler
	body     ast.Body
	res      []stageRef
	tether   ast.Value // data.tether as the store holds it (dataCache); nil: read the store
	pool     sync.Pool // *pooledQuery
}

// pooledQuery is a topdown.Query configured once, with the base-document cache it
// evaluates with.
type pooledQuery struct {
	tq *topdown.Query
	dc *dataCache
}

// stageRef is a value the query reads beside its input (see stage).
type stageRef struct {
	ref ast.Ref
	r   resolver.Resolver
}

// outVar is the query's result variable: each query is `outVar = <text>`.
const outVar = ast.Var("__tether_out__")

func newQuery(compiler *ast.Compiler, store storage.Store, text string, res ...stageRef) (*query, error) {
	parsed, err := ast.ParseBodyWithOpts(fmt.Sprintf("%s = %s", outVar, text), ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return nil, err
	}
	qc := compiler.QueryCompiler().WithStrict(false)
	body, err := qc.Compile(parsed)
	if err != nil {
		return nil, err
	}
	tether, err := readTether(store)
	if err != nil {
		return nil, err
	}
	return &query{text: text, compiler: compiler, store: store, qc: qc, body: body, res: res, tether: tether}, nil
}

// readTether reads data.tether from the bundle's store: the engine's store returns AST
// values on read (the value itself, not a copy) and nothing writes to it after Load. nil
// when there is none, or when the store holds something else (then OPA reads the store).
func readTether(store storage.Store) (ast.Value, error) {
	ctx := context.Background()
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	defer store.Abort(ctx, txn)
	v, err := store.Read(ctx, txn, storage.Path{"tether"})
	if storage.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	av, _ := v.(ast.Value)
	return av, nil
}

// never is the cancellation of an evaluation whose context cannot be cancelled.
var never = topdown.NewCancel()

// eval evaluates the query on input at the instant now (what time.now_ns would read) and
// returns its single value. A builtin error ends the evaluation with that error
// (strict builtin errors), so a deny is never silently undefined.
func (q *query) eval(ctx context.Context, input ast.Value, now time.Time) (ast.Value, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pq, _ := q.pool.Get().(*pooledQuery)
	if pq == nil {
		pq = &pooledQuery{dc: &dataCache{tether: q.tether}}
		pq.tq = topdown.NewQuery(q.body).WithQueryCompiler(q.qc).WithCompiler(q.compiler).WithStore(q.store).
			WithStrictBuiltinErrors(true).WithMetrics(metrics.NoOp())
		for _, r := range q.res {
			pq.tq = pq.tq.WithResolver(r.ref, r.r)
		}
	}
	tq := pq.tq
	tq.WithBaseCache(pq.dc)
	txn, err := q.store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	cancel, stop := cancelFor(ctx)
	tq.WithInput(ast.NewTerm(input)).WithTime(now).WithTransaction(txn).WithCancel(cancel)
	var out *ast.Term
	n := 0
	err = tq.Iter(ctx, func(qr topdown.QueryResult) error {
		n++
		out = qr[outVar]
		return nil
	})
	stop()
	q.store.Abort(ctx, txn)
	// The pooled query keeps no reference to this evaluation's input or transaction.
	tq.WithInput(nil).WithTransaction(nil).WithCancel(nil)
	pq.dc.reset()
	q.pool.Put(pq)
	if err != nil {
		return nil, err
	}
	if n != 1 || out == nil {
		return nil, fmt.Errorf("policy returned no decision for %s (is the Tether library in the bundle?)", q.text)
	}
	return out.Value, nil
}

// cancelFor returns the cancellation an evaluation under ctx watches: a context that can
// be cancelled cancels the evaluation (context.AfterFunc, no goroutine until it fires).
func cancelFor(ctx context.Context) (topdown.Cancel, func() bool) {
	if ctx.Done() == nil {
		return never, func() bool { return true }
	}
	c := topdown.NewCancel()
	return c, context.AfterFunc(ctx, c.Cancel)
}

// dataCache is the base-document cache (topdown.BaseCache) of one evaluation. OPA's own
// starts empty on every evaluation: each data.tether.* reference the evaluation reads goes
// to the store (a transaction read, a storage path) and is put into a tree of maps made
// for that evaluation. Here data.tether.* is answered from data.tether as the store holds
// it (read once per bundle; nothing writes to the store after Load), which is the value
// the store read returns. Everything else is OPA's to read as before and is kept here for
// the rest of the evaluation, as OPA's cache keeps it: references above data.tether.*,
// other roots, and data.tether.stage.*, which only the resolvers answer (they refuse a
// value the stage does not set, and a read inside a `with data...` scope).
type dataCache struct {
	tether ast.Value // data.tether; shared by every evaluation of the bundle, read-only
	other  []cached  // what OPA read itself in this evaluation
}

type cached struct {
	ref ast.Ref
	v   ast.Value
}

var (
	tetherKey    = ast.String("tether")
	stageSegment = ast.String("stage")
)

// reset empties the cache for the next evaluation.
func (c *dataCache) reset() {
	clear(c.other)
	c.other = c.other[:0]
}

// Get returns the value of a data reference, or nil for OPA to read it.
func (c *dataCache) Get(ref ast.Ref) ast.Value {
	if len(ref) >= 3 && c.tether != nil && ref[1].Value.Compare(tetherKey) == 0 && ref[2].Value.Compare(stageSegment) != 0 {
		v, err := c.tether.Find(ref[2:])
		if err != nil {
			return nil
		}
		return v
	}
	for _, e := range c.other {
		if ref.HasPrefix(e.ref) {
			v, err := e.v.Find(ref[len(e.ref):])
			if err != nil {
				return nil
			}
			return v
		}
	}
	return nil
}

// Put keeps what OPA read itself for the rest of the evaluation.
func (c *dataCache) Put(ref ast.Ref, v ast.Value) {
	c.other = append(c.other, cached{ref: slices.Clone(ref), v: v})
}
