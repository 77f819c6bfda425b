package policy

import (
	"context"
	"fmt"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
)

// Residuals: per certificate, the engine partially evaluates data.tether.fastpath.result
// with the identity known and the request unknown. OPA turns the library's allow rules into
// a few rules specialised to that identity (indexed by login, with the identity's regexes
// inlined), which answer an allowed session in a fraction of the generic access stage's
// time. A residual is built in the background the first time a certificate is seen; until
// then, and whenever the residual is undefined (anything but a plain allow), the generic
// stage decides. The differential tests hold both answers equal.

const (
	residualQuery   = "data.tether.fastpath.result = x"
	residualPackage = "tether.residual"
)

var stagePath = storage.MustParsePath("/tether/stage")

type residuals struct {
	cache   *lru.Cache[key, *residual]
	queue   chan residualJob
	sync    bool
	pending sync.Map // key -> struct{}: queued or building
	stop    context.CancelFunc
	done    chan struct{}
}

type residual struct {
	query rego.PreparedEvalQuery
	ok    bool // false: the identity can never take the fast path
}

type residualJob struct {
	p  *prepared
	k  key
	id *identity
}

func newResiduals(size int, sync bool) (*residuals, error) {
	c, err := lru.New[key, *residual](size)
	if err != nil {
		return nil, fmt.Errorf("creating residual cache: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &residuals{cache: c, queue: make(chan residualJob, 256), sync: sync, stop: cancel, done: make(chan struct{})}
	go r.run(ctx)
	return r, nil
}

// run builds queued residuals one at a time until the engine is closed.
func (r *residuals) run(ctx context.Context) {
	defer close(r.done)
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-r.queue:
			r.build(ctx, j)
			r.pending.Delete(j.k)
		}
	}
}

func (r *residuals) close() {
	r.stop()
	<-r.done
}

// get returns the identity's residual, or nil while there is none; it queues a build the
// first time it is asked for an identity.
func (r *residuals) get(ctx context.Context, p *prepared, k key, id *identity) *residual {
	if res, ok := r.cache.Get(k); ok {
		return res
	}
	if r.sync {
		r.build(ctx, residualJob{p, k, id})
		res, _ := r.cache.Get(k)
		return res
	}
	if _, busy := r.pending.LoadOrStore(k, struct{}{}); !busy {
		select {
		case r.queue <- residualJob{p, k, id}:
		default:
			r.pending.Delete(k) // the builder is behind; a later request queues it again
		}
	}
	return nil
}

func (r *residuals) build(ctx context.Context, j residualJob) {
	res, err := buildResidual(ctx, j.p, j.id)
	if err != nil {
		// A residual is an optimisation: without one the generic stage decides.
		res = &residual{ok: false}
	}
	r.cache.Add(j.k, res)
}

// plainIdentity reports the identity's "plain" flag: only such identities can be allowed on
// the fast path.
func plainIdentity(v ast.Value) bool {
	obj, ok := v.(ast.Object)
	if !ok {
		return false
	}
	t := obj.Get(ast.InternedTerm("plain"))
	return t != nil && t.Value.Compare(ast.Boolean(true)) == 0
}

func buildResidual(ctx context.Context, p *prepared, id *identity) (*residual, error) {
	if !plainIdentity(id.value) {
		return &residual{ok: false}, nil
	}
	idJSON, err := ast.JSON(id.value)
	if err != nil {
		return nil, err
	}
	// The identity is written into a write transaction that is never committed: partial
	// evaluation sees it as data.tether.stage.identity, decisions never do.
	txn, err := p.store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return nil, err
	}
	defer p.store.Abort(ctx, txn)
	if err := p.store.Write(ctx, txn, storage.AddOp, stagePath, map[string]any{"identity": idJSON}); err != nil {
		return nil, err
	}
	pq, err := rego.New(
		rego.Query(residualQuery),
		rego.Compiler(p.compiler),
		rego.Store(p.store),
		rego.Transaction(txn),
		rego.Unknowns([]string{"input"}),
		rego.StrictBuiltinErrors(true),
		rego.DisableInlining([]string{"data.tether.custom.deny"}),
	).Partial(ctx)
	if err != nil {
		return nil, fmt.Errorf("partial evaluation: %w", err)
	}
	if len(pq.Queries) == 0 {
		return &residual{ok: false}, nil
	}
	modules := map[string]*ast.Module{}
	for i, m := range pq.Support {
		modules[fmt.Sprintf("support-%d.rego", i)] = m
	}
	main := &ast.Module{Package: ast.MustParsePackage("package " + residualPackage)}
	for _, body := range pq.Queries {
		rule := &ast.Rule{
			Head:   ast.NewHead(ast.Var("result"), nil, ast.VarTerm("x")),
			Body:   body,
			Module: main,
		}
		main.Rules = append(main.Rules, rule)
	}
	modules["residual.rego"] = main
	c := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
	if c.Compile(modules); c.Failed() {
		return nil, fmt.Errorf("compiling residual: %w", c.Errors)
	}
	prepared, err := rego.New(
		rego.Query("data."+residualPackage+".result"),
		rego.Compiler(c),
		rego.Store(p.store),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("preparing residual: %w", err)
	}
	return &residual{query: prepared, ok: true}, nil
}

// eval answers a request from the residual; ok is false when the residual is undefined
// for it and the generic stage must decide.
func (res *residual) eval(ctx context.Context, input ast.Value) (ast.Value, bool, error) {
	rs, err := res.query.Eval(ctx, rego.EvalParsedInput(input), rego.EvalGenerateJSON(asTerm))
	if err != nil {
		return nil, false, err
	}
	if len(rs) == 0 {
		return nil, false, nil
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return nil, false, fmt.Errorf("residual returned %T", rs[0].Expressions[0].Value)
	}
	return t.Value, true, nil
}

// idle reports whether no residual is queued or being built.
func (r *residuals) idle() bool {
	busy := false
	r.pending.Range(func(any, any) bool { busy = true; return false })
	return !busy
}
