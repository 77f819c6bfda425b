package bundles_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"reflect"
	"testing"

	"github.com/tetherproject/tether/bundles"
)

// rwFuzzKey verifies the signed seed; fuzzed signatures exercise the
// verifier's refusals.
var rwFuzzKey = bundles.VerificationKey{KeyID: "fuzz", Algorithm: "HS256", Key: []byte("fuzz secret")}

// FuzzReadTarGz feeds arbitrary bytes to ReadTarGz. It must never panic, and
// whatever it accepts must write and read back unchanged.
func FuzzReadTarGz(f *testing.F) {
	for _, seed := range rwFuzzSeeds(f) {
		f.Add(seed)
		for _, n := range []int{0, 1, 10, 11, len(seed) / 3, len(seed) / 2, len(seed) - 9, len(seed) - 1} {
			f.Add(seed[:n])
		}
	}
	f.Add(rwTarGz(f,
		rwEntry{name: "./", typeflag: tar.TypeDir},
		rwEntry{name: "./.manifest", body: rwManifest},
		rwEntry{name: "./tether/config/data.yaml", body: "greeting: hi\nn: [1, 2.5, -3e2]\n"},
		rwEntry{name: "./tether/demo.rego", body: rwDemoModule},
	))
	f.Add(rwTarGz(f, rwEntry{name: "../x.rego", body: "package tether.x\n"}))

	f.Fuzz(rwFuzzRead)
}

// rwFuzzSeeds are valid bundles, signed and not, as .tar.gz bytes.
func rwFuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	plain, err := bundles.Build(rwDemoOptions())
	if err != nil {
		f.Fatal(err)
	}
	signed, err := bundles.Build(rwDemoOptions())
	if err != nil {
		f.Fatal(err)
	}
	if err := bundles.Sign(signed, bundles.SigningKey{KeyID: "fuzz", Algorithm: "HS256", Key: rwFuzzKey.Key}); err != nil {
		f.Fatal(err)
	}
	var seeds [][]byte
	for _, b := range []*bundles.Bundle{plain, signed} {
		var buf bytes.Buffer
		if err := bundles.WriteTarGz(&buf, b); err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, buf.Bytes())
	}
	return seeds
}

// rwFuzzRead reads archive with and without verification; whatever is
// accepted must write and read back unchanged.
func rwFuzzRead(t *testing.T, archive []byte) {
	for _, r := range []bundles.Reader{
		{MaxBytes: 1 << 20},
		{MaxBytes: 1 << 20, Verification: &rwFuzzKey},
	} {
		b, err := r.ReadTarGz(bytes.NewReader(archive))
		if err != nil {
			continue
		}
		var out bytes.Buffer
		if err := bundles.WriteTarGz(&out, b); err != nil {
			t.Fatalf("WriteTarGz of an accepted bundle: %v", err)
		}
		again, err := r.ReadTarGz(&out)
		if err != nil {
			t.Fatalf("reading back an accepted bundle: %v", err)
		}
		if again.Revision != b.Revision || !reflect.DeepEqual(again.Roots, b.Roots) ||
			!reflect.DeepEqual(again.Data, b.Data) || !reflect.DeepEqual(again.Modules, b.Modules) ||
			!reflect.DeepEqual(again.Metadata, b.Metadata) {
			t.Fatalf("round trip changed the bundle:\n%+v\n%+v", b, again)
		}
	}
}

// FuzzReadTarGzContent fuzzes the uncompressed tar stream and compresses it
// in the harness: mutations of compressed bytes rarely get past the gzip
// checksum, so this is what reaches the tar, OPA and Rego code.
func FuzzReadTarGzContent(f *testing.F) {
	for _, seed := range rwFuzzSeeds(f) {
		zr, err := gzip.NewReader(bytes.NewReader(seed))
		if err != nil {
			f.Fatal(err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		f.Add(raw[:len(raw)/2])
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(raw); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		rwFuzzRead(t, buf.Bytes())
	})
}
