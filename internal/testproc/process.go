package testproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
)

// FreeAddr returns a 127.0.0.1 address whose TCP port was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WriteFile writes content to name in a new temporary directory of the test and returns
// the file's path.
func WriteFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Result is how a finished command went.
type Result struct {
	Stdout, Stderr string
	Code           int // the exit status; -1 when the command was killed by a signal
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// Run runs cmd to its end and returns its output and exit status. A command that could not
// be started fails the test.
func Run(t testing.TB, cmd *exec.Cmd) Result {
	t.Helper()
	var o, e testenv.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &o
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &e
	}
	DieWithTest(cmd)
	err := cmd.Run()
	r := Result{Stdout: o.String(), Stderr: e.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		t.Fatalf("running %s: %v", cmd.Path, err)
	}
	return r
}

// DieWithTest makes cmd receive SIGKILL when the test binary dies, so no process outlives
// a test that panicked or timed out.
func DieWithTest(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// Owner is the test a process or a directory belongs to: its end stops the process and
// removes the directory. A scenario whose steps are subtests passes its top-level test, so
// what one step starts lives on into the next; failures are still reported to the step's t.
type Owner interface {
	Cleanup(func())
	TempDir() string
	Errorf(format string, args ...any)
}

// Background is a process that runs while its owner test does: started with Start, stopped
// by the owner's cleanup (SIGTERM, then SIGKILL after 10 s) unless stopped earlier.
type Background struct {
	Name string
	Log  *testenv.Buffer // stdout and stderr, interleaved
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start starts cmd in the background with its output collected in Log; owner's end stops it.
func Start(t testing.TB, owner Owner, name string, cmd *exec.Cmd) *Background {
	t.Helper()
	b := &Background{Name: name, Log: &testenv.Buffer{}, cmd: cmd, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = b.Log
	}
	if cmd.Stderr == nil {
		cmd.Stderr = b.Log
	}
	DieWithTest(cmd)
	// A child the process left behind may hold its output pipe open; Wait gives up on it.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		b.err = cmd.Wait()
		close(b.done)
	}()
	owner.Cleanup(func() {
		// A failed test shows what each of its processes said last: the node agent's or
		// the leaf's reason is often the only explanation of a refusal the client saw.
		if f, ok := owner.(interface {
			Failed() bool
			Logf(string, ...any)
		}); ok && f.Failed() {
			f.Logf("the last output of %s:\n%s", name, lastLines(b.Log.String(), 40))
		}
		b.Stop(syscall.SIGTERM)
	})
	return b
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Stop sends sig and waits for the process to end (SIGKILL after 10 s); it returns how the
// process ended. Stopping a stopped process returns at once.
func (b *Background) Stop(sig syscall.Signal) error {
	select {
	case <-b.done:
		return b.err
	default:
	}
	_ = b.cmd.Process.Signal(sig)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
	return b.err
}

// Done is closed when the process has ended.
func (b *Background) Done() <-chan struct{} { return b.done }

// Err is how the process ended; valid once Done is closed.
func (b *Background) Err() error { return b.err }

// Exited reports whether the process has ended.
func (b *Background) Exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// WaitContext is a context for a command that gives up after d.
func WaitContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
