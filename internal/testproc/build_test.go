package testproc

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// bin/ is used only when its three binaries are newer than everything a build reads.
func TestFreshBins(t *testing.T) {
	root := t.TempDir()
	write := func(rel string, at time.Time, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	old, now := time.Now().Add(-time.Hour), time.Now()
	write("go.mod", old, 0o644)
	write("rego/authz.rego", old, 0o644)
	write("cmd/tether/main.go", old, 0o644)
	for _, dir := range []string{"", "rego", "cmd", "cmd/tether"} {
		_ = os.Chtimes(filepath.Join(root, dir), old, old)
	}
	if _, ok := freshBins(root); ok {
		t.Fatal("fresh without binaries")
	}
	for _, b := range []string{"tetherd", "tetherctl", "tether"} {
		write("bin/"+b, now, 0o755)
	}
	_ = os.Chtimes(filepath.Join(root), old, old)
	if _, ok := freshBins(root); !ok {
		t.Fatal("not fresh with binaries newer than every source")
	}
	write("cmd/tether/ssh_test.go", now.Add(time.Minute), 0o644)
	write("docs/NOTES.md", now.Add(time.Minute), 0o644)
	_ = os.Chtimes(filepath.Join(root, "cmd/tether"), old, old)
	_ = os.Chtimes(filepath.Join(root, "docs"), old, old)
	_ = os.Chtimes(filepath.Join(root), old, old)
	if _, ok := freshBins(root); !ok {
		t.Fatal("a newer test or document made bin/ stale")
	}
	write("rego/authz.rego", now.Add(time.Minute), 0o644)
	if _, ok := freshBins(root); ok {
		t.Fatal("fresh although an embedded Rego file is newer")
	}
	write("rego/authz.rego", old, 0o644)
	if err := os.Remove(filepath.Join(root, "cmd/tether/main.go")); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(filepath.Join(root, "cmd/tether"), now.Add(time.Minute), now.Add(time.Minute))
	if _, ok := freshBins(root); ok {
		t.Fatal("fresh although a source file was removed since")
	}
}
