package ireval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Each case is a module of package t with a function f(x); the spec is that ireval, on
// OPA's plan of the module, gives what topdown gives for data.t.f(input.x) (with strict
// built-in errors): the same value, the same undefined, an error where topdown errs.
// ireval may also err where topdown gives a value: the plan does not stop at the first
// element that fails an every, nor at a complete rule's first solution, so it can meet a
// built-in error topdown never reached. Callers that need topdown's exact answer ask
// topdown when ireval errs (the policy engine does).
var cases = []struct {
	name, module string
	inputs       []string // JSON documents; each is evaluated with its "x"
}{
	{"some in an array, an object and a set", `
f(x) := [v | some v in x; v != 2]
`, []string{`{"x": [1, 2, 3]}`, `{"x": {"a": 1, "b": 2, "c": 5}}`, `{"x": 7}`, `{"x": []}`}},
	{"some k, v over objects in key order", `
f(x) := [[k, v] | some k, v in x]
`, []string{`{"x": {"b": 1, "a": 2, "c": [3]}}`, `{"x": ["p", "q"]}`}},
	{"every, and every over a non-collection", `
f(x) if every _, v in x { regex.match("^a", v) }
`, []string{`{"x": {"p": "ab", "q": "ac"}}`, `{"x": {"p": "ab", "q": "b"}}`, `{"x": {}}`, `{"x": "abc"}`, `{"x": ["a", "aa"]}`}},
	{"not, with a call inside", `
g(v) if v > 2
f(x) if not g(x)
`, []string{`{"x": 1}`, `{"x": 3}`, `{"x": "s"}`}},
	{"else chains", `
f(x) := "big" if { x > 10 } else := "mid" if { x > 5 } else := "small"
`, []string{`{"x": 11}`, `{"x": 6}`, `{"x": 1}`, `{"x": "n"}`}},
	{"set and object comprehensions", `
f(x) := {"s": {v | some v in x}, "o": {v: i | some i, v in x}}
`, []string{`{"x": ["a", "b", "a"]}`, `{"x": []}`}},
	{"partial rules read from a function are memoized per evaluation", `
bad contains v if { some v in input.x; v < 0 }
f(x) := count(bad) + count(bad)
`, []string{`{"x": [1, -1, -2]}`, `{"x": []}`}},
	{"defaults and undefined", `
default level := "none"
level := "some" if input.x.level
f(x) := [level, object.get(x, "missing", "d")]
`, []string{`{"x": {"level": true}}`, `{"x": {}}`}},
	{"sprintf, concat, array.concat", `
f(x) := concat(", ", array.concat([sprintf("%q is %d", [k, v]) | some k, v in x], ["end"]))
`, []string{`{"x": {"a": 1, "b": 22}}`}},
	{"numbers compare by value", `
f(x) if { x == 1.0; x >= 1; 0.5 < x }
`, []string{`{"x": 1}`, `{"x": 2}`}},
	{"a built-in's error is an error, never undefined", `
f(x) := to_number(x)
`, []string{`{"x": "12"}`, `{"x": "twelve"}`}},
	{"a built-in's error under not is an error too", `
f(x) if not regex.match(x, "a")
`, []string{`{"x": "b"}`, `{"x": "("}`}},
	{"a complete rule with two values is an error", `
v := 1 if input.x > 0
v := 2 if input.x > 1
f(x) := v
`, []string{`{"x": 1}`, `{"x": 2}`}},
	{"a function with two values for one input is an error", `
g(y) := 1 if y > 0
g(y) := 2 if y > 1
f(x) := g(x)
`, []string{`{"x": 1}`, `{"x": 2}`}},
	{"with input and with data", `
r := input.y
s := data.t.d.k
f(x) := v if { v := [r, s] with input as {"y": x} with data.t.d.k as x }
`, []string{`{"x": 3}`}},
	{"walk gives every path", `
f(x) := [p | walk(x, [p, v]); is_number(v)]
`, []string{`{"x": {"a": [1, {"b": 2}], "c": "s"}}`}},
	{"breaks out of nested loops and negations", `
f(x) := [a | some a in x; not any_neg(a); every b in a { b != 0 }]
any_neg(a) if { some b in a; b < 0 }
`, []string{`{"x": [[1, 2], [0, 3], [-1], [], [4]]}`}},
	{"not { body } does not keep a success of an earlier iteration", `
import future.keywords.not
deny contains u.name if { some u in input.x; not { some g in u.groups; g == "approved" } }
f(x) := [count(deny), [v | some v in x; not { some w in v.groups; w == "x" }]]
`, []string{`{"x": [{"name": "a", "groups": ["approved"]}, {"name": "m", "groups": ["x"]}]}`,
		`{"x": [{"name": "m", "groups": ["x"]}, {"name": "a", "groups": ["approved"]}]}`}},
	{"not { body } in a second rule body", `
import future.keywords.not
g(v) := 1 if { v > 5; not { some w in [v]; w > 6 } }
g(v) := 2 if { v <= 5; not { some w in [v]; w > 1 } }
f(x) := [g(y) | some y in x]
`, []string{`{"x": [7, 1, 6, 3]}`}},
	{"time.now_ns reads the instant of the evaluation", `
f(x) := time.now_ns() > x
`, []string{`{"x": 0}`, `{"x": 9000000000000000000}`}},
	{"data documents beside the rules", `
f(x) := data.t.limits[x]
`, []string{`{"x": "a"}`, `{"x": "zz"}`}},
}

var testData = map[string]any{"t": map[string]any{"limits": map[string]any{"a": 1, "b": 2}, "d": map[string]any{"k": 0}}}

func TestPlannedEqualsTopdown(t *testing.T) {
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.module)
			for _, in := range tc.inputs {
				h.check(t, ctx, in)
			}
		})
	}
}

// TestPlannedEqualsTopdownOnRandomInputs runs every case on random documents.
func TestPlannedEqualsTopdownOnRandomInputs(t *testing.T) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 11))
	for _, tc := range cases {
		h := newHarness(t, tc.module)
		for range 200 {
			b, _ := json.Marshal(map[string]any{"x": randomValue(r, 3)})
			h.check(t, ctx, string(b))
		}
		if n := h.irOnlyErrors.Load(); n > 0 {
			t.Logf("%s: ireval alone erred on %d of 200 inputs", tc.name, n)
		}
	}
}

func FuzzPlannedEqualsTopdown(f *testing.F) {
	for _, tc := range cases {
		for _, in := range tc.inputs {
			f.Add(in)
		}
	}
	var hs []*harness
	for _, tc := range cases {
		hs = append(hs, newHarness(f, tc.module))
	}
	f.Fuzz(func(t *testing.T, in string) {
		var doc map[string]any
		if json.Unmarshal([]byte(in), &doc) != nil {
			return
		}
		for _, h := range hs {
			h.check(t, context.Background(), in)
		}
	})
}

func TestCompileRefusesWhatItCannotEvaluate(t *testing.T) {
	// A reference to rules through a computed key is a dynamic call in the plan.
	c := compile(t, "package t\n\nf(x) := data.t.rules[x].v\n", ast.EvalModeIR, "package t.rules.a\n\nv := 1\n")
	pol, err := Plan(context.Background(), c, inmem.New(), `data.t.f("a")`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compile(pol); err == nil || !strings.Contains(err.Error(), "CallDynamicStmt") {
		t.Fatalf("Compile = %v, want an error naming the dynamic call", err)
	}
}

func TestCallAfterTheContextEnded(t *testing.T) {
	h := newHarness(t, "package t\n\nf(x) := x\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := h.prog.Call(ctx, h.fn, time.Now(), ast.NullTerm(), h.data, ast.IntNumberTerm(1))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Call = %v, want context.Canceled", err)
	}
}

func TestErrorsCarryTheirLocation(t *testing.T) {
	h := newHarness(t, "package t\n\nf(x) := to_number(x)\n")
	_, err := h.prog.Call(context.Background(), h.fn, time.Now(), ast.NullTerm(), h.data, ast.StringTerm("nope"))
	var te *topdown.Error
	if !errors.As(err, &te) || te.Code != topdown.BuiltinErr || te.Location == nil || te.Location.File != "t.rego" || te.Location.Row != 3 {
		t.Fatalf("Call = %#v, want a built-in error at t.rego:3", err)
	}
}

func asTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

type harness struct {
	module string
	td     rego.PreparedEvalQuery
	prog   *Program
	fn     Func
	data   *ast.Term
	// irOnlyErrors counts the inputs on which ireval erred and topdown did not.
	irOnlyErrors atomic.Int64
}

func compile(t testing.TB, module string, mode ast.CompilerEvalMode, more ...string) *ast.Compiler {
	t.Helper()
	mods := map[string]*ast.Module{}
	for i, text := range append([]string{module}, more...) {
		name := "t.rego"
		if i > 0 {
			name = fmt.Sprintf("more%d.rego", i)
		}
		m, err := ast.ParseModuleWithOpts(name, text, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		mods[name] = m
	}
	c := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1).WithEvalMode(mode)
	if c.Compile(mods); c.Failed() {
		t.Fatal(c.Errors)
	}
	return c
}

func newHarness(t testing.TB, module string) *harness {
	t.Helper()
	if !strings.HasPrefix(strings.TrimSpace(module), "package") {
		module = "package t\n" + module
	}
	ctx := context.Background()
	store := inmem.NewFromObject(testData)
	td, err := rego.New(rego.Query("data.t.f(input.x)"), rego.Compiler(compile(t, module, ast.EvalModeTopdown)),
		rego.Store(store), rego.StrictBuiltinErrors(true)).PrepareForEval(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := Plan(ctx, compile(t, module, ast.EvalModeIR), store, "data.t.f(input.x)")
	if err != nil {
		t.Fatal(err)
	}
	prog, err := Compile(pol)
	if err != nil {
		t.Fatal(err)
	}
	fn, ok := prog.Func("g0.data.t.f")
	if !ok {
		t.Fatal("no g0.data.t.f in the plan")
	}
	return &harness{module: module, td: td, prog: prog, fn: fn, data: ast.NewTerm(ast.MustInterfaceToValue(testData))}
}

var instant = time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)

func (h *harness) check(t *testing.T, ctx context.Context, in string) {
	t.Helper()
	// Through encoding/json, as a request reaches OPA: an object has one value per key.
	var doc any
	if err := json.Unmarshal([]byte(in), &doc); err != nil {
		t.Fatal(err)
	}
	v, err := ast.InterfaceToValue(doc)
	if err != nil {
		t.Fatal(err)
	}
	input := ast.NewTerm(v)
	if _, ok := v.(ast.Object); !ok {
		return
	}
	rs, tdErr := h.td.Eval(ctx, rego.EvalParsedInput(input.Value), rego.EvalTime(instant), rego.EvalGenerateJSON(asTerm))
	var want ast.Value
	if tdErr == nil && len(rs) == 1 {
		want = rs[0].Expressions[0].Value.(*ast.Term).Value
	}
	x := input.Value.(ast.Object).Get(ast.StringTerm("x"))
	if x == nil {
		return // data.t.f(input.x) is undefined before f is called
	}
	got, irErr := h.prog.Call(ctx, h.fn, instant, input, h.data, x)
	switch {
	case tdErr != nil && irErr == nil:
		t.Errorf("%s\ninput %s: topdown error %v, ireval %v", h.module, in, tdErr, got)
	case irErr != nil:
		if tdErr == nil {
			h.irOnlyErrors.Add(1)
		}
	case want == nil && got != nil:
		t.Errorf("%s\ninput %s: topdown undefined, ireval %v", h.module, in, got)
	case want != nil && (got == nil || ast.Compare(want, got.Value) != 0):
		t.Errorf("%s\ninput %s: topdown %v, ireval %v", h.module, in, want, got)
	}
}

func randomValue(r *rand.Rand, depth int) any {
	k := r.IntN(8)
	if depth == 0 {
		k = r.IntN(5)
	}
	switch k {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2:
		return r.IntN(21) - 10
	case 3:
		return []string{"a", "ab", "b", "(", "12", ""}[r.IntN(6)]
	case 4:
		return r.Float64() * 4
	case 5, 6:
		n := r.IntN(4)
		arr := make([]any, n)
		for i := range arr {
			arr[i] = randomValue(r, depth-1)
		}
		return arr
	default:
		obj := map[string]any{}
		for range r.IntN(4) {
			obj[[]string{"a", "b", "level", "p", "q"}[r.IntN(5)]] = randomValue(r, depth-1)
		}
		return obj
	}
}

// TestConcurrentCallsShareOneProgram: evaluations on many goroutines share a program, its
// data and its constants, each with pooled state of its own (run with -race).
func TestConcurrentCallsShareOneProgram(t *testing.T) {
	// Comprehensions build new collections on every call; walk gives many outputs; every's
	// regex.match errs on some inputs where topdown stops first.
	h := newHarness(t, `
f(x) := [{v | some v in x}, {v: i | some i, v in x}, [p | walk(x, [p, _])], g(x)]
g(x) if every _, v in x { regex.match("^a", v) }
g(x) := false if not x
`)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 50 {
				b, _ := json.Marshal(map[string]any{"x": randomValue(r, 3)})
				h.check(t, context.Background(), string(b))
			}
		}()
	}
	wg.Wait()
}
