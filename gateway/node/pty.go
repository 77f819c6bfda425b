package node

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"

	"github.com/creack/pty"
)

// ptyRequest is the payload of a "pty-req" request (RFC 4254 6.2).
type ptyRequest struct {
	Term                 string
	Cols, Rows, PxW, PxH uint32
	Modes                string
}

// windowChange is the payload of a "window-change" request (RFC 4254 6.7).
type windowChange struct {
	Cols, Rows, PxW, PxH uint32
}

func winsize(cols, rows, pxw, pxh uint32) *pty.Winsize {
	clamp := func(v uint32) uint16 { return uint16(min(v, 0xffff)) }
	return &pty.Winsize{Cols: clamp(cols), Rows: clamp(rows), X: clamp(pxw), Y: clamp(pxh)}
}

// ttyGroup is the group and mode a session's terminal gets, as OpenSSH gives them: the
// tty group with 0620 (write(1) and wall run setgid tty), or, on a host without that
// group, the login's primary group with 0600. Never the login's group with group
// write: where logins share a primary group, the others could write into the terminal.
func ttyGroup(u *localUser) (int, os.FileMode) {
	if g, err := user.LookupGroup("tty"); err == nil {
		if gid, err := strconv.Atoi(g.Gid); err == nil {
			return gid, 0o620
		}
	}
	return int(u.GID), 0o600
}

// startPTY starts cmd on a new terminal of the given size, owned by the login (with
// ttyGroup's group and mode), as the leader of a new session with the terminal as its
// controlling terminal. It returns the terminal's master side.
func startPTY(cmd *exec.Cmd, u *localUser, size *pty.Winsize) (*os.File, error) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("allocating a terminal: %w", err)
	}
	defer tty.Close()
	if os.Geteuid() == 0 {
		gid, mode := ttyGroup(u)
		if err := os.Chown(tty.Name(), int(u.UID), gid); err != nil {
			ptmx.Close()
			return nil, fmt.Errorf("giving the terminal to %s: %w", u.Name, err)
		}
		if err := os.Chmod(tty.Name(), mode); err != nil {
			ptmx.Close()
			return nil, fmt.Errorf("giving the terminal to %s: %w", u.Name, err)
		}
	}
	if err := pty.Setsize(ptmx, size); err != nil {
		ptmx.Close()
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr.Setsid = true
	cmd.SysProcAttr.Setctty = true
	cmd.SysProcAttr.Ctty = 0 // the child's stdin, the terminal
	if err := cmd.Start(); err != nil {
		ptmx.Close()
		return nil, err
	}
	return ptmx, nil
}
