package ireval

import (
	"context"
	"errors"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
)

// Plan returns OPA's plan of query over the modules c compiled. c must be compiled in
// ast.EvalModeIR (the mode OPA's Wasm target compiles in). The plan holds a function for
// every rule and function the query reaches; the query's own plan is not evaluated here
// (Program.Call calls functions), so the query only has to name what the caller will call.
//
// OPA's planner is reachable only through the rego package's target plugins: a query
// prepared for the plugin's target hands it the plan. Plans are made one at a time.
func Plan(ctx context.Context, c *ast.Compiler, store storage.Store, query string) (*ir.Policy, error) {
	registerOnce.Do(func() { rego.RegisterPlugin(targetName, target{}) })
	planMu.Lock()
	defer planMu.Unlock()
	planOut = nil
	r := rego.New(rego.Query(query), rego.Compiler(c), rego.Store(store), rego.Target(targetName))
	if _, err := r.PrepareForEval(ctx); err != nil {
		return nil, err
	}
	pol := planOut
	planOut = nil
	if pol == nil {
		return nil, errors.New("the planner gave no plan")
	}
	return pol, nil
}

const targetName = "tether-ireval-plan"

var (
	planMu       sync.Mutex
	planOut      *ir.Policy // the plan the target was last handed, under planMu
	registerOnce sync.Once
)

// target is the rego target plugin that receives plans.
type target struct{}

func (target) IsTarget(t string) bool { return t == targetName }

func (target) PrepareForEval(_ context.Context, pol *ir.Policy, _ ...rego.PrepareOption) (rego.TargetPluginEval, error) {
	planOut = pol
	return target{}, nil
}

func (target) Eval(context.Context, *rego.EvalContext, ast.Value) (ast.Value, error) {
	return nil, errors.New("ireval's plan target only plans; call the program")
}
