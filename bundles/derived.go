package bundles

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	regolib "github.com/tetherproject/tether/rego"
)

// Derived data: parts of the identity stage that depend only on the bundle, not on the
// certificate, are evaluated here once, at build time, by the library's own rules, and
// stored beside the data they are computed from:
//   - trusted_clusters[name].role_map_errors = data.tether.rolemap.errors(role_map_rules)
//   - every selector key's "literal" = data.tether.labels.literal_matcher(values)
//   - trusted_clusters[name].role_map.any_pattern = data.tether.rolemap.any_pattern_of(
//     role_map.patterns): one regex that matches a role when some pattern does
//   - every certificate authority's "derived" = data.tether.certs.ca_derived(ca): its
//     problems that do not depend on the certificate (wrong type, not active, cluster not
//     trusted, trust disabled), evaluated on the whole shaped document (trust state is
//     in the trusted clusters)
//   - every role's "derived" = data.tether.identity.role_derived(role): its literal logins
//     (an allow's checked against the login rule), its login templates, its selectors'
//     static parts (labels.static: template-free keys compiled, with their per-key
//     regexes) and whether its cluster_labels select anything
//
// The identity stage reads what is stored and computes it when a bundle does not carry it
// (opa build, an older tetherctl); the engine refuses a bundle whose stored values are not
// what the rules give (data.tether.identity.derived_stale). So `opa eval -b` and the
// engine answer the same, and a new certificate does not pay for validating 50 role_map
// rules or compiling every selector's patterns.
var library struct {
	once     sync.Once
	errors   rego.PreparedEvalQuery
	literals rego.PreparedEvalQuery
	roles    rego.PreparedEvalQuery
	patterns rego.PreparedEvalQuery
	compiler *ast.Compiler
	err      error
}

func prepareLibrary() error {
	l := &library
	l.once.Do(func() {
		modules := map[string]*ast.Module{}
		for _, f := range regolib.Modules() {
			m, err := ast.ParseModuleWithOpts(f.Path, string(f.Raw), ast.ParserOptions{RegoVersion: ast.RegoV1})
			if err != nil {
				l.err = err
				return
			}
			modules[f.Path] = m
		}
		c := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
		if c.Compile(modules); c.Failed() {
			l.err = c.Errors
			return
		}
		l.compiler = c
		for _, q := range []struct {
			query string
			dst   *rego.PreparedEvalQuery
		}{
			{"data.tether.rolemap.errors(input)", &l.errors},
			{"data.tether.labels.literal_matcher(input)", &l.literals},
			{"data.tether.identity.role_derived(input)", &l.roles},
			{"data.tether.rolemap.any_pattern_of(input)", &l.patterns},
		} {
			*q.dst, l.err = rego.New(rego.Query(q.query), rego.Compiler(c), rego.StrictBuiltinErrors(true)).PrepareForEval(context.Background())
			if l.err != nil {
				return
			}
		}
	})
	if l.err != nil {
		return fmt.Errorf("preparing the library's build-time rules: %w", l.err)
	}
	return nil
}

func evalLibrary(pq rego.PreparedEvalQuery, input any) (any, error) {
	rs, err := pq.Eval(context.Background(), rego.EvalInput(input))
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, fmt.Errorf("the library returned no answer")
	}
	return integers(rs[0].Expressions[0].Value), nil
}

// libraryValue evaluates one of the library's prepared queries (prepared on first use)
// on input and returns its answer as a T; what names the work in errors, want the type.
func libraryValue[T any](pq *rego.PreparedEvalQuery, input any, what, want string) (T, error) {
	var zero T
	if err := prepareLibrary(); err != nil {
		return zero, err
	}
	v, err := evalLibrary(*pq, input)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", what, err)
	}
	t, ok := v.(T)
	if !ok {
		return zero, fmt.Errorf("%s: the library returned %T, want %s", what, v, want)
	}
	return t, nil
}

// integers turns the json.Number values of a result into int64, the type Shape uses for
// numbers (every number the library derives is an integer count of nanoseconds); any
// other number is left as it is.
func integers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
	case map[string]any:
		for k, e := range x {
			x[k] = integers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = integers(e)
		}
	}
	return v
}

// roleMapErrors returns the library's validation errors of one role_map, sorted.
func roleMapErrors(rules []any) ([]any, error) {
	list, err := libraryValue[[]any](&library.errors, rules, "validating role_map", "a set")
	if err != nil {
		return nil, err
	}
	errs := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("validating role_map: error %v is not a string", e)
		}
		errs = append(errs, s)
	}
	sort.Strings(errs)
	out := make([]any, len(errs))
	for i, s := range errs {
		out[i] = s
	}
	return out, nil
}

// literalMatcher returns the library's literal matcher of one selector key's values.
func literalMatcher(values []any) (map[string]any, error) {
	return libraryValue[map[string]any](&library.literals, values, "compiling label values", "an object")
}

// roleDerived returns the library's role_derived of one shaped role (without "derived").
func roleDerived(role map[string]any) (map[string]any, error) {
	return libraryValue[map[string]any](&library.roles, role, "deriving the role's static parts", "an object")
}

// anyPattern returns the library's one regex for all of a role_map's patterns.
func anyPattern(patterns []any) (string, error) {
	return libraryValue[string](&library.patterns, patterns, "joining role_map patterns", "a string")
}

// deriveCAs stores each certificate authority's ca_derived, evaluated by the library on
// the shaped document doc ({"tether": {...}}) it belongs to.
func deriveCAs(doc map[string]any) error {
	if err := prepareLibrary(); err != nil {
		return err
	}
	cas, _ := doc["tether"].(map[string]any)["cas"].(map[string]any)
	if len(cas) == 0 {
		return nil
	}
	pq, err := rego.New(rego.Query("data.tether.certs.ca_derived(input)"), rego.Compiler(library.compiler),
		rego.Store(inmem.NewFromObject(doc)), rego.StrictBuiltinErrors(true)).PrepareForEval(context.Background())
	if err != nil {
		return fmt.Errorf("preparing the certificate authorities' derived data: %w", err)
	}
	derived := make(map[string]any, len(cas))
	for fp, ca := range cas {
		v, err := evalLibrary(pq, ca)
		if err != nil {
			return fmt.Errorf("deriving certificate authority %s: %w", fp, err)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("deriving certificate authority %s: the library returned %T, want an object", fp, v)
		}
		derived[fp] = m
	}
	for fp, m := range derived {
		cas[fp].(map[string]any)["derived"] = m
	}
	return nil
}
