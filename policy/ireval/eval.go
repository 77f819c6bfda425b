package ireval

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
)

// Func is a function of a program, to call with Program.Call.
type Func struct{ fn *function }

// Func returns the function of that name (as the planner names it: g0.data.<package>.<rule>).
func (p *Program) Func(name string) (Func, bool) {
	fn := p.byName[name]
	return Func{fn}, fn != nil
}

// Arity is how many arguments the function takes after input and data.
func (f Func) Arity() int { return len(f.fn.params) - 2 }

// Statement results: cont goes on with the next statement (for a block: it ran to its
// end), ret ends the function, and n ≥ 0 leaves the current block and n more around it.
const (
	cont = -1
	ret  = -2
)

// checkEvery is how many loop iterations pass between two looks at the context.
const checkEvery = 1024

// Call evaluates f with input, data and args at the instant now (what time.now_ns reads),
// and returns its value, or nil when it is undefined. An error of a built-in, a conflict
// (a complete rule or function with two values) or the context's end ends the evaluation
// with an error; nothing is ever made undefined by an error.
func (p *Program) Call(ctx context.Context, f Func, now time.Time, input, data *ast.Term, args ...*ast.Term) (*ast.Term, error) {
	if f.fn == nil {
		return nil, errors.New("ireval: call of a missing function")
	}
	if len(args) != f.Arity() {
		return nil, fmt.Errorf("ireval: %s takes %d arguments, got %d", f.fn.name, f.Arity(), len(args))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e := p.get()
	e.ctx = ctx
	e.bctx.Context = ctx
	e.bctx.Time = ast.NewTerm(ast.Number(strconv.FormatInt(now.UnixNano(), 10)))
	e.argv = append(e.argv[:0], input, data)
	e.argv = append(e.argv, args...)
	v, err := e.call(f.fn, e.argv)
	p.put(e)
	return v, err
}

// eval is one evaluation's state, pooled per program.
type eval struct {
	p      *Program
	ctx    context.Context
	bctx   topdown.BuiltinContext
	stack  []*ast.Term // the frames' locals
	memo   []*ast.Term
	argv   []*ast.Term
	retval *ast.Term
	out    *ast.Term // a built-in's result
	onOut  func(*ast.Term) error
	steps  int
}

func (p *Program) get() *eval {
	if e, ok := p.pool.Get().(*eval); ok {
		return e
	}
	e := &eval{p: p, memo: make([]*ast.Term, p.nmemo), stack: make([]*ast.Term, 0, 256)}
	e.onOut = func(t *ast.Term) error {
		if e.out == nil {
			e.out = t
		}
		return nil
	}
	e.bctx = topdown.BuiltinContext{
		Metrics: metrics.NoOp(),
		Seed:    rand.Reader,
		Cache:   builtins.Cache{},
	}
	return e
}

func (p *Program) put(e *eval) {
	clear(e.stack[:cap(e.stack)])
	e.stack = e.stack[:0]
	clear(e.memo)
	clear(e.argv)
	clear(e.bctx.Cache)
	e.ctx, e.bctx.Context, e.bctx.Time, e.retval, e.out, e.steps = nil, nil, nil, nil, nil, 0
	p.pool.Put(e)
}

// call runs fn on args (input and data first) in a new frame.
func (e *eval) call(fn *function, args []*ast.Term) (*ast.Term, error) {
	if fn.memo >= 0 {
		if v := e.memo[fn.memo]; v != nil {
			return v, nil
		}
	}
	base := len(e.stack)
	need := base + fn.size
	if need > cap(e.stack) {
		// Frames below keep the array they were given; the stack moves on.
		grown := make([]*ast.Term, base, 2*need)
		copy(grown, e.stack)
		e.stack = grown
	}
	e.stack = e.stack[:need]
	l := e.stack[base:need:need]
	clear(l)
	for i, p := range fn.params {
		l[p] = args[i]
	}
	e.retval = nil
	var result *ast.Term
	for _, b := range fn.blocks {
		r, err := e.block(b, l)
		if err != nil {
			return nil, err
		}
		if r == ret {
			result = e.retval
			break
		}
		if r > 0 {
			return nil, fmt.Errorf("ireval: %s: a break leaves the function", fn.name)
		}
	}
	clear(l)
	e.stack = e.stack[:base]
	e.retval = nil
	if fn.memo >= 0 && result != nil {
		e.memo[fn.memo] = result
	}
	return result, nil
}

func (e *eval) block(b *block, l []*ast.Term) (int, error) {
	for _, s := range b.stmts {
		r, err := e.stmt(s, l)
		if err != nil {
			return 0, err
		}
		if r != cont {
			return r, nil
		}
	}
	return cont, nil
}

// nested turns what a nested block returned into the result of the statement that
// holds it, where the nested block is one level (a BlockStmt's blocks, a NotStmt's or
// a WithStmt's body).
func nested(r int) int {
	if r > 0 {
		return r - 1
	}
	return r
}

func (e *eval) operand(o ir.Operand, l []*ast.Term) *ast.Term {
	switch v := o.Value.(type) {
	case ir.Local:
		return l[v]
	case ir.StringIndex:
		return e.p.strings[v]
	case ir.Bool:
		return ast.InternedTerm(bool(v))
	}
	return nil
}

func (e *eval) stmt(s any, l []*ast.Term) (int, error) {
	switch s := s.(type) {
	case *call:
		args := e.argv[:0]
		for _, a := range s.args {
			t := e.operand(a, l)
			if t == nil {
				e.argv = args
				return 0, nil
			}
			args = append(args, t)
		}
		e.argv = args
		if s.fn != nil {
			v, err := e.call(s.fn, args)
			if err != nil {
				return 0, err
			}
			if v == nil {
				return 0, nil
			}
			l[s.result] = v
			return cont, nil
		}
		e.out = nil
		e.bctx.Location = s.loc
		if s.relation {
			var all []*ast.Term
			if err := s.builtin(e.bctx, args, func(t *ast.Term) error { all = append(all, t); return nil }); err != nil {
				return 0, builtinError(err)
			}
			l[s.result] = ast.ArrayTerm(all...)
			return cont, nil
		}
		if err := s.builtin(e.bctx, args, e.onOut); err != nil {
			return 0, builtinError(err)
		}
		v := e.out
		e.out = nil
		if v == nil {
			return 0, nil
		}
		l[s.result] = v
		return cont, nil
	case *ir.DotStmt:
		src, key := e.operand(s.Source, l), e.operand(s.Key, l)
		if src == nil || key == nil {
			return 0, nil
		}
		v := dot(src, key)
		if v == nil {
			return 0, nil
		}
		l[s.Target] = v
		return cont, nil
	case *ir.AssignVarStmt:
		v := e.operand(s.Source, l)
		if v == nil {
			return 0, nil
		}
		l[s.Target] = v
		return cont, nil
	case *ir.NotEqualStmt:
		a, b := e.operand(s.A, l), e.operand(s.B, l)
		if a == nil || b == nil {
			return 0, nil
		}
		if equal(a, b) {
			return 0, nil
		}
		return cont, nil
	case *ir.EqualStmt:
		a, b := e.operand(s.A, l), e.operand(s.B, l)
		if a == nil || b == nil || !equal(a, b) {
			return 0, nil
		}
		return cont, nil
	case *ir.ResetLocalStmt:
		l[s.Target] = nil
		return cont, nil
	case *ir.AssignVarOnceStmt:
		v := e.operand(s.Source, l)
		if v == nil {
			return 0, nil
		}
		if old := l[s.Target]; old != nil {
			if !equal(old, v) {
				return 0, e.conflict(s.GetLocation(), "complete rules and functions must not produce multiple outputs")
			}
			return cont, nil
		}
		l[s.Target] = v
		return cont, nil
	case *ir.IsDefinedStmt:
		if l[s.Source] == nil {
			return 0, nil
		}
		return cont, nil
	case *ir.IsUndefinedStmt:
		if l[s.Source] != nil {
			return 0, nil
		}
		return cont, nil
	case *blockStmt:
		for _, b := range s.blocks {
			r, err := e.block(b, l)
			if err != nil {
				return 0, err
			}
			if r == ret || r > 0 {
				return nested(r), nil
			}
		}
		return cont, nil
	case *ir.BreakStmt:
		return int(s.Index), nil
	case *ir.ReturnLocalStmt:
		e.retval = l[s.Source]
		return ret, nil
	case *scan:
		return e.scan(s, l)
	case *not:
		if s.reset >= 0 {
			l[s.reset] = nil
		}
		r, err := e.block(s.body, l)
		if err != nil {
			return 0, err
		}
		switch r {
		case cont:
			return 0, nil // the negated block held: not is undefined
		case 0:
			return cont, nil
		}
		return nested(r), nil
	case *ir.MakeArrayStmt:
		l[s.Target] = ast.NewTerm(ast.NewArrayWithCapacity(int(s.Capacity)))
		return cont, nil
	case *ir.ArrayAppendStmt:
		arr, v := l[s.Array], e.operand(s.Value, l)
		if v == nil {
			return 0, nil
		}
		a, ok := arrayOf(arr)
		if !ok {
			return 0, fmt.Errorf("ireval: append to a non-array")
		}
		arr.Value = a.Append(v)
		return cont, nil
	case *ir.MakeNumberRefStmt:
		l[s.Target] = e.p.numbers[s.Index]
		return cont, nil
	case *ir.MakeNumberIntStmt:
		l[s.Target] = ast.InternedTerm(s.Value)
		return cont, nil
	case *ir.AssignIntStmt:
		l[s.Target] = ast.InternedTerm(s.Value)
		return cont, nil
	case *ir.MakeNullStmt:
		l[s.Target] = ast.InternedNullTerm
		return cont, nil
	case *ir.MakeObjectStmt:
		l[s.Target] = ast.NewTerm(ast.NewObject())
		return cont, nil
	case *ir.MakeSetStmt:
		l[s.Target] = ast.NewTerm(ast.NewSet())
		return cont, nil
	case *ir.IsArrayStmt:
		if v := e.operand(s.Source, l); v != nil {
			if _, ok := v.Value.(*ast.Array); ok {
				return cont, nil
			}
		}
		return 0, nil
	case *ir.IsObjectStmt:
		if v := e.operand(s.Source, l); v != nil {
			if _, ok := v.Value.(ast.Object); ok {
				return cont, nil
			}
		}
		return 0, nil
	case *ir.IsSetStmt:
		if v := e.operand(s.Source, l); v != nil {
			if _, ok := v.Value.(ast.Set); ok {
				return cont, nil
			}
		}
		return 0, nil
	case *ir.LenStmt:
		v := e.operand(s.Source, l)
		if v == nil {
			return 0, nil
		}
		n, ok := length(v)
		if !ok {
			return 0, nil
		}
		l[s.Target] = ast.InternedTerm(n)
		return cont, nil
	case *ir.ObjectInsertStmt:
		k, v := e.operand(s.Key, l), e.operand(s.Value, l)
		obj, ok := l[s.Object].Value.(ast.Object)
		if k == nil || v == nil {
			return 0, nil
		}
		if !ok {
			return 0, fmt.Errorf("ireval: insert into a non-object")
		}
		obj.Insert(k, v)
		return cont, nil
	case *ir.ObjectInsertOnceStmt:
		k, v := e.operand(s.Key, l), e.operand(s.Value, l)
		obj, ok := l[s.Object].Value.(ast.Object)
		if k == nil || v == nil {
			return 0, nil
		}
		if !ok {
			return 0, fmt.Errorf("ireval: insert into a non-object")
		}
		if old := obj.Get(k); old != nil {
			if !equal(old, v) {
				return 0, e.conflict(s.GetLocation(), "object keys must be unique")
			}
			return cont, nil
		}
		obj.Insert(k, v)
		return cont, nil
	case *ir.SetAddStmt:
		v := e.operand(s.Value, l)
		set, ok := l[s.Set].Value.(ast.Set)
		if v == nil {
			return 0, nil
		}
		if !ok {
			return 0, fmt.Errorf("ireval: add to a non-set")
		}
		set.Add(v)
		return cont, nil
	case *ir.ObjectMergeStmt:
		a, aok := valueOf(l[s.A]).(ast.Object)
		b, bok := valueOf(l[s.B]).(ast.Object)
		if !aok || !bok {
			return 0, e.conflict(s.GetLocation(), "merge of a non-object")
		}
		m, ok := a.Merge(b)
		if !ok {
			return 0, e.conflict(s.GetLocation(), "merged documents conflict")
		}
		l[s.Target] = ast.NewTerm(m)
		return cont, nil
	case *with:
		return e.with(s, l)
	case *ir.NopStmt:
		return cont, nil
	}
	return 0, fmt.Errorf("ireval: statement %T is not implemented", s)
}

// scan runs the body once per element. The body sits in a loop inside a block (as the
// Wasm compiler nests it): leaving the body goes on with the next element, one level more
// ends the scan, and further levels leave blocks around the scan.
func (e *eval) scan(s *scan, l []*ast.Term) (int, error) {
	src := l[s.source]
	if src == nil {
		return cont, nil
	}
	res, done := cont, false
	var err error
	step := func(k, v *ast.Term) bool {
		if e.steps++; e.steps%checkEvery == 0 {
			if err = e.ctx.Err(); err != nil {
				return true
			}
		}
		l[s.key], l[s.value] = k, v
		var r int
		r, err = e.block(s.body, l)
		switch {
		case err != nil:
			return true
		case r == cont || r == 0:
			return false
		case r == ret:
			res, done = ret, true
		case r == 1:
			res, done = cont, true
		default:
			res, done = r-2, true
		}
		return done
	}
	switch v := src.Value.(type) {
	case *ast.Array:
		for i := 0; i < v.Len(); i++ {
			if step(ast.InternedTerm(i), v.Elem(i)) {
				break
			}
		}
	case ast.Object:
		v.Until(step)
	case ast.Set:
		v.Until(func(t *ast.Term) bool { return step(t, t) })
	}
	if err != nil {
		return 0, err
	}
	return res, nil
}

// with runs its body with a local (input or data) replaced, or with a value upserted at
// a path inside it, and with a memo of its own; the local and the memo are restored
// after.
func (e *eval) with(s *with, l []*ast.Term) (int, error) {
	v := e.operand(s.value, l)
	if v == nil {
		return 0, nil
	}
	saved := l[s.local]
	if len(s.path) == 0 {
		l[s.local] = v
	} else {
		l[s.local] = upsert(saved, s.path, v)
	}
	memo := e.memo
	e.memo = make([]*ast.Term, len(memo))
	r, err := e.block(s.body, l)
	e.memo = memo
	l[s.local] = saved
	if err != nil {
		return 0, err
	}
	switch r {
	case cont:
		return cont, nil
	case 0:
		return 0, nil
	}
	return nested(r), nil
}

// upsert returns a copy of doc with v at path, objects made where the path has none.
func upsert(doc *ast.Term, path []*ast.Term, v *ast.Term) *ast.Term {
	var obj ast.Object
	if o, ok := valueOf(doc).(ast.Object); ok {
		obj = o.Copy()
	} else {
		obj = ast.NewObject()
	}
	if len(path) == 1 {
		obj.Insert(path[0], v)
	} else {
		obj.Insert(path[0], upsert(obj.Get(path[0]), path[1:], v))
	}
	return ast.NewTerm(obj)
}

func valueOf(t *ast.Term) ast.Value {
	if t == nil {
		return nil
	}
	return t.Value
}

func arrayOf(t *ast.Term) (*ast.Array, bool) {
	if t == nil {
		return nil, false
	}
	a, ok := t.Value.(*ast.Array)
	return a, ok
}

// dot is opa_value_get: an object's value at key, an array's element at an integer
// index, a set's element equal to key; nil otherwise.
func dot(src, key *ast.Term) *ast.Term {
	switch v := src.Value.(type) {
	case ast.Object:
		return v.Get(key)
	case *ast.Array:
		n, ok := key.Value.(ast.Number)
		if !ok {
			return nil
		}
		i, ok := n.Int()
		if !ok || i < 0 || i >= v.Len() {
			return nil
		}
		return v.Elem(i)
	case ast.Set:
		if v.Contains(key) {
			return key
		}
	}
	return nil
}

func length(t *ast.Term) (int, bool) {
	switch v := t.Value.(type) {
	case *ast.Array:
		return v.Len(), true
	case ast.Object:
		return v.Len(), true
	case ast.Set:
		return v.Len(), true
	case ast.String:
		return utf8.RuneCountInString(string(v)), true
	}
	return 0, false
}

func equal(a, b *ast.Term) bool {
	if x, ok := a.Value.(ast.Boolean); ok {
		y, ok := b.Value.(ast.Boolean)
		return ok && x == y
	}
	return ast.Compare(a.Value, b.Value) == 0
}

// builtinError is what a built-in's error ends the evaluation with: topdown's registry
// makes it a *topdown.Error naming the built-in and its location; a Halt gives its own.
func builtinError(err error) error {
	if h, ok := err.(topdown.Halt); ok {
		return h.Err
	}
	return err
}

// conflict is topdown's error for two values where one is allowed.
func (e *eval) conflict(loc *ir.Location, msg string) error {
	return &topdown.Error{Code: topdown.ConflictErr, Message: msg, Location: e.p.location(loc)}
}

// Valid reports whether f is a function of a program (the zero Func is not).
func (f Func) Valid() bool { return f.fn != nil }
