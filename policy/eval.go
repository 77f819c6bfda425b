package policy

import (
	"context"
	"fmt"
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
	pool     sync.Pool // *pooledQuery
}

// pooledQuery is a topdown.Query configured once, with the virtual-document cache it
// reuses (emptied before and after each evaluation).
type pooledQuery struct {
	tq *topdown.Query
	vc *flatCache
	bc flatBaseCache
	st *stage // what the evaluation under way reads beside its input
	// The evaluation's results, gathered by collect (made once: a closure per evaluation
	// would cost three allocations).
	out     *ast.Term
	n       int
	collect func(topdown.QueryResult) error
}

// stageRef is a value the query reads beside its input (see stage).
type stageRef struct {
	ref ast.Ref
	get stageResolver
}

// pooledStage answers a stage reference from the stage of the pooled query's evaluation
// under way (set by eval, cleared after it), with no per-evaluation set-up.
type pooledStage struct {
	pq  *pooledQuery
	get stageResolver
}

func (r pooledStage) Eval(_ context.Context, in resolver.Input) (resolver.Result, error) {
	var v ast.Value
	if r.pq.st != nil {
		v = r.get(r.pq.st)
	}
	if v == nil {
		return resolver.Result{}, fmt.Errorf("%v is not set in this evaluation", in.Ref)
	}
	return resolver.Result{Value: v}, nil
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
	return &query{text: text, compiler: compiler, store: store, qc: qc, body: body, res: res}, nil
}

// never is the cancellation of an evaluation whose context cannot be cancelled.
var never = topdown.NewCancel()

// eval evaluates the query on input at the instant now (what time.now_ns would read), with
// st as the stage values it reads (nil for a query that reads none), and returns its single
// value. A builtin error ends the evaluation with that error
// (strict builtin errors), so a deny is never silently undefined.
func (q *query) eval(ctx context.Context, st *stage, input ast.Value, now time.Time) (ast.Value, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pq, _ := q.pool.Get().(*pooledQuery)
	if pq == nil {
		pq = &pooledQuery{vc: newFlatCache()}
		pq.collect = func(qr topdown.QueryResult) error {
			pq.n++
			pq.out = qr[outVar]
			return nil
		}
		pq.tq = topdown.NewQuery(q.body).WithQueryCompiler(q.qc).WithCompiler(q.compiler).WithStore(q.store).
			WithStrictBuiltinErrors(true).WithMetrics(metrics.NoOp()).WithVirtualCache(pq.vc).WithBaseCache(&pq.bc)
		for _, r := range q.res {
			pq.tq = pq.tq.WithResolver(r.ref, pooledStage{pq: pq, get: r.get})
		}
	}
	tq := pq.tq
	pq.vc.reset()
	pq.bc.reset()
	txn, err := q.store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	cancel, stop := cancelFor(ctx)
	pq.st = st
	tq.WithInput(ast.NewTerm(input)).WithTime(now).WithTransaction(txn).WithCancel(cancel)
	pq.out, pq.n = nil, 0
	err = tq.Iter(ctx, pq.collect)
	out, n := pq.out, pq.n
	pq.out = nil
	stop()
	q.store.Abort(ctx, txn)
	// The pooled query keeps no reference to this evaluation's input or transaction.
	tq.WithInput(nil).WithTransaction(nil).WithCancel(nil)
	pq.st = nil
	pq.vc.reset()
	pq.bc.reset()
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
