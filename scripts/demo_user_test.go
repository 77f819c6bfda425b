// Package scripts holds tests of the repository's shell scripts.
package scripts

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeUsers runs scripts/demo-user.sh with id, useradd, usermod and userdel replaced by
// scripts acting on files in a directory, so the logic runs without root.
type fakeUsers struct {
	t                 *testing.T
	state, users, log string
	env               []string
}

func newFakeUsers(t *testing.T) *fakeUsers {
	dir := t.TempDir()
	f := &fakeUsers{t: t, state: filepath.Join(dir, "state"), users: filepath.Join(dir, "users"), log: filepath.Join(dir, "log")}
	if err := os.MkdirAll(f.users, 0o700); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o700); err != nil {
		t.Fatal(err)
	}
	last := `for u; do :; done; `
	for name, body := range map[string]string{
		"id":      `test -e "` + f.users + `/$1"`,
		"useradd": last + `test ! -e "` + f.users + `/$u" || exit 9; touch "` + f.users + `/$u"; echo "add $u" >>"` + f.log + `"`,
		"usermod": `exit 0`,
		"userdel": last + `rm "` + f.users + `/$u" || exit 6; echo "del $u" >>"` + f.log + `"`,
	} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	f.env = append(os.Environ(), "DEMO_USER_DIR="+f.state, "DEMO_USER=visitor",
		"DEMO_ID="+filepath.Join(bin, "id"), "DEMO_USERADD="+filepath.Join(bin, "useradd"),
		"DEMO_USERMOD="+filepath.Join(bin, "usermod"), "DEMO_USERDEL="+filepath.Join(bin, "userdel"))
	return f
}

// demo is a running process standing for one demo.
func (f *fakeUsers) demo() *exec.Cmd {
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

func (f *fakeUsers) run(op string, d *exec.Cmd) string {
	f.t.Helper()
	cmd := exec.Command("./demo-user.sh", op, fmt.Sprint(d.Process.Pid))
	cmd.Env = f.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		f.t.Fatalf("demo-user.sh %s: %v\n%s", op, err, out)
	}
	return string(out)
}

func (f *fakeUsers) exists() bool {
	_, err := os.Stat(filepath.Join(f.users, "visitor"))
	return err == nil
}

func (f *fakeUsers) history() string {
	data, _ := os.ReadFile(f.log)
	return strings.ReplaceAll(strings.TrimSpace(string(data)), "\n", "; ")
}

func TestDemoUserIsSharedBetweenDemos(t *testing.T) {
	t.Run("the_last_demo_to_stop_removes_the_user_a_demo_created", func(t *testing.T) {
		f := newFakeUsers(t)
		a, b := f.demo(), f.demo()
		f.run("acquire", a)
		f.run("acquire", b)
		if out := f.run("release", a); !f.exists() || !strings.Contains(out, "1 other demo(s) still use it") {
			t.Fatalf("the first demo to stop removed the user the other still uses (%s): %s", f.history(), out)
		}
		f.run("release", b)
		if f.exists() || f.history() != "add visitor; del visitor" {
			t.Fatalf("after both stopped: exists %v, history %q", f.exists(), f.history())
		}
	})
	t.Run("a_user_that_existed_before_is_never_removed", func(t *testing.T) {
		f := newFakeUsers(t)
		if err := os.WriteFile(filepath.Join(f.users, "visitor"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		a := f.demo()
		f.run("acquire", a)
		f.run("release", a)
		if !f.exists() || f.history() != "" {
			t.Fatalf("a pre-existing user: exists %v, history %q", f.exists(), f.history())
		}
	})
	t.Run("a_demo_killed_without_cleanup_does_not_keep_the_user_forever", func(t *testing.T) {
		f := newFakeUsers(t)
		killed, b := f.demo(), f.demo()
		f.run("acquire", killed)
		f.run("acquire", b)
		_ = killed.Process.Kill()
		_ = killed.Wait()
		f.run("release", b)
		if f.exists() {
			t.Fatalf("the user outlived every live demo: %q", f.history())
		}
	})
	t.Run("a_reused_pid_is_not_the_demo_that_held_the_user", func(t *testing.T) {
		f := newFakeUsers(t)
		a, b := f.demo(), f.demo()
		f.run("acquire", a)
		// b's PID recorded with another start time: the process behind it is not the holder.
		holder := filepath.Join(f.state, "visitor", "holders", fmt.Sprint(b.Process.Pid))
		if err := os.WriteFile(holder, []byte("1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		f.run("release", a)
		if f.exists() {
			t.Fatalf("a stale holder with a reused PID kept the user: %q", f.history())
		}
	})
	t.Run("demos_starting_and_stopping_at_once_leave_no_user_and_never_add_it_twice", func(t *testing.T) {
		f := newFakeUsers(t)
		var wg sync.WaitGroup
		for range 8 {
			d := f.demo()
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.run("acquire", d)
				f.run("release", d)
			}()
		}
		wg.Wait()
		if f.exists() {
			t.Fatalf("the user outlived every demo: %q", f.history())
		}
		// Under the lock, adds and deletes alternate.
		for i, op := range strings.Split(f.history(), "; ") {
			if want := []string{"add visitor", "del visitor"}[i%2]; op != want {
				t.Fatalf("history %q: entry %d is %q, want %q", f.history(), i, op, want)
			}
		}
	})
	t.Run("bad_arguments_say_how_to_call_it", func(t *testing.T) {
		f := newFakeUsers(t)
		cmd := exec.Command("./demo-user.sh", "acquire", "not-a-pid")
		cmd.Env = f.env
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "usage:") {
			t.Fatalf("%v: %s", err, out)
		}
	})
}
