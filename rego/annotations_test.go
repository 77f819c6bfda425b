package regolib

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestLibraryAnnotations: every library package says what it is (METADATA title and
// description), and data.tether.authz.decision is marked as the entry point.
func TestLibraryAnnotations(t *testing.T) {
	entrypoints := 0
	for _, f := range Modules() {
		m, err := ast.ParseModuleWithOpts(f.Path, string(f.Raw), ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
		if err != nil {
			t.Fatal(err)
		}
		var pkg *ast.Annotations
		for _, a := range m.Annotations {
			switch a.Scope {
			case "package":
				pkg = a
			case "rule", "document":
				if a.Entrypoint {
					entrypoints++
					if p := a.GetTargetPath(); !p.Equal(ast.MustParseRef("data.tether.authz.decision")) {
						t.Errorf("%s: entry point %v, want data.tether.authz.decision", f.Path, p)
					}
				}
			}
		}
		if pkg == nil || pkg.Title == "" || pkg.Description == "" {
			t.Errorf("%s: %v has no package METADATA with a title and a description", f.Path, m.Package.Path)
		}
	}
	if entrypoints != 1 {
		t.Errorf("%d entry points, want 1 (data.tether.authz.decision)", entrypoints)
	}
}
