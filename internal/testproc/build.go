package testproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
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

// Build builds tetherd, tetherctl and tether from this module once per test binary (the go
// build cache makes a warm build a link step) and returns their paths. Call Cleanup from
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
