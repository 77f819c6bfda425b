package bundles

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/util"
)

// This file holds the Bundle type and builds and checks bundles; opa.go converts them
// for OPA and archive.go reads and writes them.

// defaultRoots are the roots a bundle owns when BuildOptions names none.
var defaultRoots = []string{"tether"}

var (
	// ErrTooLarge is returned when a bundle exceeds the reader's size limit.
	ErrTooLarge = errors.New("bundle exceeds the size limit")
	// ErrCorrupt is returned for an archive that is truncated or not a valid
	// gzip-compressed tar file.
	ErrCorrupt = errors.New("bundle archive is truncated or corrupt")
)

// Module is one Rego v1 source file of a bundle.
type Module struct {
	// Path is the file's slash-separated path inside the bundle, relative
	// and ending in ".rego", e.g. "tether/certs.rego" or "custom/x.rego".
	// It is where the file is written and the name errors refer to; the
	// module's package, not its path, decides which root it falls under.
	Path string
	// Raw is the source, kept byte for byte (signatures hash these bytes).
	Raw []byte
}

// Bundle is what Tether uses of an OPA bundle. Get one from [Build], [Read],
// [ReadTarGz] or [ReadVerified]; a Bundle changed by hand is checked again
// only loosely when written, so prefer rebuilding it.
type Bundle struct {
	// Revision identifies the content, e.g. "sha256:…" as Build derives it.
	Revision string
	// Roots are the data paths this bundle owns, slash-separated ("tether").
	Roots []string
	// Data is the whole data document, e.g. {"tether": {...}}. Numbers are
	// json.Number, objects map[string]any, arrays []any.
	Data map[string]any
	// Modules are sorted by Path.
	Modules []Module
	// Metadata is the manifest's optional "metadata" object; nil when absent.
	Metadata map[string]any

	// sig is set by Sign and ReadVerified and written with the bundle.
	sig *signature
}

// Signed reports whether b carries a signature, made by [Sign] or checked by
// [ReadVerified], that still matches its content.
func (b *Bundle) Signed() bool {
	if b.sig == nil {
		return false
	}
	d, err := b.digest(true)
	return err == nil && d == b.sig.digest
}

// BuildOptions are the parts of a bundle. The zero value builds an empty
// bundle owning the "tether" root.
type BuildOptions struct {
	// Data is the whole data document; every value must be inside Roots.
	// It is normalised through JSON, so any value encoding/json can marshal
	// is accepted and the Bundle holds plain JSON types.
	Data map[string]any
	// Modules are Rego v1 sources; all must parse and compile together and
	// declare packages inside Roots.
	Modules []Module
	// Roots defaults to ["tether"]. Roots may not overlap.
	Roots []string
	// Revision defaults to a content hash "sha256:<hex>" over roots, data and
	// modules (not Metadata), so equal inputs give equal revisions.
	Revision string
	// Metadata is written to the manifest's "metadata" and is not part of
	// the derived revision, so build stamps there do not change it.
	Metadata map[string]any
}

// Build checks opts and returns the bundle they describe.
func Build(opts BuildOptions) (*Bundle, error) {
	b := &Bundle{
		Revision: opts.Revision,
		Roots:    slices.Clone(opts.Roots),
		Modules:  make([]Module, 0, len(opts.Modules)),
	}
	if len(b.Roots) == 0 {
		b.Roots = slices.Clone(defaultRoots)
	}
	for i, r := range b.Roots {
		b.Roots[i] = strings.Trim(r, "/")
	}
	var err error
	if b.Data, err = jsonDocument(opts.Data); err != nil {
		return nil, fmt.Errorf("building bundle: data: %w", err)
	}
	if b.Metadata, err = jsonDocument(opts.Metadata); err != nil {
		return nil, fmt.Errorf("building bundle: metadata: %w", err)
	}
	if len(b.Metadata) == 0 {
		b.Metadata = nil
	}
	for _, m := range opts.Modules {
		b.Modules = append(b.Modules, Module{Path: m.Path, Raw: slices.Clone(m.Raw)})
	}
	sortModules(b.Modules)
	if err := b.check(); err != nil {
		return nil, fmt.Errorf("building bundle: %w", err)
	}
	if b.Revision == "" {
		d, err := b.digest(false)
		if err != nil {
			return nil, fmt.Errorf("building bundle: deriving revision: %w", err)
		}
		b.Revision = "sha256:" + hex.EncodeToString(d[:])
	}
	return b, nil
}

// jsonDocument round-trips v through JSON so the result holds only the types
// OPA's reader produces, and equal documents compare equal after a read.
func jsonDocument(v map[string]any) (map[string]any, error) {
	if v == nil {
		return map[string]any{}, nil
	}
	bs, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := util.UnmarshalJSON(bs, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func sortModules(ms []Module) {
	slices.SortFunc(ms, func(a, b Module) int { return strings.Compare(a.Path, b.Path) })
}

// checkLayout checks what must hold for b to be written safely: roots,
// module paths. It is cheap and runs on every write.
func (b *Bundle) checkLayout() error {
	if len(b.Roots) == 0 {
		return errors.New("bundle has no roots")
	}
	for i, r := range b.Roots {
		if r != strings.Trim(r, "/") {
			return fmt.Errorf("root %q has a leading or trailing slash", r)
		}
		for _, other := range b.Roots[i+1:] {
			if bundle.RootPathsOverlap(r, other) {
				return fmt.Errorf("roots %q and %q overlap", r, other)
			}
		}
	}
	seen := make(map[string]bool, len(b.Modules))
	for _, m := range b.Modules {
		if err := checkModulePath(m.Path); err != nil {
			return err
		}
		if seen[m.Path] {
			return fmt.Errorf("module %s appears twice", m.Path)
		}
		seen[m.Path] = true
	}
	return nil
}

// checkModulePath accepts only relative, clean, slash-separated paths ending
// in ".rego", so that WriteDir can never write outside its directory.
func checkModulePath(p string) error {
	if !fs.ValidPath(p) || p == "." || strings.Contains(p, `\`) {
		return fmt.Errorf("module path %q must be relative, slash-separated and without . or .. elements", p)
	}
	if !strings.HasSuffix(p, bundle.RegoExt) || path.Base(p) == bundle.RegoExt {
		return fmt.Errorf("module path %q must name a .rego file", p)
	}
	return nil
}

// check is everything Build promises: layout, data and packages inside the
// roots, modules that parse as Rego v1 and compile together.
func (b *Bundle) check() error {
	if err := b.checkLayout(); err != nil {
		return err
	}
	if b.Data == nil {
		return errors.New("data document is missing")
	}
	if err := checkDataRoots(b.Roots, nil, b.Data); err != nil {
		return err
	}
	_, err := b.compile()
	return err
}

// compile parses b's modules as Rego v1, checks their packages lie inside the roots and
// compiles them together.
func (b *Bundle) compile() (*ast.Compiler, error) {
	parsed := make(map[string]*ast.Module, len(b.Modules))
	var errs ast.Errors
	for _, m := range b.Modules {
		mod, err := ast.ParseModuleWithOpts(m.Path, string(m.Raw), ast.ParserOptions{
			RegoVersion:       ast.RegoV1,
			ProcessAnnotation: true,
		})
		if err != nil {
			var pe ast.Errors
			if errors.As(err, &pe) {
				errs = append(errs, pe...)
				continue
			}
			return nil, fmt.Errorf("parsing %s: %w", m.Path, err)
		}
		segs, err := storage.NewPathForRef(mod.Package.Path)
		if err != nil || !rootsContain(b.Roots, segs) {
			return nil, fmt.Errorf("%s:%d: %v is outside the bundle roots %q; OPA would refuse it",
				m.Path, mod.Package.Location.Row, mod.Package, b.Roots)
		}
		parsed[m.Path] = mod
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("parsing modules as Rego v1: %w", errs)
	}
	c := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
	if c.Compile(parsed); c.Failed() {
		return nil, fmt.Errorf("compiling modules: %w", c.Errors)
	}
	return c, nil
}

// rootsContain reports whether segs lies at or below one of roots; the root
// "" contains everything.
func rootsContain(roots []string, segs []string) bool {
	for _, r := range roots {
		var rs []string
		if r != "" {
			rs = strings.Split(r, "/")
		}
		if len(rs) <= len(segs) && slices.Equal(rs, segs[:len(rs)]) {
			return true
		}
	}
	return false
}

// rootBelow reports whether some root lies strictly below segs, so an object
// at segs may hold data for it.
func rootBelow(roots []string, segs []string) bool {
	for _, r := range roots {
		if r == "" {
			continue
		}
		rs := strings.Split(r, "/")
		if len(rs) > len(segs) && slices.Equal(rs[:len(segs)], segs) {
			return true
		}
	}
	return false
}

func checkDataRoots(roots []string, segs []string, v any) error {
	if rootsContain(roots, segs) {
		return nil
	}
	obj, ok := v.(map[string]any)
	if !ok || !rootBelow(roots, segs) {
		return fmt.Errorf("data at /%s is outside the bundle roots %q; OPA would refuse it", strings.Join(segs, "/"), roots)
	}
	for _, k := range util.KeysSorted(obj) {
		if err := checkDataRoots(roots, append(slices.Clip(segs), k), obj[k]); err != nil {
			return err
		}
	}
	return nil
}

// digest hashes the content: roots, data and modules, plus revision and
// metadata when withManifest is set. Build derives the revision from the
// first form; Sign remembers the second to notice later changes.
func (b *Bundle) digest(withManifest bool) ([32]byte, error) {
	h := sha256.New()
	field := func(name string, p []byte) {
		fmt.Fprintf(h, "%s %d\n", name, len(p))
		h.Write(p)
	}
	field("tether-bundle", []byte("v1"))
	roots := slices.Clone(b.Roots)
	slices.Sort(roots)
	for _, r := range roots {
		field("root", []byte(r))
	}
	data, err := json.Marshal(b.Data)
	if err != nil {
		return [32]byte{}, fmt.Errorf("encoding data: %w", err)
	}
	field("data", data)
	ms := slices.Clone(b.Modules)
	sortModules(ms)
	for _, m := range ms {
		field("module", []byte(m.Path))
		field("raw", m.Raw)
	}
	if withManifest {
		field("revision", []byte(b.Revision))
		md, err := json.Marshal(b.Metadata)
		if err != nil {
			return [32]byte{}, fmt.Errorf("encoding metadata: %w", err)
		}
		field("metadata", md)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, nil
}
