package bundles

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	regolib "github.com/tetherproject/tether/rego"
)

// OperatorPackage is the package operators' own modules live in (or below).
const OperatorPackage = "tether.custom"

// operatorPrefix is the folder operator modules get in a bundle.
const operatorPrefix = "custom/"

// ClusterOptions describe a cluster's policy bundle.
type ClusterOptions struct {
	ShapeOptions
	// OperatorModules are the operators' own Rego modules (package tether.custom...).
	OperatorModules []Module
	// Revision, when empty, is derived from the bundle's content.
	Revision string
}

// ForCluster builds a cluster's policy bundle: its resources shaped into data, Tether's
// Rego library, and the operators' modules. Every decision the cluster makes is
// data.tether.authz.decision evaluated on this bundle.
func ForCluster(opts ClusterOptions) (*Bundle, error) {
	data, err := Shape(opts.ShapeOptions)
	if err != nil {
		return nil, err
	}
	var modules []Module
	for _, f := range regolib.Modules() {
		modules = append(modules, Module{Path: f.Path, Raw: f.Raw})
	}
	for _, m := range opts.OperatorModules {
		if err := checkOperatorModule(m); err != nil {
			return nil, err
		}
		p := m.Path
		if !strings.HasPrefix(p, operatorPrefix) {
			p = operatorPrefix + p
		}
		modules = append(modules, Module{Path: p, Raw: m.Raw})
	}
	return Build(BuildOptions{Data: data, Modules: modules, Roots: []string{"tether"}, Revision: opts.Revision})
}

// checkOperatorModule refuses a module outside package tether.custom: an operator module
// may add denies and grants, never redefine the library's rules.
func checkOperatorModule(m Module) error {
	parsed, err := ast.ParseModuleWithOpts(m.Path, string(m.Raw), ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return fmt.Errorf("operator module %s: %w", m.Path, err)
	}
	pkg := strings.TrimPrefix(parsed.Package.Path.String(), "data.")
	if pkg != OperatorPackage && !strings.HasPrefix(pkg, OperatorPackage+".") {
		return fmt.Errorf("operator module %s: package %s is outside %s; operator rules go in package %s (deny contains msg if ..., grants contains role if ...)",
			m.Path, pkg, OperatorPackage, OperatorPackage)
	}
	return nil
}

// ReadOperatorModules reads the .rego files of a directory (recursively). Policy modules
// and _test.rego files are returned separately: tests are run by `tetherctl policy test`
// but never shipped in a bundle.
func ReadOperatorModules(dir string) (modules, tests []Module, err error) {
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".rego") {
			return nil
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		m := Module{Path: filepath.ToSlash(rel), Raw: raw}
		if strings.HasSuffix(p, "_test.rego") {
			tests = append(tests, m)
		} else {
			modules = append(modules, m)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading operator modules from %s: %w", dir, err)
	}
	sort.Slice(modules, func(i, j int) bool { return modules[i].Path < modules[j].Path })
	sort.Slice(tests, func(i, j int) bool { return tests[i].Path < tests[j].Path })
	return modules, tests, nil
}
