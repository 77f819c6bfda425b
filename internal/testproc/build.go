package testproc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Bins are the paths of the three binaries built from this module.
type Bins struct {
	Tetherd, Tetherctl, Tether string
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Build returns tetherd, tetherctl and tether: the module's bin/ when `make build` left
// them there newer than every file the build reads, else built from this module once per
// test binary (the go build cache makes a warm build a link step). Call Cleanup from
// TestMain to remove them. Tests that build are skipped with -short.
func Build(t testing.TB) Bins {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binaries and starts processes (skipped with -short)")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go toolchain is not on PATH: the test builds tetherd, tetherctl and tether with it")
	}
	if bins, ok := freshBins(moduleRoot()); ok {
		return bins
	}
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "tether-bin-"); buildErr != nil {
			return
		}
		cmd := exec.Command(goBin, "build", "-o", buildDir, "./cmd/tetherd", "./cmd/tetherctl", "./cmd/tether")
		cmd.Dir = moduleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building the binaries: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return Bins{
		Tetherd:   filepath.Join(buildDir, "tetherd"),
		Tetherctl: filepath.Join(buildDir, "tetherctl"),
		Tether:    filepath.Join(buildDir, "tether"),
	}
}

// Cleanup removes the binaries Build made; TestMain calls it after m.Run.
func Cleanup() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// moduleRoot is the repository root, two levels above this file.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// freshBins returns the module's bin/ binaries when all three exist and each is newer than
// every file a build reads: go.mod, go.sum and every file under the module but tests,
// documentation, .git and bin/ (Go sources and what they embed, such as rego/*.rego).
func freshBins(root string) (Bins, bool) {
	bins := Bins{
		Tetherd:   filepath.Join(root, "bin", "tetherd"),
		Tetherctl: filepath.Join(root, "bin", "tetherctl"),
		Tether:    filepath.Join(root, "bin", "tether"),
	}
	var oldest time.Time
	for i, p := range []string{bins.Tetherd, bins.Tetherctl, bins.Tether} {
		st, err := os.Stat(p)
		if err != nil || st.IsDir() || st.Mode().Perm()&0o111 == 0 {
			return Bins{}, false
		}
		if i == 0 || st.ModTime().Before(oldest) {
			oldest = st.ModTime()
		}
	}
	stale := errors.New("stale")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (d.Name() == ".git" || d.Name() == "bin" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		// A folder's own time counts too: it changes when a file in it is removed or renamed.
		if !d.IsDir() && (strings.HasSuffix(d.Name(), "_test.go") || strings.HasSuffix(d.Name(), ".md")) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.ModTime().Before(oldest) {
			return stale
		}
		return nil
	})
	return bins, err == nil
}
