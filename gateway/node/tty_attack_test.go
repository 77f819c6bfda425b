package node_test

import (
	"crypto/rand"
	"fmt"
	"io"
	"os/exec"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/tetherproject/tether/internal/testenv"
)

// TestASessionsTerminalIsNotWritableByTheLoginsGroup: the node gave a session's terminal
// to the login's primary group with mode 0620, so every member of that group could write
// to it: where users share a primary group (users, staff), one of them could type fake
// prompts and terminal escape sequences into another's session. OpenSSH gives the
// terminal to the tty group (0620, for write(1)), or keeps it 0600 when there is none.
func TestASessionsTerminalIsNotWritableByTheLoginsGroup(t *testing.T) {
	n := startSSHNode(t)
	victim := n.user
	// mallory shares the victim's primary group, as on hosts where everyone is in users.
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := fmt.Sprintf("tm%x", b)
	if out, err := exec.Command(testenv.Command(t, "useradd"), "--no-create-home", "--gid", victim.Gid, "--shell", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command(testenv.Command(t, "userdel"), name).Run() })
	mallory, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}

	key := n.key(t, victim.Username)
	host, port := hostPort(t, n.agent)
	args := append(sshArgs(t, n.agent, key), "-p", port, "-tt", victim.Username+"@"+host,
		`echo "TTY=$(tty) $(stat -c '%G %a' "$(tty)")"; sleep 60`)
	cmd := exec.Command(testenv.Command(t, "ssh"), args...)
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		ptmx.Close()
	}()
	var out testenv.Buffer
	go func() { _, _ = io.Copy(&out, ptmx) }()
	ttyLine := regexp.MustCompile(`TTY=(/dev/pts/[0-9]+) (\S+) ([0-7]+)`)
	var m []string
	testenv.Eventually(t, 20*time.Second, func() error {
		if m = ttyLine.FindStringSubmatch(out.String()); m == nil {
			return fmt.Errorf("no terminal line in %q", out.String())
		}
		return nil
	})
	t.Logf("the session's terminal %s: group %s, mode %s", m[1], m[2], m[3])

	// mallory writes to the victim's terminal.
	muid, _ := strconv.Atoi(mallory.Uid)
	mgid, _ := strconv.Atoi(mallory.Gid)
	const injected = "INJECTED-BY-MALLORY"
	w := exec.Command("/bin/sh", "-c", `printf '%s' "$1" > "$2"`, "sh", injected, m[1])
	w.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(muid), Gid: uint32(mgid), Groups: []uint32{uint32(mgid)}}}
	wout, werr := w.CombinedOutput()
	time.Sleep(300 * time.Millisecond)
	if werr == nil || strings.Contains(out.String(), injected) {
		t.Fatalf("%s, of the victim's group %s, wrote to the victim's terminal %s (group %s, mode %s): err %v %s; the victim saw %q",
			name, victim.Gid, m[1], m[2], m[3], werr, wout, out.String())
	}
	if !strings.Contains(string(wout), "Permission denied") {
		t.Fatalf("the write failed for another reason than permissions: %s", wout)
	}
}
