package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// growPipe asks the kernel for a size-byte buffer on f when f is a pipe, as OpenSSH's
// ProxyCommand stdin and stdout are, and does nothing otherwise (a terminal, a socket)
// or when the kernel refuses (above /proc/sys/fs/pipe-max-size, or an unprivileged user
// past pipe-user-pages-soft): the pipe keeps its 64 KiB and the copy still works.
func growPipe(f *os.File, size int) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, size)
	})
}
