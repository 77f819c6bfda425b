package bundles

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
)

// This file holds the rules that keep operators' modules from escaping the engine's
// caches. The engine caches an identity per (revision, certificate, cluster) and a
// decision per (revision, input without now); a rule may therefore depend only on what
// those keys hold. The checks run on the compiled modules and follow rule and function
// references transitively (OPA's own dependency graph), so a helper function, a rule in
// another module or a `with` replacement cannot hide a dependency.

// OperatorReport is what the checks learn about a bundle's operator rules.
type OperatorReport struct {
	// TimeDependent is set when some rule a deny depends on may read input.now: the
	// decision cache must then evaluate the operator denies again for every request.
	TimeDependent bool
	// TimeReads says where ("custom/x.rego:7: input[k]"), for explanations and logs.
	TimeReads []string
	// DenyIgnoresNodeName is set when no rule a deny depends on can read the node's name:
	// every reference to input is a literal path, and one below input.node is below
	// input.node.labels. A node list may then ask the operator denies once per distinct
	// (login, node labels) rather than once per node.
	DenyIgnoresNodeName bool
}

// ErrOperatorPolicy is wrapped by every refusal of CheckOperatorRules.
var ErrOperatorPolicy = errors.New("operator policy refused")

var (
	customDenyRef   = ast.MustParseRef("data.tether.custom.deny")
	customGrantsRef = ast.MustParseRef("data.tether.custom.grants")
	customRef       = ast.MustParseRef("data.tether.custom")
)

// clockReaders are builtins OPA does not mark non-deterministic but that read the clock
// when their arguments do not say which instant to use.
var clockReaders = map[string]string{
	"io.jwt.decode_verify":                                   "it checks exp/nbf against the clock unless constraints carry \"time\"; pass {\"time\": time.parse_rfc3339_ns(input.now)} in a deny, or decide validity elsewhere",
	"crypto.x509.parse_and_verify_certificates":              "it verifies against the clock; use crypto.x509.parse_and_verify_certificates_with_options with CurrentTime from input.now in a deny",
	"crypto.x509.parse_and_verify_certificates_with_options": "it verifies against the clock unless CurrentTime is given; a deny may pass CurrentTime from input.now, but the check cannot tell, so the builtin is refused",
}

// forbiddenBuiltin reports why a builtin may not appear in a bundle's rules, or "".
func forbiddenBuiltin(name string) string {
	const time = "time comes from input.now (readable in deny rules only)"
	const outside = "outside data comes in the bundle (data.tether, built from the cluster's resources)"
	switch {
	case name == "time.now_ns":
		return "it reads the clock; " + time
	case name == "http.send" || strings.HasPrefix(name, "net.lookup_"):
		return "it reaches the network at decision time; " + outside
	case strings.HasPrefix(name, "rand.") || strings.HasPrefix(name, "uuid."):
		return "it gives a different answer each call; derive values from input or data"
	case name == "opa.runtime":
		return "it reads the process's environment and configuration; " + outside
	}
	if why, ok := clockReaders[name]; ok {
		return why
	}
	if b, ok := ast.BuiltinMap[name]; ok && b.Nondeterministic {
		return "OPA marks it non-deterministic; " + time + ", " + outside
	}
	return ""
}

// ForbiddenBuiltins lists every builtin CheckOperatorRules refuses, sorted.
func ForbiddenBuiltins() []string {
	var out []string
	for name := range ast.BuiltinMap {
		if forbiddenBuiltin(name) != "" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// CheckOperatorRules checks a compiled bundle (the library and operators' modules):
//
//   - no rule calls or names a non-deterministic builtin (ForbiddenBuiltins): the caches
//     key on the revision and the input, never on the clock or the network;
//   - every rule that data.tether.custom.grants depends on reads of input only literal
//     paths below input.cert and input.cluster, the identity cache's key;
//   - every rule named deny or grants under data.tether.custom is a partial set rule that
//     data.tether.custom.deny or .grants depends on, so that no operator rule is ignored.
//
// It reports whether a deny may read input.now, by any path: a reference to input that is
// not a literal path whose first key is not "now" counts (input[k], object.get(input, ...),
// some k, v in input, walk(input), input passed to a function).
func CheckOperatorRules(c *ast.Compiler) (OperatorReport, error) {
	var rep OperatorReport
	var problems []string
	for _, name := range util.KeysSorted(c.Modules) {
		ast.WalkRules(c.Modules[name], func(r *ast.Rule) bool {
			ast.WalkRefs(r, func(ref ast.Ref) bool {
				if why := forbiddenBuiltin(builtinName(ref)); why != "" {
					problems = append(problems, fmt.Sprintf("%s: %s is not allowed: %s", where(ref, r), builtinName(ref), why))
				}
				return false
			})
			return false
		})
	}

	grants := closure(c, c.GetRules(customGrantsRef))
	for _, r := range grants {
		ast.WalkRefs(r, func(ref ast.Ref) bool {
			if !ref.HasPrefix(ast.InputRootRef) {
				return false
			}
			if !literalInput(ref, "cert", "cluster") {
				problems = append(problems, fmt.Sprintf("%s: grants may read only input.cert and input.cluster (the identity is cached per certificate), not %v", where(ref, r), ref))
			}
			return false
		})
	}

	denies := closure(c, c.GetRules(customDenyRef))
	rep.DenyIgnoresNodeName = true
	for _, r := range denies {
		ast.WalkRefs(r, func(ref ast.Ref) bool {
			if ref.HasPrefix(ast.InputRootRef) && !nameFreeInput(ref) {
				rep.DenyIgnoresNodeName = false
			}
			return false
		})
	}
	for _, r := range denies {
		ast.WalkRefs(r, func(ref ast.Ref) bool {
			if ref.HasPrefix(ast.InputRootRef) && !literalInputNot(ref, "now") {
				rep.TimeDependent = true
				rep.TimeReads = append(rep.TimeReads, fmt.Sprintf("%s: %v", where(ref, r), ref))
			}
			return false
		})
	}

	problems = append(problems, unreadOperatorRules(c, denies, grants)...)
	if len(problems) > 0 {
		return OperatorReport{}, fmt.Errorf("%w:\n  %s", ErrOperatorPolicy, strings.Join(dedupe(problems), "\n  "))
	}
	return rep, nil
}

// unreadOperatorRules finds rules named deny or grants under data.tether.custom that the
// engine would never read: not partial set rules, or not reached from the root rules, and
// partial set rules whose name has a variable (p[k] contains x), which could be either.
func unreadOperatorRules(c *ast.Compiler, denies, grants []*ast.Rule) []string {
	reached := map[*ast.Rule]bool{}
	for _, r := range append(slices.Clone(denies), grants...) {
		reached[r] = true
	}
	var problems []string
	for _, name := range util.KeysSorted(c.Modules) {
		m := c.Modules[name]
		ast.WalkRules(m, func(r *ast.Rule) bool {
			if r.Path().HasPrefix(customRef) && r.Head.RuleKind() == ast.MultiValue && !r.Head.Ref().IsGround() {
				problems = append(problems, fmt.Sprintf("%s:%d: %v contains ... names its set with a variable, so it could define a deny or grants set the engine never reads; name the set",
					r.Location.File, r.Location.Row, r.Head.Ref()))
				return false
			}
			path, last := operatorRulePath(r)
			if last == "" {
				return false
			}
			switch {
			case len(r.Head.Args) > 0 || r.Head.RuleKind() != ast.MultiValue || r.Head.Key == nil:
				problems = append(problems, fmt.Sprintf("%s:%d: %v must be a partial set rule (%s contains x if ...); the engine reads no other form",
					r.Location.File, r.Location.Row, path, last))
			case !reached[r]:
				problems = append(problems, fmt.Sprintf("%s:%d: %v is never read: the engine reads data.tether.custom.%s; put the rule in package tether.custom (bundles.ForCluster adds sub-packages' %s rules itself)",
					r.Location.File, r.Location.Row, path, last, last))
			}
			return false
		})
	}
	return problems
}

// operatorRulePath returns the path of a rule named deny or grants strictly below
// data.tether.custom and that name; "" for any other rule.
func operatorRulePath(r *ast.Rule) (ast.Ref, string) {
	path := r.Path()
	if !path.HasPrefix(customRef) || len(path) <= len(customRef) {
		return nil, ""
	}
	last, ok := path[len(path)-1].Value.(ast.String)
	if !ok || (last != "deny" && last != "grants") || path.Equal(customDenyRef) || path.Equal(customGrantsRef) {
		return nil, ""
	}
	return path, string(last)
}

// closure returns roots and every rule they depend on, transitively.
func closure(c *ast.Compiler, roots []*ast.Rule) []*ast.Rule {
	seen := map[*ast.Rule]bool{}
	var out []*ast.Rule
	var visit func(r *ast.Rule)
	visit = func(r *ast.Rule) {
		for ; r != nil; r = r.Else {
			if seen[r] {
				return
			}
			seen[r] = true
			out = append(out, r)
			for dep := range c.Graph.Dependencies(r) {
				if d, ok := dep.(*ast.Rule); ok {
					visit(d)
				}
			}
		}
	}
	for _, r := range roots {
		visit(r)
	}
	return out
}

// builtinName is the dotted name a ref would call, e.g. "time.now_ns"; "" when the ref is
// not a plain var.string.string... path.
func builtinName(ref ast.Ref) string {
	if len(ref) == 0 {
		return ""
	}
	head, ok := ref[0].Value.(ast.Var)
	if !ok {
		return ""
	}
	parts := []string{string(head)}
	for _, t := range ref[1:] {
		s, ok := t.Value.(ast.String)
		if !ok {
			return ""
		}
		parts = append(parts, string(s))
	}
	return strings.Join(parts, ".")
}

// literalInput reports whether ref is input.K... with K a string among keys.
func literalInput(ref ast.Ref, keys ...string) bool {
	if len(ref) < 2 {
		return false
	}
	s, ok := ref[1].Value.(ast.String)
	return ok && slices.Contains(keys, string(s))
}

// nameFreeInput reports whether ref is a literal input path that cannot read
// input.node.name: input.K... with K a string, and input.node.labels... when K is "node".
func nameFreeInput(ref ast.Ref) bool {
	if len(ref) < 2 {
		return false
	}
	k, ok := ref[1].Value.(ast.String)
	if !ok {
		return false
	}
	if k != "node" {
		return true
	}
	if len(ref) < 3 {
		return false
	}
	l, ok := ref[2].Value.(ast.String)
	return ok && l == "labels"
}

// literalInputNot reports whether ref is input.K... with K a string other than not.
func literalInputNot(ref ast.Ref, not string) bool {
	if len(ref) < 2 {
		return false
	}
	s, ok := ref[1].Value.(ast.String)
	return ok && string(s) != not
}

// where names the file and line of ref, or of its rule when the compiler left the term
// without a location.
func where(ref ast.Ref, r *ast.Rule) string {
	if loc := ref[0].Location; loc != nil && loc.File != "" {
		return fmt.Sprintf("%s:%d", loc.File, loc.Row)
	}
	if r.Location != nil {
		return fmt.Sprintf("%s:%d", r.Location.File, r.Location.Row)
	}
	return "(unknown location)"
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	out := ss[:0]
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// CheckOperator compiles b and runs CheckOperatorRules on it.
func CheckOperator(b *Bundle) (OperatorReport, error) {
	c, err := b.compile()
	if err != nil {
		return OperatorReport{}, err
	}
	return CheckOperatorRules(c)
}
