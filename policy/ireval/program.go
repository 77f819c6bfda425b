// Package ireval evaluates OPA's planned intermediate representation (the IR that
// `opa build -t plan` writes and OPA's Wasm compiler starts from) of a bundle's own Rego,
// in Go. It owns nothing of the rules: the plan is what OPA's planner makes of the
// bundle's modules, and every built-in function is OPA's own implementation (topdown's
// registry), so what it evaluates is what `opa eval -b` evaluates. It exists for speed:
// a step of the plan is a Go switch over a slice of locals, where topdown pays for
// unification, bindings and a virtual-document cache on every step.
//
// Semantics follow OPA's Wasm compiler, the IR's reference interpreter: blocks, breaks
// and scans nest exactly as that compiler nests Wasm blocks, loops and branches, and a
// function that takes only input and data is memoized for one evaluation. Where the
// Wasm runtime would make a built-in's error undefined, this one ends the evaluation
// with the error (as topdown's strict built-in errors do), so a deny rule never fails
// open. A plan using anything this evaluator does not implement (a dynamic call, a
// built-in topdown does not register) is refused when it is compiled, never at
// evaluation.
package ireval

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Program is a compiled plan: its functions, resolved to one another and to OPA's
// built-ins, ready to be called by name. It is immutable and safe for concurrent use.
type Program struct {
	pool    sync.Pool // *eval, the evaluations' state
	funcs   []*function
	byName  map[string]*function
	strings []*ast.Term // the plan's string constants
	numbers []*ast.Term // the same constants read as numbers (MakeNumberRefStmt), nil when not one
	files   []string    // the plan's file names, for locations
	nmemo   int         // how many functions are memoized
}

type function struct {
	name   string
	params []ir.Local
	ret    ir.Local
	blocks []*block
	size   int // locals in a frame: the largest local used, plus one
	memo   int // index among the memoized functions (those of input and data alone), or -1
	// What Reads needs: the functions this one calls, the constant keys it looks up.
	callees []*function
	keys    map[string]bool
}

type block struct {
	stmts []any // ir statements; calls, scans, nots, withs and nested blocks compiled
}

// call is a resolved CallStmt: a planned function or a built-in.
type call struct {
	args    []ir.Operand
	result  ir.Local
	fn      *function
	builtin topdown.BuiltinFunc
	decl    *ast.Builtin
	loc     *ast.Location // where the call is, for a built-in's error (policy error at file:row)
	// relation: the built-in gives many outputs (walk); the planner scans the array of
	// all of them.
	relation bool
}

// scan is a ScanStmt with its compiled body.
type scan struct {
	source, key, value ir.Local
	body               *block
}

// not is a NotStmt. reset is the condition local of a `not { ... }` body (the planner
// sets it true at each success and ends the block with is_defined on it, but never clears
// it): cleared on entry, so a success of an earlier iteration or rule body is not taken
// for one of this body. -1 when there is none.
type not struct {
	body  *block
	reset ir.Local
}

type blockStmt struct{ blocks []*block }

type with struct {
	local ir.Local
	path  []*ast.Term
	value ir.Operand
	body  *block
}

// Compile resolves pol's functions and built-ins. It fails for a plan that uses a
// statement or a built-in this evaluator does not implement.
func Compile(pol *ir.Policy) (*Program, error) {
	if pol == nil || pol.Funcs == nil {
		return nil, errors.New("the plan has no functions")
	}
	p := &Program{byName: make(map[string]*function, len(pol.Funcs.Funcs))}
	if pol.Static != nil {
		for _, s := range pol.Static.Strings {
			p.strings = append(p.strings, ast.StringTerm(s.Value))
			var num *ast.Term
			if _, ok := ast.Number(s.Value).Float64(); ok {
				num = ast.NumberTerm(json.Number(s.Value))
			}
			p.numbers = append(p.numbers, num)
		}
		for _, f := range pol.Static.Files {
			p.files = append(p.files, f.Value)
		}
	}
	for _, f := range pol.Funcs.Funcs {
		if len(f.Params) < 2 {
			return nil, fmt.Errorf("function %s takes %d parameters, want input and data first", f.Name, len(f.Params))
		}
		fn := &function{name: f.Name, params: f.Params, ret: f.Return, memo: -1}
		if len(f.Params) == 2 {
			fn.memo = p.nmemo
			p.nmemo++
		}
		p.funcs = append(p.funcs, fn)
		p.byName[f.Name] = fn
	}
	for i, f := range pol.Funcs.Funcs {
		fn := p.funcs[i]
		c := compiler{p: p, fn: fn, max: int(f.Return)}
		for _, l := range f.Params {
			c.local(l)
		}
		for _, b := range f.Blocks {
			cb, err := c.block(b)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.Name, err)
			}
			fn.blocks = append(fn.blocks, cb)
		}
		fn.size = c.max + 1
	}
	return p, nil
}

// location is an ir location as an ast one (topdown's errors carry those).
func (p *Program) location(l *ir.Location) *ast.Location {
	if l == nil || l.Row == 0 {
		return nil
	}
	loc := &ast.Location{Row: l.Row, Col: l.Col, Text: []byte(l.Text)}
	if l.File >= 0 && l.File < len(p.files) {
		loc.File = p.files[l.File]
	}
	return loc
}

// Reads reports whether f, or a function it calls, looks up the constant key in any
// document: what a caller checks before it leaves out a document the plan could read.
func (p *Program) Reads(f Func, key string) bool {
	seen := map[*function]bool{}
	var walk func(*function) bool
	walk = func(fn *function) bool {
		if seen[fn] {
			return false
		}
		seen[fn] = true
		if fn.keys[key] {
			return true
		}
		return slices.ContainsFunc(fn.callees, walk)
	}
	return f.fn != nil && walk(f.fn)
}

type compiler struct {
	p   *Program
	fn  *function
	max int
}

func (c *compiler) local(l ir.Local) {
	if int(l) > c.max {
		c.max = int(l)
	}
}

func (c *compiler) operand(o ir.Operand) error {
	switch v := o.Value.(type) {
	case ir.Local:
		c.local(v)
	case ir.Bool:
	case ir.StringIndex:
		if int(v) < 0 || int(v) >= len(c.p.strings) {
			return fmt.Errorf("string constant %d out of range", v)
		}
	default:
		return fmt.Errorf("operand %T is not implemented", o.Value)
	}
	return nil
}

func (c *compiler) block(b *ir.Block) (*block, error) {
	out := &block{stmts: make([]any, 0, len(b.Stmts))}
	for _, s := range b.Stmts {
		cs, err := c.stmt(s)
		if err != nil {
			if loc := s.GetLocation(); loc != nil && loc.Row > 0 {
				return nil, fmt.Errorf("row %d (%s): %w", loc.Row, loc.Text, err)
			}
			return nil, err
		}
		out.stmts = append(out.stmts, cs)
	}
	return out, nil
}

func (c *compiler) operands(os ...ir.Operand) error {
	for _, o := range os {
		if err := c.operand(o); err != nil {
			return err
		}
	}
	return nil
}

func (c *compiler) stmt(s ir.Stmt) (any, error) {
	switch s := s.(type) {
	case *ir.CallStmt:
		if err := c.operands(s.Args...); err != nil {
			return nil, err
		}
		c.local(s.Result)
		k := &call{args: s.Args, result: s.Result}
		if fn := c.p.byName[s.Func]; fn != nil {
			if len(s.Args) != len(fn.params) {
				return nil, fmt.Errorf("%s called with %d arguments, takes %d", s.Func, len(s.Args), len(fn.params))
			}
			k.fn = fn
			c.fn.callees = append(c.fn.callees, fn)
			return k, nil
		}
		decl := ast.BuiltinMap[s.Func]
		bi := topdown.GetBuiltin(s.Func)
		if decl == nil || bi == nil {
			return nil, fmt.Errorf("built-in %s is not implemented here", s.Func)
		}
		if decl.Decl.Result() == nil {
			// A built-in without a result (print, trace) is evaluated by topdown
			// itself, not through its registry.
			return nil, fmt.Errorf("built-in %s has no result and is not implemented here", s.Func)
		}
		if len(s.Args) != decl.Decl.Arity() {
			return nil, fmt.Errorf("%s called with %d arguments, takes %d", s.Func, len(s.Args), decl.Decl.Arity())
		}
		k.builtin, k.decl, k.loc, k.relation = bi, decl, c.p.location(&s.Location), decl.Relation
		return k, nil
	case *ir.BlockStmt:
		out := &blockStmt{}
		for _, b := range s.Blocks {
			cb, err := c.block(b)
			if err != nil {
				return nil, err
			}
			out.blocks = append(out.blocks, cb)
		}
		return out, nil
	case *ir.ScanStmt:
		c.local(s.Source)
		c.local(s.Key)
		c.local(s.Value)
		body, err := c.block(s.Block)
		if err != nil {
			return nil, err
		}
		return &scan{source: s.Source, key: s.Key, value: s.Value, body: body}, nil
	case *ir.NotStmt:
		body, err := c.block(s.Block)
		if err != nil {
			return nil, err
		}
		n := &not{body: body, reset: -1}
		if k := len(s.Block.Stmts); k > 0 {
			if d, ok := s.Block.Stmts[k-1].(*ir.IsDefinedStmt); ok && assignsTrue(s.Block, d.Source) {
				n.reset = d.Source
			}
		}
		return n, nil
	case *ir.WithStmt:
		c.local(s.Local)
		if err := c.operand(s.Value); err != nil {
			return nil, err
		}
		w := &with{local: s.Local, value: s.Value}
		for _, i := range s.Path {
			if i < 0 || i >= len(c.p.strings) {
				return nil, fmt.Errorf("with path string %d out of range", i)
			}
			w.path = append(w.path, c.p.strings[i])
		}
		body, err := c.block(s.Block)
		if err != nil {
			return nil, err
		}
		w.body = body
		return w, nil
	case *ir.MakeNumberRefStmt:
		c.local(s.Target)
		if s.Index < 0 || s.Index >= len(c.p.numbers) || c.p.numbers[s.Index] == nil {
			return nil, fmt.Errorf("number constant %d is not a number", s.Index)
		}
		return s, nil
	case *ir.ReturnLocalStmt:
		c.local(s.Source)
	case *ir.BreakStmt, *ir.NopStmt:
	case *ir.DotStmt:
		c.local(s.Target)
		if k, ok := s.Key.Value.(ir.StringIndex); ok && int(k) >= 0 && int(k) < len(c.p.strings) {
			if c.fn.keys == nil {
				c.fn.keys = map[string]bool{}
			}
			c.fn.keys[string(c.p.strings[k].Value.(ast.String))] = true
		}
		return s, c.operands(s.Source, s.Key)
	case *ir.LenStmt:
		c.local(s.Target)
		return s, c.operand(s.Source)
	case *ir.AssignIntStmt:
		c.local(s.Target)
	case *ir.AssignVarStmt:
		c.local(s.Target)
		return s, c.operand(s.Source)
	case *ir.AssignVarOnceStmt:
		c.local(s.Target)
		return s, c.operand(s.Source)
	case *ir.ResetLocalStmt:
		c.local(s.Target)
	case *ir.MakeNullStmt:
		c.local(s.Target)
	case *ir.MakeNumberIntStmt:
		c.local(s.Target)
	case *ir.MakeArrayStmt:
		c.local(s.Target)
	case *ir.MakeObjectStmt:
		c.local(s.Target)
	case *ir.MakeSetStmt:
		c.local(s.Target)
	case *ir.EqualStmt:
		return s, c.operands(s.A, s.B)
	case *ir.NotEqualStmt:
		return s, c.operands(s.A, s.B)
	case *ir.IsArrayStmt:
		return s, c.operand(s.Source)
	case *ir.IsObjectStmt:
		return s, c.operand(s.Source)
	case *ir.IsSetStmt:
		return s, c.operand(s.Source)
	case *ir.IsDefinedStmt:
		c.local(s.Source)
	case *ir.IsUndefinedStmt:
		c.local(s.Source)
	case *ir.ArrayAppendStmt:
		c.local(s.Array)
		return s, c.operand(s.Value)
	case *ir.ObjectInsertStmt:
		c.local(s.Object)
		return s, c.operands(s.Key, s.Value)
	case *ir.ObjectInsertOnceStmt:
		c.local(s.Object)
		return s, c.operands(s.Key, s.Value)
	case *ir.ObjectMergeStmt:
		c.local(s.A)
		c.local(s.B)
		c.local(s.Target)
	case *ir.SetAddStmt:
		c.local(s.Set)
		return s, c.operand(s.Value)
	default:
		// CallDynamicStmt (a call through a computed data path) and ResultSetAddStmt
		// (plans are not run, functions are called) are among these.
		return nil, fmt.Errorf("statement %T is not implemented here", s)
	}
	return s, nil
}

// assignsTrue reports whether b, or a block inside it, assigns true to l: the success
// marker of a body the planner plans as a scope (planBodyAsScope).
func assignsTrue(b *ir.Block, l ir.Local) bool {
	found := false
	_ = ir.Walk(visitor(func(x any) {
		if a, ok := x.(*ir.AssignVarStmt); ok && a.Target == l {
			if v, ok := a.Source.Value.(ir.Bool); ok && bool(v) {
				found = true
			}
		}
	}), b)
	return found
}

type visitor func(any)

func (v visitor) Before(x any)                    { v(x) }
func (v visitor) Visit(x any) (ir.Visitor, error) { return v, nil }
func (v visitor) After(any)                       {}
