package regolib

import (
	"context"
	"regexp"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/tetherproject/tether/resource"
)

// prepareRoleMapErrors prepares data.tether.rolemap.errors over the library.
func prepareRoleMapErrors(t testing.TB) rego.PreparedEvalQuery {
	t.Helper()
	opts := []func(*rego.Rego){rego.Query("data.tether.rolemap.errors(input)")}
	for _, f := range Modules() {
		opts = append(opts, rego.Module(f.Path, string(f.Raw)))
	}
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return pq
}

func regoRoleMapValid(t testing.TB, pq rego.PreparedEvalQuery, rules []resource.RoleMapping) (bool, []any) {
	t.Helper()
	arr := make([]any, len(rules))
	for i, r := range rules {
		locals := make([]any, len(r.Local))
		for j, l := range r.Local {
			locals[j] = l
		}
		arr[i] = map[string]any{"remote": r.Remote, "local": locals}
	}
	v, err := ast.InterfaceToValue(arr)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pq.Eval(context.Background(), rego.EvalParsedInput(v))
	if err != nil || len(rs) != 1 {
		t.Fatalf("rolemap.errors: %v %v", rs, err)
	}
	errs, _ := rs[0].Expressions[0].Value.([]any)
	return len(errs) == 0, errs
}

// FuzzRoleMapValidationAgrees is the differential fuzz of issue 2: the Go validator that
// guards `tetherctl create` and the Rego validator the policy applies at decision time
// must agree on which role maps are valid.
func FuzzRoleMapValidationAgrees(f *testing.F) {
	seeds := [][4]string{
		{"access", "visitor", "", ""},
		{"", "visitor", "", ""},
		{"access", "", "", ""},
		{"access", "*", "", ""},
		{"access", "visitor", "access", "x"},
		{"^remote-(.*)$", "local-$1", "", ""},
		{"^remote-(.*$", "local-$1", "", ""},
		{"^a)|(b$", "x", "", ""},
		{"cluster-*", "clusteradmin", "^dev|ops$", "y"},
		{" ", "x", "", ""},
		{"a", " ", "", ""},
		{"^[$", "x", "^(?P<n>.*)$", "${n}"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2], s[3])
	}
	pq := prepareRoleMapErrors(f)
	f.Fuzz(func(t *testing.T, remote1, local1, remote2, local2 string) {
		rules := []resource.RoleMapping{{Remote: remote1, Local: []string{local1}}}
		if remote2 != "" || local2 != "" {
			rules = append(rules, resource.RoleMapping{Remote: remote2, Local: []string{local2}})
		}
		for _, r := range rules {
			for _, s := range append([]string{r.Remote}, r.Local...) {
				if !validJSONString(s) {
					return // the policy only ever sees JSON text
				}
			}
		}
		goErr := resource.ValidateRoleMap(rules)
		regoOK, regoErrs := regoRoleMapValid(t, pq, rules)
		if (goErr == nil) != regoOK {
			t.Fatalf("validators disagree on %+v:\nGo:   %v\nRego: %v", rules, goErr, regoErrs)
		}
	})
}

func validJSONString(s string) bool {
	for _, r := range s {
		if r == '\uFFFD' {
			return false
		}
	}
	return true
}

// FuzzAnyPatternAgrees: the one regex bundles.Shape stores for a role_map's patterns
// (rolemap.any_pattern_of) matches a role exactly when one of the patterns does, so the
// identity stage skips only roles that no pattern would have mapped.
func FuzzAnyPatternAgrees(f *testing.F) {
	seeds := [][3]string{
		{"cluster-*", "^remote-(.*)$", "cluster-a"},
		{"cluster-*", "^remote-(.*)$", "remote-"},
		{"^(?i)ops-[0-9]+$", "a.b?[c]*", "OPS-7"},
		{"^(?i)ops$", "x*", "Ops\n"},
		{"^a|b$", "*", "ab"},
		{"^(?s).*$", "g-*", "\n"},
		{"^x$", "^y$", ""},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2])
	}
	opts := []func(*rego.Rego){rego.Query("data.tether.rolemap.any_pattern_of(input)")}
	for _, m := range Modules() {
		opts = append(opts, rego.Module(m.Path, string(m.Raw)))
	}
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, remote1, remote2, role string) {
		var patterns []any
		var res []*regexp.Regexp
		for _, remote := range []string{remote1, remote2} {
			if !validJSONString(remote) {
				return
			}
			re, literal, err := resource.CompileRoleMapRemote(remote)
			if err != nil || literal {
				continue
			}
			compiled, err := regexp.Compile(re)
			if err != nil {
				return // role_map validation refuses it; the map is never applied
			}
			patterns = append(patterns, map[string]any{"rule": int64(len(patterns)), "regex": re, "local": []any{"x"}})
			res = append(res, compiled)
		}
		if !validJSONString(role) || patterns == nil {
			return
		}
		rs, err := pq.Eval(context.Background(), rego.EvalInput(patterns))
		if err != nil || len(rs) != 1 {
			t.Fatalf("any_pattern_of: %v %v", rs, err)
		}
		joined, ok := rs[0].Expressions[0].Value.(string)
		if !ok {
			t.Fatalf("any_pattern_of gave %v", rs[0].Expressions[0].Value)
		}
		one, err := regexp.Compile(joined)
		if err != nil {
			t.Fatalf("any_pattern_of(%v) = %q does not compile: %v", patterns, joined, err)
		}
		some := false
		for _, re := range res {
			some = some || re.MatchString(role)
		}
		if one.MatchString(role) != some {
			t.Fatalf("any_pattern %q matches %q: %v; some pattern of %v: %v", joined, role, one.MatchString(role), patterns, some)
		}
	})
}
