package bundles_test

// Test helpers in this file and sign_test.go are prefixed "rw" (read/write)
// so they cannot collide with other test files of the package.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tetherproject/tether/internal/testenv"

	"github.com/tetherproject/tether/bundles"
)

const rwDemoModule = `package tether.demo

allow if input.x == 1

greeting := data.tether.config.greeting
`

const rwCustomModule = `package tether.custom

deny contains "x must not be 2" if input.x == 2
`

func rwDemoOptions() bundles.BuildOptions {
	return bundles.BuildOptions{
		Data: map[string]any{"tether": map[string]any{
			"config": map[string]any{"greeting": "hello", "n": 3, "list": []string{"a", "b"}},
		}},
		Modules: []bundles.Module{
			{Path: "tether/demo.rego", Raw: []byte(rwDemoModule)},
			{Path: "custom/extra.rego", Raw: []byte(rwCustomModule)},
		},
		Metadata: map[string]any{"built_by": "test"},
	}
}

func rwDemo(t *testing.T) *bundles.Bundle {
	t.Helper()
	b, err := bundles.Build(rwDemoOptions())
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return b
}

func rwTarGzBytes(t *testing.T, b *bundles.Bundle) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := bundles.WriteTarGz(&buf, b); err != nil {
		t.Fatalf("WriteTarGz: %v", err)
	}
	return buf.Bytes()
}

// rwWrite writes b in the given layout ("tar.gz" or "dir") below t.TempDir
// and returns the path.
func rwWrite(t *testing.T, layout string, b *bundles.Bundle) string {
	t.Helper()
	switch layout {
	case "tar.gz":
		p := filepath.Join(t.TempDir(), "bundle.tar.gz")
		if err := os.WriteFile(p, rwTarGzBytes(t, b), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	case "dir":
		p := filepath.Join(t.TempDir(), "bundle")
		if err := bundles.WriteDir(p, b); err != nil {
			t.Fatalf("WriteDir: %v", err)
		}
		return p
	}
	t.Fatalf("unknown layout %q", layout)
	return ""
}

var rwLayouts = []string{"tar.gz", "dir"}

func rwSameBundle(t *testing.T, got, want *bundles.Bundle) {
	t.Helper()
	if got.Revision != want.Revision {
		t.Errorf("revision = %q, want %q", got.Revision, want.Revision)
	}
	if !reflect.DeepEqual(got.Roots, want.Roots) {
		t.Errorf("roots = %q, want %q", got.Roots, want.Roots)
	}
	if !reflect.DeepEqual(got.Data, want.Data) {
		t.Errorf("data = %#v\nwant %#v", got.Data, want.Data)
	}
	if !reflect.DeepEqual(got.Metadata, want.Metadata) {
		t.Errorf("metadata = %#v, want %#v", got.Metadata, want.Metadata)
	}
	if len(got.Modules) != len(want.Modules) {
		t.Fatalf("got %d modules, want %d", len(got.Modules), len(want.Modules))
	}
	for i := range got.Modules {
		if got.Modules[i].Path != want.Modules[i].Path || !bytes.Equal(got.Modules[i].Raw, want.Modules[i].Raw) {
			t.Errorf("module %d = %s %q, want %s %q", i, got.Modules[i].Path, got.Modules[i].Raw, want.Modules[i].Path, want.Modules[i].Raw)
		}
	}
}

func TestBuild(t *testing.T) {
	t.Parallel()
	t.Run("revision_is_a_content_hash", func(t *testing.T) {
		b := rwDemo(t)
		if !strings.HasPrefix(b.Revision, "sha256:") || len(b.Revision) != len("sha256:")+64 {
			t.Fatalf("revision %q is not sha256:<64 hex>", b.Revision)
		}
		if again := rwDemo(t); again.Revision != b.Revision {
			t.Errorf("equal inputs gave revisions %q and %q", b.Revision, again.Revision)
		}
	})
	t.Run("revision_ignores_module_order_and_metadata", func(t *testing.T) {
		opts := rwDemoOptions()
		opts.Modules[0], opts.Modules[1] = opts.Modules[1], opts.Modules[0]
		opts.Metadata = map[string]any{"built_at": "another time"}
		b, err := bundles.Build(opts)
		if err != nil {
			t.Fatal(err)
		}
		if b.Revision != rwDemo(t).Revision {
			t.Errorf("revision changed with module order or metadata")
		}
	})
	t.Run("revision_changes_with_content", func(t *testing.T) {
		base := rwDemo(t).Revision
		for name, change := range map[string]func(*bundles.BuildOptions){
			"data":   func(o *bundles.BuildOptions) { o.Data["tether"].(map[string]any)["config"].(map[string]any)["n"] = 4 },
			"module": func(o *bundles.BuildOptions) { o.Modules[0].Raw = append(o.Modules[0].Raw, '\n') },
			"path":   func(o *bundles.BuildOptions) { o.Modules[0].Path = "tether/renamed.rego" },
			"roots":  func(o *bundles.BuildOptions) { o.Roots = []string{"tether", "other"} },
		} {
			opts := rwDemoOptions()
			change(&opts)
			b, err := bundles.Build(opts)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if b.Revision == base {
				t.Errorf("changing %s kept revision %s", name, base)
			}
		}
	})
	t.Run("explicit_revision_is_kept", func(t *testing.T) {
		opts := rwDemoOptions()
		opts.Revision = "v42"
		b, err := bundles.Build(opts)
		if err != nil {
			t.Fatal(err)
		}
		if b.Revision != "v42" {
			t.Errorf("revision = %q", b.Revision)
		}
	})
	t.Run("defaults_to_tether_root", func(t *testing.T) {
		if got := rwDemo(t).Roots; !reflect.DeepEqual(got, []string{"tether"}) {
			t.Errorf("roots = %q", got)
		}
	})
	t.Run("zero_options_build_an_empty_bundle", func(t *testing.T) {
		b, err := bundles.Build(bundles.BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Data) != 0 || len(b.Modules) != 0 || b.Revision == "" {
			t.Errorf("got %+v", b)
		}
	})
	t.Run("data_holds_json_types", func(t *testing.T) {
		cfg := rwDemo(t).Data["tether"].(map[string]any)["config"].(map[string]any)
		if n, ok := cfg["n"].(json.Number); !ok || n != "3" {
			t.Errorf("n = %#v, want json.Number(3)", cfg["n"])
		}
		if l, ok := cfg["list"].([]any); !ok || len(l) != 2 {
			t.Errorf("list = %#v, want []any", cfg["list"])
		}
	})
	t.Run("modules_are_sorted_and_copied", func(t *testing.T) {
		opts := rwDemoOptions()
		b, err := bundles.Build(opts)
		if err != nil {
			t.Fatal(err)
		}
		opts.Modules[0].Raw[0] = 'X'
		if b.Modules[0].Path != "custom/extra.rego" || b.Modules[1].Raw[0] != 'p' {
			t.Errorf("modules not sorted or not copied: %q %q", b.Modules[0].Path, b.Modules[1].Raw[:1])
		}
	})
}

func TestBuildRejects(t *testing.T) {
	t.Parallel()
	mod := func(p, src string) []bundles.Module { return []bundles.Module{{Path: p, Raw: []byte(src)}} }
	for _, tc := range []struct {
		name string
		opts bundles.BuildOptions
		want string
	}{
		{"syntax_error_names_file_and_line",
			bundles.BuildOptions{Modules: mod("tether/bad.rego", "package tether.bad\n\nallow if {\n  input.x ==\n}\n")},
			"tether/bad.rego:5: rego_parse_error"},
		{"rego_v0_syntax",
			bundles.BuildOptions{Modules: mod("tether/v0.rego", "package tether.v0\n\nallow { true }\n")},
			"tether/v0.rego:3: rego_parse_error"},
		{"compile_error_names_file_and_line",
			bundles.BuildOptions{Modules: mod("tether/unsafe.rego", "package tether.unsafe\n\nallow if {\n  y := x\n}\n")},
			"tether/unsafe.rego:4: rego_unsafe_var_error"},
		{"modules_that_do_not_compile_together",
			bundles.BuildOptions{Modules: append(mod("tether/a.rego", "package tether.a\n\nf(x) := x\n"),
				mod("tether/b.rego", "package tether.b\n\nimport data.tether.a\n\ny := a.f(1, 2, 3)\n")...)},
			"tether/b.rego:5: rego_type_error"},
		{"package_outside_roots",
			bundles.BuildOptions{Modules: mod("other/x.rego", "package other.x\n\nallow := true\n")},
			`other/x.rego:1: package other.x is outside the bundle roots ["tether"]`},
		{"data_outside_roots",
			bundles.BuildOptions{Data: map[string]any{"tether": map[string]any{}, "other": 1}},
			`data at /other is outside the bundle roots ["tether"]`},
		{"overlapping_roots",
			bundles.BuildOptions{Roots: []string{"tether", "tether/custom"}},
			`roots "tether" and "tether/custom" overlap`},
		{"path_traversal_module_path",
			bundles.BuildOptions{Modules: mod("../x.rego", "package tether.x\n")},
			`module path "../x.rego" must be relative`},
		{"absolute_module_path",
			bundles.BuildOptions{Modules: mod("/tether/x.rego", "package tether.x\n")},
			`module path "/tether/x.rego" must be relative`},
		{"module_path_not_rego",
			bundles.BuildOptions{Modules: mod("tether/x.txt", "package tether.x\n")},
			`must name a .rego file`},
		{"duplicate_module_path",
			bundles.BuildOptions{Modules: append(mod("tether/x.rego", "package tether.x\n"), mod("tether/x.rego", "package tether.x\n")...)},
			`module tether/x.rego appears twice`},
		{"empty_module",
			bundles.BuildOptions{Modules: mod("tether/empty.rego", "# nothing\n")},
			`tether/empty.rego:0: rego_parse_error: empty module`},
		{"data_that_is_not_json",
			bundles.BuildOptions{Data: map[string]any{"tether": make(chan int)}},
			`data: json: unsupported type`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := bundles.Build(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build error = %v\nwant it to contain %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "building bundle: ") {
				t.Errorf("error %q does not say what was being done", err)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, layout := range rwLayouts {
		t.Run(layout+"_preserves_revision_roots_data_modules_metadata", func(t *testing.T) {
			t.Parallel()
			want := rwDemo(t)
			got, err := bundles.Read(rwWrite(t, layout, want))
			if err != nil {
				t.Fatal(err)
			}
			rwSameBundle(t, got, want)
		})
	}
	t.Run("ReadTarGz_reads_what_WriteTarGz_wrote", func(t *testing.T) {
		t.Parallel()
		want := rwDemo(t)
		got, err := bundles.ReadTarGz(bytes.NewReader(rwTarGzBytes(t, want)))
		if err != nil {
			t.Fatal(err)
		}
		rwSameBundle(t, got, want)
	})
	t.Run("several_roots_and_no_metadata", func(t *testing.T) {
		t.Parallel()
		opts := rwDemoOptions()
		opts.Roots = []string{"tether/demo", "tether/config", "tether/custom"}
		opts.Metadata = nil
		want, err := bundles.Build(opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, layout := range rwLayouts {
			got, err := bundles.Read(rwWrite(t, layout, want))
			if err != nil {
				t.Fatalf("%s: %v", layout, err)
			}
			rwSameBundle(t, got, want)
		}
	})
	t.Run("tar_gz_output_is_deterministic", func(t *testing.T) {
		t.Parallel()
		if !bytes.Equal(rwTarGzBytes(t, rwDemo(t)), rwTarGzBytes(t, rwDemo(t))) {
			t.Error("equal bundles gave different archives")
		}
	})
}

// rwOPA returns the path of the repository's bin/opa (built by `make tools`).
func rwOPA(t *testing.T) string { return testenv.OPA(t) }

// rwRunOPA runs the opa CLI and returns its combined output.
func rwRunOPA(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(rwOPA(t), args...)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// rwOPAEval evaluates query on a bundle with the opa CLI and returns the
// value of its only expression.
func rwOPAEval(t *testing.T, bundlePath, input, query string) any {
	t.Helper()
	inputPath := filepath.Join(t.TempDir(), "input.json")
	if err := os.WriteFile(inputPath, []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := rwRunOPA(t, "eval", "--format", "json", "--bundle", bundlePath, "--input", inputPath, query)
	if err != nil {
		t.Fatalf("opa eval %s on %s: %v\n%s", query, bundlePath, err, out)
	}
	var res struct {
		Result []struct {
			Expressions []struct {
				Value any `json:"value"`
			} `json:"expressions"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("opa eval output: %v\n%s", err, out)
	}
	if len(res.Result) != 1 || len(res.Result[0].Expressions) != 1 {
		t.Fatalf("opa eval %s: undefined or ambiguous result:\n%s", query, out)
	}
	return res.Result[0].Expressions[0].Value
}

func TestOPAEvalAcceptsWrittenBundles(t *testing.T) {
	t.Parallel()
	rwOPA(t)
	b := rwDemo(t)
	for _, layout := range rwLayouts {
		t.Run(layout, func(t *testing.T) {
			t.Parallel()
			p := rwWrite(t, layout, b)
			for _, tc := range []struct {
				input, query string
				want         any
			}{
				{`{"x": 1}`, "data.tether.demo.allow", true},
				{`{"x": 1}`, "data.tether.demo.greeting", "hello"},
				{`{"x": 2}`, "data.tether.custom.deny", []any{"x must not be 2"}},
				{`{}`, "data.tether.config.n", 3.0},
			} {
				if got := rwOPAEval(t, p, tc.input, tc.query); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("%s with input %s = %#v, want %#v", tc.query, tc.input, got, tc.want)
				}
			}
		})
	}
}

// rwEntry is one entry of a hand-made tar archive.
type rwEntry struct {
	name     string
	body     string
	typeflag byte // tar.TypeReg when zero
	linkname string
}

func rwTarGz(t testing.TB, entries ...rwEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: e.typeflag, Linkname: e.linkname}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func rwGzip(t *testing.T, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const rwManifest = `{"revision": "r1", "roots": ["tether"], "rego_version": 1}`

func TestReadRejects(t *testing.T) {
	t.Parallel()
	valid := rwTarGzBytes(t, rwDemo(t))
	for _, tc := range []struct {
		name    string
		archive []byte
		max     int64
		wantIs  error
		want    string
	}{
		{name: "truncated_in_the_middle", archive: valid[:len(valid)/2], wantIs: bundles.ErrCorrupt, want: "truncated"},
		{name: "truncated_in_the_gzip_trailer", archive: valid[:len(valid)-3], wantIs: bundles.ErrCorrupt, want: "truncated"},
		{name: "truncated_in_the_gzip_header", archive: valid[:5], wantIs: bundles.ErrCorrupt, want: "truncated"},
		{name: "empty_input", archive: nil, wantIs: bundles.ErrCorrupt, want: "truncated"},
		{name: "gzip_garbage", archive: []byte("this is not a gzip stream at all, just text"), wantIs: bundles.ErrCorrupt, want: "not gzip data"},
		{name: "corrupt_deflate_data", archive: func() []byte {
			b := bytes.Clone(valid)
			for i := 20; i < 40; i++ {
				b[i] ^= 0xff
			}
			return b
		}(), wantIs: bundles.ErrCorrupt},
		{name: "gzip_of_something_that_is_not_tar", archive: rwGzip(t, bytes.Repeat([]byte("not a tar header "), 64)), wantIs: bundles.ErrCorrupt, want: "invalid tar header"},
		{name: "trailing_garbage_after_the_archive", archive: append(bytes.Clone(valid), "garbage"...), wantIs: bundles.ErrCorrupt},
		{name: "oversize_file", max: 4 << 10, archive: rwTarGz(t,
			rwEntry{name: "/.manifest", body: rwManifest},
			rwEntry{name: "/data.json", body: `{"tether": {"big": "` + strings.Repeat("x", 8<<10) + `"}}`}),
			wantIs: bundles.ErrTooLarge, want: "/data.json is 8215 bytes, more than the 2560 left of the 4096-byte limit"},
		{name: "oversize_in_total", max: 16 << 10, archive: rwTarGz(t,
			rwEntry{name: "/a/data.json", body: `{"s": "` + strings.Repeat("x", 6<<10) + `"}`},
			rwEntry{name: "/b/data.json", body: `{"s": "` + strings.Repeat("x", 6<<10) + `"}`},
			rwEntry{name: "/c/data.json", body: `{"s": "` + strings.Repeat("x", 6<<10) + `"}`}),
			wantIs: bundles.ErrTooLarge},
		{name: "gzip_bomb_stops_at_the_limit", max: 1 << 20, archive: rwGzip(t, make([]byte, 64<<20)), wantIs: bundles.ErrTooLarge, want: "holds over 1048576 bytes uncompressed"},
		{name: "compressed_input_over_the_limit", max: 1 << 10, archive: bytes.Repeat(rwGzip(t, nil), 200), wantIs: bundles.ErrTooLarge, want: "the archive is over 1024 bytes"},
		{name: "path_traversal", archive: rwTarGz(t,
			rwEntry{name: "/.manifest", body: rwManifest},
			rwEntry{name: "../x.rego", body: "package tether.x\n"}),
			want: `archive entry "../x.rego" points outside the bundle`},
		{name: "path_traversal_inside_a_path", archive: rwTarGz(t,
			rwEntry{name: "tether/../../x.rego", body: "package tether.x\n"}),
			want: `points outside the bundle`},
		{name: "path_traversal_in_a_directory_entry", archive: rwTarGz(t,
			rwEntry{name: "../evil/", typeflag: tar.TypeDir}),
			want: `points outside the bundle`},
		{name: "backslash_names", archive: rwTarGz(t,
			rwEntry{name: `..\x.rego`, body: "package tether.x\n"}),
			want: `not a slash-separated path`},
		{name: "symlink_entry", archive: rwTarGz(t,
			rwEntry{name: "tether/x.rego", typeflag: tar.TypeSymlink, linkname: "/etc/passwd"}),
			want: `is not a regular file or directory`},
		{name: "hard_link_entry", archive: rwTarGz(t,
			rwEntry{name: "tether/x.rego", typeflag: tar.TypeLink, linkname: "data.json"}),
			want: `is not a regular file or directory`},
		{name: "same_file_twice", archive: rwTarGz(t,
			rwEntry{name: "/tether/x.rego", body: "package tether.x\n"},
			rwEntry{name: "./tether/x.rego", body: "package tether.y\n"}),
			want: `archive holds /tether/x.rego twice`},
		{name: "module_syntax_error_names_file_and_line", archive: rwTarGz(t,
			rwEntry{name: "/.manifest", body: rwManifest},
			rwEntry{name: "/tether/bad.rego", body: "package tether.bad\n\nallow if {\n  input.x ==\n}\n"}),
			want: `/tether/bad.rego:5: rego_parse_error`},
		{name: "module_outside_roots", archive: rwTarGz(t,
			rwEntry{name: "/.manifest", body: rwManifest},
			rwEntry{name: "/x.rego", body: "package other\n\nallow := true\n"}),
			want: `do not permit 'package other'`},
		{name: "rego_v0_manifest", archive: rwTarGz(t,
			rwEntry{name: "/.manifest", body: `{"revision": "r1", "roots": ["tether"], "rego_version": 0}`},
			rwEntry{name: "/data.json", body: `{}`}),
			want: `rego_version 0; Tether evaluates Rego v1 only`},
		{name: "delta_bundle", archive: rwTarGz(t,
			rwEntry{name: "/.manifest", body: rwManifest},
			rwEntry{name: "/patch.json", body: `{"data": [{"op": "upsert", "path": "/tether/x", "value": 1}]}`}),
			want: `delta bundles`},
		{name: "wasm_module", archive: rwTarGz(t,
			rwEntry{name: "/.manifest", body: rwManifest},
			rwEntry{name: "/policy.wasm", body: "\x00asm"}),
			want: `Wasm`},
		{name: "data_that_is_not_an_object", archive: rwTarGz(t,
			rwEntry{name: "/data.json", body: `[1, 2]`}),
			want: `root value must be object`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := bundles.Reader{MaxBytes: tc.max}.ReadTarGz(bytes.NewReader(tc.archive))
			if err == nil {
				t.Fatal("ReadTarGz accepted it")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %q is not %v", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "reading bundle archive: ") {
				t.Errorf("error = %q\nwant it to start with the task and contain %q", err, tc.want)
			}
		})
	}
}

func TestReadAccepts(t *testing.T) {
	t.Parallel()
	t.Run("archives_made_by_other_tools", func(t *testing.T) {
		// Names as tar(1) writes them ("./a"), with directory entries and
		// data split over nested data.json files, as `opa build` allows.
		b, err := bundles.ReadTarGz(bytes.NewReader(rwTarGz(t,
			rwEntry{name: "./", typeflag: tar.TypeDir},
			rwEntry{name: "./.manifest", body: rwManifest},
			rwEntry{name: "./tether/", typeflag: tar.TypeDir},
			rwEntry{name: "./tether/config/data.json", body: `{"greeting": "hi"}`},
			rwEntry{name: "./tether/demo.rego", body: rwDemoModule},
		)))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"tether": map[string]any{"config": map[string]any{"greeting": "hi"}}}
		if !reflect.DeepEqual(b.Data, want) || b.Revision != "r1" || len(b.Modules) != 1 || b.Modules[0].Path != "tether/demo.rego" {
			t.Errorf("got %+v", b)
		}
	})
	t.Run("a_tar_gz_file_under_any_name", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "policy.bundle")
		if err := os.WriteFile(p, rwTarGzBytes(t, rwDemo(t)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := bundles.Read(p); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("exactly_at_the_limit", func(t *testing.T) {
		archive := rwTarGzBytes(t, rwDemo(t))
		zr, err := gzip.NewReader(bytes.NewReader(archive))
		if err != nil {
			t.Fatal(err)
		}
		var raw bytes.Buffer
		if _, err := raw.ReadFrom(zr); err != nil {
			t.Fatal(err)
		}
		limit := int64(max(raw.Len(), len(archive)))
		if _, err := (bundles.Reader{MaxBytes: limit}).ReadTarGz(bytes.NewReader(archive)); err != nil {
			t.Errorf("at the limit: %v", err)
		}
		if _, err := (bundles.Reader{MaxBytes: limit - 1}).ReadTarGz(bytes.NewReader(archive)); !errors.Is(err, bundles.ErrTooLarge) {
			t.Errorf("one byte under: %v, want ErrTooLarge", err)
		}
	})
}

func TestReadDir(t *testing.T) {
	t.Parallel()
	t.Run("refuses_oversize", func(t *testing.T) {
		p := rwWrite(t, "dir", rwDemo(t))
		_, err := bundles.Reader{MaxBytes: 100}.Read(p)
		if !errors.Is(err, bundles.ErrTooLarge) {
			t.Fatalf("error = %v, want ErrTooLarge", err)
		}
	})
	t.Run("refuses_symlinks", func(t *testing.T) {
		p := rwWrite(t, "dir", rwDemo(t))
		if err := os.Symlink("/etc/passwd", filepath.Join(p, "tether", "link.rego")); err != nil {
			t.Fatal(err)
		}
		_, err := bundles.Read(p)
		if err == nil || !strings.Contains(err.Error(), "/tether/link.rego is not a regular file") {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("refuses_a_special_file", func(t *testing.T) {
		_, err := bundles.Read(os.DevNull)
		if err == nil || !strings.Contains(err.Error(), "not a directory or a .tar.gz file") {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("reports_a_missing_path", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "nope")
		_, err := bundles.Read(p)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "reading bundle "+p) {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("stale_files_are_part_of_the_bundle", func(t *testing.T) {
		// Why WriteDir wants an empty directory: OPA loads every .rego below it.
		p := rwWrite(t, "dir", rwDemo(t))
		if err := os.WriteFile(filepath.Join(p, "tether", "stale.rego"), []byte("package tether.stale\n\nx := 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := bundles.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Modules) != 3 {
			t.Errorf("got %d modules, want the stale one too", len(b.Modules))
		}
	})
}

func TestWriteDir(t *testing.T) {
	t.Parallel()
	t.Run("into_an_existing_empty_directory_leaving_nothing_else", func(t *testing.T) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "bundle")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := bundles.WriteDir(dir, rwDemo(t)); err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != "bundle" {
			t.Errorf("parent holds %v, want only the bundle", entries)
		}
		var files []string
		err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(dir, p)
				files = append(files, filepath.ToSlash(rel))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{".manifest", "custom/extra.rego", "data.json", "tether/demo.rego"}
		if !reflect.DeepEqual(files, want) {
			t.Errorf("files = %q, want %q", files, want)
		}
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("directory mode = %v, %v", fi.Mode(), err)
		}
	})
	t.Run("creating_missing_parents", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b", "bundle")
		if err := bundles.WriteDir(dir, rwDemo(t)); err != nil {
			t.Fatal(err)
		}
		if _, err := bundles.Read(dir); err != nil {
			t.Fatal(err)
		}
	})
}

func TestWriteRefuses(t *testing.T) {
	t.Parallel()
	t.Run("a_non_empty_directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "old.rego"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		err := bundles.WriteDir(dir, rwDemo(t))
		if err == nil || !strings.Contains(err.Error(), "directory is not empty") {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("a_module_path_that_escapes_the_directory", func(t *testing.T) {
		b := rwDemo(t)
		b.Modules = append(b.Modules, bundles.Module{Path: "../../escape.rego", Raw: []byte("package tether.x\n")})
		parent := t.TempDir()
		if err := bundles.WriteDir(filepath.Join(parent, "a", "b"), b); err == nil {
			t.Fatal("WriteDir accepted ../../escape.rego")
		}
		if _, err := os.Stat(filepath.Join(parent, "escape.rego")); err == nil {
			t.Fatal("escape.rego was written outside the bundle directory")
		}
		if err := bundles.WriteTarGz(new(bytes.Buffer), b); err == nil {
			t.Fatal("WriteTarGz accepted ../../escape.rego")
		}
	})
	t.Run("a_bundle_without_roots", func(t *testing.T) {
		b := rwDemo(t)
		b.Roots = nil
		if err := bundles.WriteTarGz(new(bytes.Buffer), b); err == nil || !strings.Contains(err.Error(), "no roots") {
			t.Fatalf("error = %v", err)
		}
	})
}
