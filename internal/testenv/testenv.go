// Package testenv tells tests where the repository and the real tools they run against
// are: the repository root (the folder holding go.mod) and the binaries `make tools`
// installs. A missing tool fails the test with the command that installs it; tests that
// depend on real components never skip.
package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Root returns the repository root, found by walking up from the test's directory.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// OPA returns the path of the real opa CLI built into the repository's bin/.
func OPA(t testing.TB) string {
	t.Helper()
	p := filepath.Join(Root(t), "bin", "opa")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the real opa CLI is missing at %s: run `make tools`", p)
	}
	return p
}

// Command returns the path of a system tool (redis-server, sshd, ssh), looking in PATH and
// the sbin folders, or fails the test saying how to install it.
func Command(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	t.Fatalf("%s is not installed: run `make tools`", name)
	return ""
}

// Buffer collects output that a process's or a store's goroutines write while the test
// reads it: a bytes.Buffer behind a mutex.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Eventually polls cond every 10ms until it returns nil, failing the test with cond's last
// error once timeout has passed. Tests wait for conditions this way, never by sleeping.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
