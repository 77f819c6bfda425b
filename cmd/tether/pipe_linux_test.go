package main

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func pipeSize(t *testing.T, f *os.File) int {
	t.Helper()
	n, err := unix.FcntlInt(f.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatalf("F_GETPIPE_SZ: %v", err)
	}
	return n
}

// tether proxy ssh's stdin and stdout: a pipe grows (OpenSSH's ProxyCommand), anything
// else is left alone and nothing fails.
func TestGrowPipe(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	growPipe(r, proxyPipeSize)
	if got := pipeSize(t, w); got != proxyPipeSize {
		t.Errorf("pipe size after growPipe: %d, want %d", got, proxyPipeSize)
	}
	// Not a pipe: a no-op.
	f, err := os.CreateTemp(t.TempDir(), "notapipe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	growPipe(f, proxyPipeSize)
	if _, err := f.WriteString("still writable"); err != nil {
		t.Errorf("a file after growPipe: %v", err)
	}
}
