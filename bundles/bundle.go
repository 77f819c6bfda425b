package bundles

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader/filter"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/util"
)

// DefaultMaxBytes is the size limit a zero [Reader] applies: 64 MiB of
// uncompressed content, and as much compressed input.
const DefaultMaxBytes int64 = 64 << 20

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

// opa converts b into OPA's form, signature included.
func (b *Bundle) opa() bundle.Bundle {
	roots := slices.Clone(b.Roots)
	regoVersion := 1
	ob := bundle.Bundle{
		Manifest: bundle.Manifest{
			Revision:    b.Revision,
			Roots:       &roots,
			RegoVersion: &regoVersion,
			Metadata:    b.Metadata,
		},
		Data: b.Data,
	}
	for _, m := range b.Modules {
		p := "/" + m.Path
		ob.Modules = append(ob.Modules, bundle.ModuleFile{URL: p, Path: p, RelativePath: m.Path, Raw: m.Raw})
	}
	if b.sig != nil {
		ob.Signatures = b.sig.config
	}
	return ob
}

// readyToWrite checks b before any write and returns OPA's form of it.
func (b *Bundle) readyToWrite() (bundle.Bundle, error) {
	if err := b.checkLayout(); err != nil {
		return bundle.Bundle{}, err
	}
	if b.Data == nil {
		return bundle.Bundle{}, errors.New("data document is missing")
	}
	if b.sig != nil && !b.Signed() {
		return bundle.Bundle{}, errors.New("bundle changed after it was signed; sign it again")
	}
	return b.opa(), nil
}

// WriteTarGz writes b to w as a gzip-compressed tar archive in OPA's layout.
func WriteTarGz(w io.Writer, b *Bundle) error {
	ob, err := b.readyToWrite()
	if err != nil {
		return fmt.Errorf("writing bundle %s: %w", b.Revision, err)
	}
	if err := bundle.NewWriter(w).UseModulePath(true).DisableFormat(true).Write(ob); err != nil {
		return fmt.Errorf("writing bundle %s: %w", b.Revision, err)
	}
	return nil
}

// WriteDir writes b as a bundle directory at dir, which must be empty or
// absent: a stale .rego file left there would become part of the bundle. The
// files are written to a temporary directory beside dir and renamed into
// place, so a reader never sees half a bundle.
//
// A signature names files relative to the bundle root, as in an archive, and
// ReadVerified checks directories that way. The opa CLI instead checks a
// directory's files under the path given to --bundle ("dir/data.json"), so it
// verifies these files once archived, e.g. by WriteTarGz.
func WriteDir(dir string, b *Bundle) error {
	if err := writeDir(dir, b); err != nil {
		return fmt.Errorf("writing bundle %s to %s: %w", b.Revision, dir, err)
	}
	return nil
}

func writeDir(dir string, b *Bundle) error {
	ob, err := b.readyToWrite()
	if err != nil {
		return err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return errors.New("directory is not empty")
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := writeDirFiles(tmp, b, ob); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	// os.Rename does not replace a directory, even an empty one. os.Remove
	// removes only an empty one, so a directory filled in the meantime is
	// not lost.
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Rename(tmp, dir)
}

func writeDirFiles(dir string, b *Bundle, ob bundle.Bundle) error {
	write := func(name string, data []byte) error {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, data, 0o644)
	}
	manifest, err := json.Marshal(ob.Manifest)
	if err != nil {
		return fmt.Errorf("encoding manifest: %w", err)
	}
	if err := write(bundle.ManifestExt, append(manifest, '\n')); err != nil {
		return err
	}
	data, err := json.Marshal(ob.Data)
	if err != nil {
		return fmt.Errorf("encoding data: %w", err)
	}
	if err := write("data.json", append(data, '\n')); err != nil {
		return err
	}
	for _, m := range b.Modules {
		if err := write(m.Path, m.Raw); err != nil {
			return err
		}
	}
	if b.sig != nil {
		sigs, err := json.MarshalIndent(ob.Signatures, "", " ")
		if err != nil {
			return fmt.Errorf("encoding signatures: %w", err)
		}
		if err := write(".signatures.json", sigs); err != nil {
			return err
		}
	}
	return nil
}

// Reader reads bundles with limits. The zero value is ready to use.
type Reader struct {
	// MaxBytes bounds the uncompressed content of a bundle and, for an
	// archive, the compressed input too. Zero means DefaultMaxBytes.
	MaxBytes int64
	// Verification, when set, requires a signature made with this key and
	// files that match it; see ReadVerified.
	Verification *VerificationKey
}

// Read reads the bundle at path, a .tar.gz file or a directory, without
// checking signatures.
func Read(path string) (*Bundle, error) { return Reader{}.Read(path) }

// ReadTarGz reads a gzip-compressed tar bundle from r without checking
// signatures.
func ReadTarGz(r io.Reader) (*Bundle, error) { return Reader{}.ReadTarGz(r) }

// Read reads the bundle at path: a directory, or else a gzip-compressed tar
// archive whatever its name.
func (r Reader) Read(path string) (*Bundle, error) {
	b, err := r.read(path)
	if err != nil {
		return nil, fmt.Errorf("reading bundle %s: %w", path, err)
	}
	return b, nil
}

func (r Reader) read(path string) (*Bundle, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	var files archiveFiles
	switch {
	case fi.IsDir():
		files, err = readDirFiles(path, r.maxBytes())
	case fi.Mode().IsRegular():
		files, err = readTarGzFile(path, r.maxBytes())
	default:
		return nil, fmt.Errorf("not a directory or a .tar.gz file (%v)", fi.Mode().Type())
	}
	if err != nil {
		return nil, err
	}
	return r.load(files)
}

// ReadTarGz reads a gzip-compressed tar bundle from rd.
func (r Reader) ReadTarGz(rd io.Reader) (*Bundle, error) {
	files, err := readTarGzFiles(rd, r.maxBytes())
	if err != nil {
		return nil, fmt.Errorf("reading bundle archive: %w", err)
	}
	b, err := r.load(files)
	if err != nil {
		return nil, fmt.Errorf("reading bundle archive: %w", err)
	}
	return b, nil
}

func (r Reader) maxBytes() int64 {
	if r.MaxBytes > 0 {
		return r.MaxBytes
	}
	return DefaultMaxBytes
}

// load turns the files of a bundle into a Bundle: signature first (when
// required), then OPA's reader, then Tether's own checks.
func (r Reader) load(files archiveFiles) (*Bundle, error) {
	var sig *signature
	if r.Verification != nil {
		var err error
		if sig, err = verifyFiles(files, *r.Verification); err != nil {
			return nil, err
		}
	}
	ob, err := bundle.NewCustomReader(&memLoader{files: files}).
		WithSkipBundleVerification(true). // verified above, with typed errors
		WithLazyLoadingMode(false).
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotations(true).
		WithSizeLimitBytes(r.maxBytes()).
		Read()
	if err != nil {
		return nil, err
	}
	b, err := fromOPA(ob)
	if err != nil {
		return nil, err
	}
	if err := b.check(); err != nil {
		return nil, err
	}
	if sig != nil {
		if sig.digest, err = b.digest(true); err != nil {
			return nil, err
		}
		b.sig = sig
	}
	return b, nil
}

// fromOPA keeps what Tether uses of ob and refuses what it would ignore.
func fromOPA(ob bundle.Bundle) (*Bundle, error) {
	switch {
	case len(ob.Patch.Data) > 0:
		return nil, errors.New("delta bundles (patch.json) are not supported; ship a full bundle")
	case len(ob.Wasm) > 0 || len(ob.WasmModules) > 0 || len(ob.Manifest.WasmResolvers) > 0:
		return nil, errors.New("bundle holds Wasm modules, which Tether does not evaluate")
	case len(ob.PlanModules) > 0:
		return nil, errors.New("bundle holds plan modules, which Tether does not evaluate")
	}
	if v := ob.Manifest.RegoVersion; v != nil && *v != 1 {
		return nil, fmt.Errorf("manifest declares rego_version %d; Tether evaluates Rego v1 only", *v)
	}
	for pattern, v := range ob.Manifest.FileRegoVersions {
		if v != 1 {
			return nil, fmt.Errorf("manifest declares rego_version %d for %q; Tether evaluates Rego v1 only", v, pattern)
		}
	}
	b := &Bundle{
		Revision: ob.Manifest.Revision,
		Roots:    []string{""}, // OPA's default for a bundle without a manifest
		Data:     ob.Data,
		Metadata: ob.Manifest.Metadata,
	}
	if ob.Manifest.Roots != nil {
		b.Roots = slices.Clone(*ob.Manifest.Roots)
	}
	if b.Data == nil {
		b.Data = map[string]any{}
	}
	if len(b.Metadata) == 0 {
		b.Metadata = nil
	}
	for _, mf := range ob.Modules {
		b.Modules = append(b.Modules, Module{Path: strings.TrimPrefix(mf.Path, "/"), Raw: mf.Raw})
	}
	sortModules(b.Modules)
	return b, nil
}

// archiveFile is one regular file of a bundle, named "/a/b" as OPA names
// files inside archives.
type archiveFile struct {
	name string
	data []byte
}

type archiveFiles []archiveFile

// memLoader hands files already read (and checked) to OPA's bundle reader.
type memLoader struct {
	files archiveFiles
	next  int
}

func (l *memLoader) NextFile() (*bundle.Descriptor, error) {
	if l.next >= len(l.files) {
		return nil, io.EOF
	}
	f := l.files[l.next]
	l.next++
	return bundle.NewDescriptor(f.name, f.name, bytes.NewBuffer(f.data)), nil
}

func (l *memLoader) WithFilter(filter.LoaderFilter) bundle.DirectoryLoader { return l }
func (l *memLoader) WithPathFormat(bundle.PathFormat) bundle.DirectoryLoader {
	return l
}
func (l *memLoader) WithSizeLimitBytes(int64) bundle.DirectoryLoader { return l }
func (l *memLoader) WithFollowSymlinks(bool) bundle.DirectoryLoader  { return l }

// limitedReader fails with tooLarge (an ErrTooLarge) once more than n bytes
// were read. When it reads the caller's input (source), it marks the
// input's own errors so they are not taken for corruption.
type limitedReader struct {
	r        io.Reader
	n        int64
	tooLarge error
	source   bool
}

type sourceError struct{ err error }

func (e sourceError) Error() string { return e.err.Error() }
func (e sourceError) Unwrap() error { return e.err }

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return 0, l.tooLarge
	}
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		return n, l.tooLarge
	}
	if l.source && err != nil && err != io.EOF {
		err = sourceError{err}
	}
	return n, err
}

// archiveError says what went wrong with the archive in words an operator
// can act on.
func archiveError(err error) error {
	var se sourceError
	switch {
	case errors.Is(err, ErrTooLarge):
		return err
	case errors.As(err, &se):
		return se.err
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return fmt.Errorf("%w: the archive ends early (truncated file or download?)", ErrCorrupt)
	case errors.Is(err, gzip.ErrHeader):
		return fmt.Errorf("%w: not gzip data (is this a .tar.gz bundle?)", ErrCorrupt)
	case errors.Is(err, gzip.ErrChecksum):
		return fmt.Errorf("%w: gzip checksum mismatch", ErrCorrupt)
	case errors.Is(err, tar.ErrHeader):
		return fmt.Errorf("%w: invalid tar header", ErrCorrupt)
	default:
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
}

func readTarGzFile(path string, limit int64) (archiveFiles, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readTarGzFiles(f, limit)
}

// readTarGzFiles reads every regular file of a .tar.gz archive into memory,
// refusing unsafe names, links and anything past limit.
func readTarGzFiles(r io.Reader, limit int64) (archiveFiles, error) {
	zr, err := gzip.NewReader(&limitedReader{r: r, n: limit, source: true,
		tooLarge: fmt.Errorf("%w: the archive is over %d bytes", ErrTooLarge, limit)})
	if err != nil {
		return nil, archiveError(err)
	}
	raw := &limitedReader{r: zr, n: limit,
		tooLarge: fmt.Errorf("%w: the archive holds over %d bytes uncompressed", ErrTooLarge, limit)}
	tr := tar.NewReader(raw)
	var files archiveFiles
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, archiveError(err)
		}
		switch h.Typeflag {
		case tar.TypeXGlobalHeader:
			continue
		case tar.TypeDir:
			if _, err := archiveName(h.Name, true); err != nil {
				return nil, err
			}
			continue
		case tar.TypeReg:
		default:
			return nil, fmt.Errorf("archive entry %q is not a regular file or directory (type %q); bundles hold only files", h.Name, h.Typeflag)
		}
		name, err := archiveName(h.Name, false)
		if err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, fmt.Errorf("archive holds %s twice", name)
		}
		seen[name] = true
		if h.Size < 0 || h.Size > raw.n {
			return nil, fmt.Errorf("%w: %s is %d bytes, more than the %d left of the %d-byte limit", ErrTooLarge, name, h.Size, max(raw.n, 0), limit)
		}
		data := make([]byte, h.Size)
		if _, err := io.ReadFull(tr, data); err != nil {
			return nil, archiveError(err)
		}
		files = append(files, archiveFile{name: name, data: data})
	}
	// Read to the end so that truncation, a bad gzip checksum or trailing
	// garbage after the tar trailer is noticed rather than ignored.
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return nil, archiveError(err)
	}
	return files, nil
}

// archiveName turns a tar entry name ("/a/b", "./a/b" or "a/b") into OPA's
// "/a/b", refusing names that climb out of the bundle.
func archiveName(name string, dir bool) (string, error) {
	if name == "" || strings.ContainsAny(name, "\\\x00") {
		return "", fmt.Errorf("archive entry name %q is not a slash-separated path", name)
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == ".." {
			return "", fmt.Errorf("archive entry %q points outside the bundle", name)
		}
	}
	clean := path.Clean("/" + name)
	if clean == "/" && !dir {
		return "", fmt.Errorf("archive entry %q has no file name", name)
	}
	return clean, nil
}

// readDirFiles reads every regular file below dir into memory. Symbolic
// links and special files are refused rather than skipped, so what is
// loaded is what the directory shows.
func readDirFiles(dir string, limit int64) (archiveFiles, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, err
	}
	var files archiveFiles
	left := limit
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := "/" + filepath.ToSlash(rel)
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file (%v); bundle directories hold only files", name, d.Type())
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, left+1))
		if err != nil {
			return err
		}
		if left -= int64(len(data)); left < 0 {
			return fmt.Errorf("%w: files add up to more than %d bytes (at %s)", ErrTooLarge, limit, name)
		}
		files = append(files, archiveFile{name: name, data: data})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return files, nil
}
