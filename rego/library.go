// Package regolib embeds Tether's Rego policy library: the rules every access decision is
// made with. The .rego files in this folder are the library; each has a _test.rego beside
// it, run with `opa test rego/` and with `tetherctl policy test`.
package regolib

import (
	"embed"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed *.rego
var files embed.FS

// Prefix is the folder library modules get in a bundle.
const Prefix = "lib/"

// File is one Rego source file of the library.
type File struct {
	Path string // e.g. "lib/access.rego"
	Raw  []byte
}

// Modules returns the library's policy modules, without tests, in path order.
func Modules() []File { return list(false) }

// Tests returns the library's _test.rego modules, in path order.
func Tests() []File { return list(true) }

func list(tests bool) []File {
	names, err := fs.Glob(files, "*.rego")
	if err != nil {
		panic(err) // the pattern is constant
	}
	sort.Strings(names)
	var out []File
	for _, n := range names {
		if strings.HasSuffix(n, "_test.rego") != tests {
			continue
		}
		raw, err := files.ReadFile(n)
		if err != nil {
			panic(err) // embedded files are always readable
		}
		out = append(out, File{Path: path.Join(strings.TrimSuffix(Prefix, "/"), n), Raw: raw})
	}
	return out
}
