package policy

import (
	"context"
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/tetherproject/tether/policy/ireval"
)

// The engine's stages as OPA plans them: the bundle's modules compiled for the IR,
// planned by OPA's planner (the one `opa build -t plan` and the Wasm target use) and
// evaluated in Go by ireval. What is planned is the bundle's own Rego, so the rules keep
// one source; the public query (DecidePlain, `opa eval -b`) stays on topdown and the
// differential tests hold the two equal.
//
// A stage is planned when the planner accepts the modules and ireval implements every
// statement and built-in its functions reach, and when none of them reads a document
// named "stage" (the engine answers data.tether.stage.* only on topdown, through its
// resolvers). Otherwise that stage stays on topdown, and Engine.Evaluators says why.

// Evaluator names, for Options.Evaluator and Engine.Evaluators.
const (
	EvaluatorPlanned = "planned" // OPA's plan (IR), evaluated by ireval
	EvaluatorTopdown = "topdown" // OPA's topdown evaluator
)

// The functions the planned stages call, as the planner names them.
const (
	plannedIdentity = "g0.data.tether.identity.of"
	plannedFast     = "g0.data.tether.access.session_fast"
	plannedAccess   = "g0.data.tether.access.request_decision"
	plannedNodes    = "g0.data.tether.access.node_logins"
)

// planQuery names every function the engine calls, so that the planner plans each.
const planQuery = "data.tether.identity.of(input); " +
	"data.tether.access.session_fast(input.identity, input.now_ns); " +
	"data.tether.access.request_decision(input.identity); " +
	"data.tether.access.node_logins(input.identity, input.nodes, input.now_ns, input.name_free)"

// The stages the engine can plan.
type plannedStage int

const (
	stageIdentity plannedStage = iota // identity.of(input): once per certificate
	stageFast                         // access.session_fast(identity, now): an ssh.session
	stageAccess                       // access.request_decision(identity): any other request
	stageNodes                        // access.node_logins(identity, nodes, now, name_free): a node list
	nStages
)

var stageNames = [nStages]string{"identity", "fast", "access", "nodes"}

// plannedStages holds one bundle revision's program and the function of each stage it
// serves; a stage's function is the zero Func (and why says why) when it stays on topdown.
type plannedStages struct {
	prog  *ireval.Program
	data  *ast.Term
	funcs [nStages]ireval.Func
	why   [nStages]string
}

// plannedFunc is the stage's planned function, or the zero Func when it has none.
func (p *prepared) plannedFunc(s plannedStage) ireval.Func {
	if p.planned == nil {
		return ireval.Func{}
	}
	return p.planned.funcs[s]
}

// planStages plans the modules c compiled for the engine's stages. An error means
// nothing is planned (every stage stays on topdown), never that the bundle is refused.
//
// The planner plans from the bundle's own compiler: compiling for the IR differs from
// compiling for topdown only in two stages that build topdown's rule and comprehension
// indices beside the modules, which the planner does not read. Planning sets the
// compiler's evaluation mode to the IR's (the rego package does, for a target plugin);
// it is set back, so that queries compiled later get topdown's comprehension indices.
func planStages(ctx context.Context, c *ast.Compiler, store storage.Store) (*plannedStages, error) {
	// A rule whose head is a reference below its package's rule (p.a := ..., p[k] contains
	// ...) is planned into one function with its siblings, where a single-value rule can
	// insert a set another rule built and a multi-value one then add to it in place, and
	// where topdown's conflicts go unseen (an allow where topdown denies or errs). The
	// library has none; a bundle with one stays on topdown.
	for _, name := range util.KeysSorted(c.Modules) {
		for _, r := range c.Modules[name].Rules {
			if len(r.Head.Ref()) > 1 {
				return nil, fmt.Errorf("%s:%d: rule %v has a reference head, which ireval does not evaluate", name, r.Location.Row, r.Head.Ref())
			}
		}
	}
	defer c.WithEvalMode(ast.EvalModeTopdown)
	pol, err := ireval.Plan(ctx, c, store, planQuery)
	if err != nil {
		return nil, fmt.Errorf("planning: %w", err)
	}
	prog, err := ireval.Compile(pol)
	if err != nil {
		return nil, err
	}
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	data, err := store.Read(ctx, txn, storage.RootPath)
	store.Abort(ctx, txn)
	if err != nil {
		return nil, err
	}
	dv, ok := data.(ast.Value)
	if !ok {
		return nil, fmt.Errorf("the store read %T, want an ast.Value", data)
	}
	ps := &plannedStages{prog: prog, data: ast.NewTerm(dv)}
	for s, want := range [nStages]struct {
		name  string
		arity int
	}{{plannedIdentity, 1}, {plannedFast, 2}, {plannedAccess, 1}, {plannedNodes, 4}} {
		f, ok := prog.Func(want.name)
		switch {
		case !ok:
			ps.why[s] = want.name + " is not in the plan"
		case f.Arity() != want.arity:
			ps.why[s] = fmt.Sprintf("%s takes %d arguments, want %d", want.name, f.Arity(), want.arity)
		case prog.Reads(f, "stage"):
			ps.why[s] = want.name + " reads a document named stage, which the engine answers only on topdown"
		default:
			ps.funcs[s] = f
		}
	}
	return ps, nil
}

// evalStage evaluates a stage: f on its plan when the revision has one for it, and
// otherwise q on topdown, with the same input, stage values and instant. When the plan
// errs, topdown decides: the plan does not stop at the first failing element of an every
// or at a complete rule's first solution, so it can meet a built-in error (in an
// operator's rule) that topdown, and `opa eval -b`, never reach. Only topdown's own error
// becomes a policy-error denial.
func (e *Engine) evalStage(ctx context.Context, p *prepared, f ireval.Func, q *query, st *stage, input ast.Value, now time.Time, args ...*ast.Term) (ast.Value, error) {
	if p.planned != nil && f.Valid() {
		v, err := p.planned.prog.Call(ctx, f, now, ast.NewTerm(input), p.planned.data, args...)
		switch {
		case err == nil && v != nil:
			return v.Value, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		}
		e.stats.retried.Add(1)
	}
	return q.eval(ctx, st, input, now)
}
