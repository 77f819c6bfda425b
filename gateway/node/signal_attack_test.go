package node_test

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestNoSignalReachesAProgramThatEnded: the node (root) sent a client's signal request to
// the process group of the session's program even after the program had ended and been
// reaped, while the terminal's last output was still forwarded (up to two seconds when
// another process keeps the terminal open). Once that group has emptied, its id is free:
// a process of another user that became a group leader with that pid would get the
// signal. OpenSSH refuses a signal when the session has no program.
func TestNoSignalReachesAProgramThatEnded(t *testing.T) {
	n := startSSHNode(t)
	c := n.dial(t, n.key(t, n.user.Username), n.user.Username)
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	out, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// A process immune to the hangup keeps the terminal open; the shell ends at once.
	if err := s.Start(`T=$(tty); (trap "" HUP; exec sleep 5) <"$T" >"$T" 2>&1 & sleep 0.3; echo ready`); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read %q: %v", line, err)
		}
		if strings.HasPrefix(line, "ready") {
			break
		}
	}
	time.Sleep(500 * time.Millisecond) // the shell has ended; its output is still being drained
	ok, err := s.SendRequest("signal", true, ssh.Marshal(struct{ Signal string }{"TERM"}))
	if err != nil {
		// The signal went to the ended program's group, killed the process holding the
		// terminal, and the session ended before the reply.
		t.Fatalf("signal request: %v: the node signalled the group of a program that had ended\n%s", err, n.log.String())
	}
	if ok {
		t.Fatal("the node accepted a signal for a program that had ended: it signalled a process group that may be another's by now")
	}
	if err := s.Wait(); err != nil {
		t.Fatalf("the session's end: %v, want exit status 0", err)
	}
}
