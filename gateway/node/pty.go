package node

import (
	"fmt"
	"os"
	"os/exec"

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

// startPTY starts cmd on a new terminal of the given size, owned by the login (mode
// 0620, as OpenSSH leaves it), as the leader of a new session with the terminal as its
// controlling terminal. It returns the terminal's master side.
func startPTY(cmd *exec.Cmd, u *localUser, size *pty.Winsize) (*os.File, error) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("allocating a terminal: %w", err)
	}
	defer tty.Close()
	if os.Geteuid() == 0 {
		if err := os.Chown(tty.Name(), int(u.UID), int(u.GID)); err != nil {
			ptmx.Close()
			return nil, fmt.Errorf("giving the terminal to %s: %w", u.Name, err)
		}
		_ = os.Chmod(tty.Name(), 0o620)
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
