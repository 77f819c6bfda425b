package node

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// NetSubcommand is tetherd's hidden subcommand that makes one forwarding socket as the
// user it runs as: `node-net dial HOST:PORT` connects (ssh -L, -D, -W) and `node-net
// listen 127.0.0.1:PORT` listens (ssh -R). A root agent runs it as the login's user, with
// the session's credentials, so the socket belongs to the login as it does under
// OpenSSH: owner rules (iptables -m owner --uid-owner/--gid-owner, nftables meta
// skuid/skgid, which read the credentials the socket was opened with) apply to forwarded
// connections, and a service that trusts root's loopback connections does not see root.
// Rules by cgroup (a systemd user slice's IPAddressDeny) do not: the helper, like the
// session's programs, stays in the agent's cgroup. The helper hands the socket to the
// agent over file descriptor 3 (a Unix socket, SCM_RIGHTS) and exits; a failure is one
// short line on stderr and a non-zero exit.
const NetSubcommand = "node-net"

// netHelperFD is the helper's descriptor for the Unix socket back to the agent.
const netHelperFD = 3

// netHelperTimeout bounds a helper's whole run, from start to the socket received: its
// own dial timeout and the start of a process.
const netHelperTimeout = forwardDialTimeout + 5*time.Second

// ServeNet is what `tetherd node-net` runs with its arguments. It checks them again (the
// helper is a second way into the binary: it trusts no caller), dials or listens as the
// user it runs as, and hands the socket to the agent on descriptor 3. Its error is a
// short reason the agent shows the user ("connection refused").
func ServeNet(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: node-net dial HOST:PORT | node-net listen 127.0.0.1:PORT")
	}
	op, addr := args[0], args[1]
	switch op {
	case "dial":
		if err := checkDialAddr(addr); err != nil {
			return err
		}
	case "listen":
		if _, err := listenPort(addr); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown operation %q (dial or listen)", op)
	}
	// Check the way back before making anything: a socket no one receives is no use.
	back, err := net.FileConn(os.NewFile(netHelperFD, "agent"))
	if err != nil {
		return errors.New("descriptor 3 is not the agent's socket: node-net is run by the node agent only")
	}
	defer back.Close()
	uc, ok := back.(*net.UnixConn)
	if !ok {
		return errors.New("descriptor 3 is not the agent's socket: node-net is run by the node agent only")
	}
	var f *os.File
	if op == "dial" {
		c, err := net.DialTimeout("tcp", addr, forwardDialTimeout)
		if err != nil {
			return errors.New(dialReason(err))
		}
		defer c.Close()
		f, err = c.(*net.TCPConn).File()
		if err != nil {
			return errors.New("cannot hand the connection over")
		}
	} else {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return errors.New(dialReason(err))
		}
		defer l.Close()
		f, err = l.(*net.TCPListener).File()
		if err != nil {
			return errors.New("cannot hand the listener over")
		}
	}
	defer f.Close()
	_ = uc.SetWriteDeadline(time.Now().Add(netHelperTimeout))
	if _, _, err := uc.WriteMsgUnix([]byte{1}, syscall.UnixRights(int(f.Fd())), nil); err != nil {
		return errors.New("cannot hand the socket to the agent")
	}
	return nil
}

// checkDialAddr is the rule for a direct-tcpip destination, host:port: a port from 1 to
// 65535 and a host that is an IP address (an IPv6 one may name its zone) or a DNS name
// (letters, digits, '.', '-', '_', not starting with '-'; at most 253 bytes). The agent
// checks it before it starts a helper, the helper again.
func checkDialAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("the destination is not host:port")
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("the destination port %q is not a number from 1 to 65535", port)
	}
	if ip, zone, ok := strings.Cut(host, "%"); ok {
		if a := net.ParseIP(ip); a != nil && a.To4() == nil && isHostName(zone) {
			return nil
		}
	} else if net.ParseIP(host) != nil || isHostName(host) {
		return nil
	}
	return errors.New("the destination host is not an IP address or a host name")
}

// isHostName: letters, digits, '.', '-' and '_', not starting with '-', 1 to 253 bytes.
func isHostName(s string) bool {
	if s == "" || len(s) > 253 || s[0] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// listenPort is the port of a -R listener's address, which must be 127.0.0.1:PORT
// (GatewayPorts no: loopback only).
func listenPort(addr string) (uint32, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		return 0, errors.New("a remote forward listens on 127.0.0.1:PORT only")
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("the listen port %q is not a number from 0 to 65535", port)
	}
	return uint32(p), nil
}

// dialReason is the short reason of a failed dial or listen, as sshd shows strerror:
// "connection refused", "no such host"; never the error chain.
func dialReason(err error) string {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsNotFound {
			return "no such host"
		}
		if dnsErr.IsTimeout {
			return "name resolution timed out"
		}
		return "name resolution failed"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	return "failed"
}

// helperError is a helper's failure: the reason it gave, fit to show the user.
type helperError struct{ reason string }

func (e *helperError) Error() string { return e.reason }

// dialAs connects to addr (checked with checkDialAddr) as u, for direct-tcpip. A root
// agent runs the net helper as u (the same credentials as u's session: uid, gid,
// groups, home, an empty environment) and receives the connection it made; an agent that
// is not root can only serve its own user (lookupUser refuses any other login) and
// dials itself.
//
// Nothing the helper hands back is trusted: it runs as the login, who may trace it. Only
// the first descriptor is kept, and only a TCP connection is accepted; the helper is
// killed after netHelperTimeout.
func (a *Agent) dialAs(u *localUser, addr string) (net.Conn, error) {
	if os.Geteuid() != 0 {
		c, err := net.DialTimeout("tcp", addr, forwardDialTimeout)
		if err != nil {
			return nil, &helperError{dialReason(err)}
		}
		return c, nil
	}
	f, err := a.runNetHelper(u, "dial", addr)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("the net helper handed back no connection: %w", err)
	}
	if _, ok := c.(*net.TCPConn); !ok {
		c.Close()
		return nil, fmt.Errorf("the net helper handed back a %T, not a TCP connection", c)
	}
	return c, nil
}

// listenAs listens on addr, 127.0.0.1:PORT, as u for tcpip-forward, as dialAs dials: the
// helper's listener is accepted only on 127.0.0.1 and at the asked port (any port for 0).
func (a *Agent) listenAs(u *localUser, addr string) (net.Listener, error) {
	want, err := listenPort(addr)
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, &helperError{dialReason(err)}
		}
		return l, nil
	}
	f, err := a.runNetHelper(u, "listen", addr)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("the net helper handed back no listener: %w", err)
	}
	ta, ok := l.Addr().(*net.TCPAddr)
	if !ok || !ta.IP.Equal(net.IPv4(127, 0, 0, 1)) || (want != 0 && uint32(ta.Port) != want) {
		l.Close()
		return nil, fmt.Errorf("the net helper handed back a listener on %s, not on %s", l.Addr(), addr)
	}
	return l, nil
}

// runNetHelper runs `NetCommand op addr` as u and returns the descriptor it sent back.
func (a *Agent) runNetHelper(u *localUser, op, addr string) (*os.File, error) {
	// Both ends close on exec: only the child's copy, moved to descriptor 3 by
	// ExtraFiles, reaches the helper; no session program started meanwhile gets either.
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("making the net helper's socket pair: %w", err)
	}
	mine := os.NewFile(uintptr(fds[0]), "node-net agent")
	theirs := os.NewFile(uintptr(fds[1]), "node-net helper")
	back, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		theirs.Close()
		return nil, fmt.Errorf("opening the net helper's socket: %w", err)
	}
	defer back.Close()

	args := append(slices.Clone(a.cfg.NetCommand), op, addr)
	cmd := u.command(args[0], args, []string{})
	cmd.ExtraFiles = []*os.File{theirs}
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 512}
	cmd.WaitDelay = time.Second
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		return nil, fmt.Errorf("starting the net helper %s: %w", args[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Whatever happens below, the helper is gone (and its stderr complete) when this
	// returns: it has a second to exit after its socket arrived or its end closed.
	waited := false
	wait := func() {
		if waited {
			return
		}
		waited = true
		select {
		case <-exited:
		case <-time.After(time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	defer wait()

	uc := back.(*net.UnixConn)
	_ = uc.SetReadDeadline(time.Now().Add(netHelperTimeout))
	buf := make([]byte, 1)
	oob := make([]byte, syscall.CmsgSpace(4))
	n, oobn, _, _, rerr := uc.ReadMsgUnix(buf, oob)
	var got []int
	if msgs, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			if rights, err := syscall.ParseUnixRights(&m); err == nil {
				got = append(got, rights...)
			}
		}
	}
	if n == 1 && len(got) > 0 {
		for _, fd := range got[1:] {
			syscall.Close(fd)
		}
		return os.NewFile(uintptr(got[0]), "forwarded socket"), nil
	}
	for _, fd := range got {
		syscall.Close(fd)
	}
	if errors.Is(rerr, os.ErrDeadlineExceeded) {
		_ = cmd.Process.Kill()
		return nil, &helperError{"timed out"}
	}
	// The helper ended without a socket: its reason is on stderr.
	wait()
	return nil, &helperError{helperReason(stderr.Bytes())}
}

// helperReason is the first line of what a helper wrote on stderr, printable ASCII only
// and at most 120 bytes: it runs as the login, so it is the login's word, fit for the
// login's eyes and a log line but nothing more.
func helperReason(out []byte) string {
	line, _, _ := strings.Cut(string(out), "\n")
	var b strings.Builder
	for _, r := range line {
		if r >= 0x20 && r < 0x7f && b.Len() < 120 {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "failed"
	}
	return b.String()
}

// limitedWriter keeps the first n bytes written to it and drops the rest.
type limitedWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(l.n, len(p))
		l.n -= k
		_, _ = l.w.Write(p[:k])
	}
	return len(p), nil
}
