package node

import "golang.org/x/sys/unix"

// waitExited returns once process pid has ended, leaving it to be reaped (WNOWAIT): its
// pid stays taken until then.
func waitExited(pid int) {
	var info unix.Siginfo
	for unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
	}
}
