package bundles

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// This file reads and writes bundle archives (.tar.gz) and directories, with
// Tether's own limits: total size, no links, no traversal, no trailing garbage.

// DefaultMaxBytes is the size limit a zero [Reader] applies: 64 MiB of
const DefaultMaxBytes int64 = 64 << 20

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

// archiveFile is one regular file of a bundle, named "/a/b" as OPA names
// files inside archives.
type archiveFile struct {
	name string
	data []byte
}

type archiveFiles []archiveFile

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
