package bundles

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/open-policy-agent/opa/v1/rego"

	regolib "github.com/tetherproject/tether/rego"
)

// The role_map validation (data.tether.rolemap.errors) depends only on a trusted cluster's
// rules, not on the certificate, so Shape evaluates the library's own rule once per bundle
// and stores the result as trusted_clusters[name].role_map_errors; the identity stage reads
// it instead of validating 50 rules for every new certificate.
var roleMapErrorsQuery struct {
	once sync.Once
	pq   rego.PreparedEvalQuery
	err  error
}

func preparedRoleMapErrors() (rego.PreparedEvalQuery, error) {
	q := &roleMapErrorsQuery
	q.once.Do(func() {
		opts := []func(*rego.Rego){rego.Query("data.tether.rolemap.errors(input)"), rego.StrictBuiltinErrors(true)}
		for _, f := range regolib.Modules() {
			if f.Path == regolib.Prefix+"rolemap.rego" {
				opts = append(opts, rego.Module(f.Path, string(f.Raw)))
			}
		}
		q.pq, q.err = rego.New(opts...).PrepareForEval(context.Background())
	})
	return q.pq, q.err
}

// roleMapErrors returns the library's validation errors of one role_map, sorted.
func roleMapErrors(rules []any) ([]any, error) {
	pq, err := preparedRoleMapErrors()
	if err != nil {
		return nil, fmt.Errorf("preparing the role_map validation: %w", err)
	}
	rs, err := pq.Eval(context.Background(), rego.EvalInput(rules))
	if err != nil {
		return nil, fmt.Errorf("validating role_map: %w", err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, fmt.Errorf("validating role_map: the library returned no answer")
	}
	list, ok := rs[0].Expressions[0].Value.([]any)
	if !ok {
		return nil, fmt.Errorf("validating role_map: the library returned %T, want a set", rs[0].Expressions[0].Value)
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
