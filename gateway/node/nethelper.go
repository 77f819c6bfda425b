package node

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// NetSubcommand is tetherd's hidden subcommand that makes forwarding sockets as the user
// it runs as: `node-net serve` answers one SSH connection's dial requests (ssh -L, -D, -W;
// netdialer.go) for the connection's life; `node-net dial HOST:PORT` connects once and
// exits; `node-net
// listen 127.0.0.1:PORT` listens (ssh -R), then accepts the listener's connections, until
// the agent closes its end. A root agent runs it as the login's user, with the session's
// credentials, so the sockets belong to the login as they do under OpenSSH: owner rules
// (iptables -m owner --uid-owner/--gid-owner, nftables meta skuid/skgid, which read the
// credentials a socket was opened with) apply to forwarded connections, and a service
// that trusts root's loopback connections does not see root. Rules by cgroup (a systemd
// user slice's IPAddressDeny) do not: the helper, like the session's programs, stays in
// the agent's cgroup. The helper hands each socket to the agent over file descriptor 3 (a
// Unix socket, SCM_RIGHTS); a failure is one short line on stderr and a non-zero exit.
const NetSubcommand = "node-net"

// netHelperFD is the helper's descriptor for the Unix socket back to the agent.
const netHelperFD = 3

// netHelperTimeout bounds a helper's run from its start to its socket received: its own
// dial timeout and the start of a process.
const netHelperTimeout = forwardDialTimeout + 5*time.Second

// ServeNet is what `tetherd node-net` runs with its arguments. It checks them again (the
// helper is a second way into the binary: it trusts no caller), dials or listens (and
// accepts) as the user it runs as, and hands the sockets to the agent on descriptor 3.
// Its error is a short reason the agent shows the user ("connection refused").
func ServeNet(args []string) error {
	serve := len(args) == 1 && args[0] == "serve"
	if len(args) != 2 && !serve {
		return errors.New("usage: node-net serve | node-net dial HOST:PORT | node-net listen 127.0.0.1:PORT")
	}
	op, addr := args[0], ""
	if !serve {
		addr = args[1]
	}
	switch op {
	case "serve":
		if !serve {
			return errors.New("usage: node-net serve (no arguments)")
		}
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
	if op == "serve" {
		return serveDials(uc)
	}
	if op == "dial" {
		c, err := net.DialTimeout("tcp", addr, forwardDialTimeout)
		if err != nil {
			return errors.New(dialReason(err))
		}
		defer c.Close()
		return handOver(uc, c.(*net.TCPConn))
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.New(dialReason(err))
	}
	defer l.Close()
	if err := handOver(uc, l.(*net.TCPListener)); err != nil {
		return err
	}
	return serveListener(uc, l.(*net.TCPListener))
}

// handOver sends s's descriptor to the agent. It goes through SyscallConn, not File:
// File's descriptor, once read with Fd, puts the socket's open file (the one the agent
// receives, and the listener this helper still accepts on) into blocking mode, where
// closing the listener no longer ends a pending accept.
func handOver(uc *net.UnixConn, s syscall.Conn) error {
	rc, err := s.SyscallConn()
	if err != nil {
		return errors.New("cannot hand the socket over")
	}
	_ = uc.SetWriteDeadline(time.Now().Add(netHelperTimeout))
	var werr error
	if err := rc.Control(func(fd uintptr) {
		_, _, werr = uc.WriteMsgUnix([]byte{1}, syscall.UnixRights(int(fd)), nil)
	}); err != nil || werr != nil {
		return errors.New("cannot hand the socket to the agent")
	}
	return nil
}

// serveListener accepts l's connections, as the helper's user like sshd's user child,
// and hands each to the agent, until the agent closes its end (the -R forward ended).
func serveListener(uc *net.UnixConn, l *net.TCPListener) error {
	go func() {
		// The agent sends nothing: a read returns when it closed its end.
		_, _ = uc.Read(make([]byte, 1))
		l.Close()
	}()
	for {
		c, err := l.AcceptTCP()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return errors.New(dialReason(err))
		}
		err = handOver(uc, c)
		c.Close()
		if err != nil {
			return nil // the agent is gone
		}
	}
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

// listenAs listens on addr, 127.0.0.1:PORT, as u for tcpip-forward: a root agent runs the
// net helper as u (the same credentials as u's session: uid, gid, groups, home, an empty
// environment), as for a connection's dials (connDialer). The
// helper stays for the listener's life and accepts its connections as u too (as sshd's
// user child does), handing each to the agent; closing the listener ends the helper. The
// helper's listener is taken only on 127.0.0.1 and at the asked port (any port for 0),
// each connection only if it is a TCP connection on that address.
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
	h, err := a.startNetHelper(u, syscall.SOCK_STREAM, "listen", addr)
	if err != nil {
		return nil, err
	}
	f, err := h.receive(time.Now().Add(netHelperTimeout))
	if err != nil {
		h.stop()
		return nil, err
	}
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		h.stop()
		return nil, fmt.Errorf("the net helper handed back no listener: %w", err)
	}
	// The agent keeps no copy: the listening socket lives as long as the helper.
	defer l.Close()
	ta, ok := l.Addr().(*net.TCPAddr)
	if !ok || !ta.IP.Equal(net.IPv4(127, 0, 0, 1)) || (want != 0 && uint32(ta.Port) != want) {
		h.stop()
		return nil, fmt.Errorf("the net helper handed back a listener on %s, not on %s", l.Addr(), addr)
	}
	return &helperListener{h: h, addr: ta}, nil
}

// helperListener is a -R listener whose socket a net helper holds and accepts on.
type helperListener struct {
	h    *netHelper
	addr *net.TCPAddr
}

// Accept returns the next connection the helper accepted; an error ends the listener
// (the helper's end closed, or it handed back something that is not a connection to
// this listener).
func (l *helperListener) Accept() (net.Conn, error) {
	f, err := l.h.receive(time.Time{})
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("the net helper handed back no connection: %w", err)
	}
	// A connection, not the listening socket itself (which has no peer).
	la, ok := c.LocalAddr().(*net.TCPAddr)
	ra, connected := c.RemoteAddr().(*net.TCPAddr)
	if _, tcp := c.(*net.TCPConn); !tcp || !ok || !connected || ra == nil || !la.IP.Equal(l.addr.IP) || la.Port != l.addr.Port {
		c.Close()
		return nil, fmt.Errorf("the net helper handed back a connection on %s, not one to %s", c.LocalAddr(), l.addr)
	}
	return c, nil
}

// Close ends the helper, and with it the listening socket: the helper exits when its end
// of the socket pair closes (within milliseconds), else it is killed after a second.
func (l *helperListener) Close() error {
	l.h.uc.Close()
	go l.h.stop()
	return nil
}

func (l *helperListener) Addr() net.Addr { return l.addr }

// netHelper is a running `NetCommand op addr`: the agent's end of its socket pair and
// its process.
type netHelper struct {
	uc     *net.UnixConn
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait returned
	stderr bytes.Buffer  // read only after exited
}

// startNetHelper runs `NetCommand args...` as u with its socket pair (of sockType) on
// descriptor 3.
func (a *Agent) startNetHelper(u *localUser, sockType int, args ...string) (*netHelper, error) {
	select {
	case a.netHelpers <- struct{}{}:
	default:
		a.log.Warn("refused a port forward: max_net_helpers forwarding helpers are running", "max_net_helpers", cap(a.netHelpers), "login", u.Name)
		return nil, fmt.Errorf("the node runs %d forwarding helpers, its max_net_helpers; try again later", cap(a.netHelpers))
	}
	started := false
	defer func() {
		if !started {
			<-a.netHelpers
		}
	}()
	// Both ends close on exec: only the child's copy, moved to descriptor 3 by
	// ExtraFiles, reaches the helper; no session program started meanwhile gets either.
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, sockType, 0)
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
	defer theirs.Close()
	back, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		return nil, fmt.Errorf("opening the net helper's socket: %w", err)
	}
	h := &netHelper{uc: back.(*net.UnixConn), exited: make(chan struct{})}
	args = append(slices.Clone(a.cfg.NetCommand), args...)
	h.cmd = u.command(args[0], args, []string{})
	h.cmd.ExtraFiles = []*os.File{theirs}
	h.cmd.Stderr = &limitedWriter{w: &h.stderr, n: 512}
	h.cmd.WaitDelay = time.Second
	if err := h.cmd.Start(); err != nil {
		back.Close()
		return nil, fmt.Errorf("starting the net helper %s: %w", args[0], err)
	}
	started = true
	go func() {
		_ = h.cmd.Wait()
		<-a.netHelpers
		close(h.exited)
	}()
	return h, nil
}

// receive reads the helper's next message and returns the first descriptor it carried
// (any others are closed). A message without one, or the helper's end closing, is the
// helper's failure: its reason from stderr once it exited. deadline zero means none.
func (h *netHelper) receive(deadline time.Time) (*os.File, error) {
	_ = h.uc.SetReadDeadline(deadline)
	buf := make([]byte, 1)
	oob := make([]byte, syscall.CmsgSpace(4))
	n, oobn, _, _, rerr := h.uc.ReadMsgUnix(buf, oob)
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
		h.kill()
		return nil, &helperError{"timed out"}
	}
	if errors.Is(rerr, net.ErrClosed) {
		return nil, net.ErrClosed // the agent closed the listener
	}
	h.stop()
	return nil, &helperError{helperReason(h.stderr.Bytes())}
}

// stop closes the agent's end and gives the helper a second to exit before it is killed;
// it returns once the helper was reaped.
func (h *netHelper) stop() {
	h.uc.Close()
	select {
	case <-h.exited:
	case <-time.After(time.Second):
		_ = h.cmd.Process.Kill()
		<-h.exited
	}
}

// kill ends the helper now; it is reaped in the background.
func (h *netHelper) kill() {
	h.uc.Close()
	select {
	case <-h.exited:
	default:
		_ = h.cmd.Process.Kill()
	}
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
