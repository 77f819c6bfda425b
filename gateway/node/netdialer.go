package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// One dial helper per SSH connection. A root agent makes the sockets of ssh -L, -D and -W
// as the login (nethelper.go); starting `node-net dial` for each connection cost a process
// start (45–72 ms), which a browser over -D paid for every connection it opened. Now the
// first direct-tcpip of a connection starts `node-net serve` as the connection's login,
// and later ones ask it over its socket pair (SOCK_SEQPACKET: one message a request or an
// answer) for a connection each:
//
//	request (agent → helper): id (4 bytes, big-endian), then HOST:PORT (at most 300 bytes)
//	answer (helper → agent):  id, status (0: the socket is attached; 1: refused), then a
//	                          reason of at most 120 bytes for a refusal
//
// The helper checks every address again (it trusts no caller), dials each request on its
// own (a destination that hangs holds up no other), and answers at most maxDialsInFlight
// at once (more are refused, saying so). It lives as long as the connection, or until it
// was idle for netHelperIdle, and is never shared: a connection has one login.
//
// The helper runs as the login, who may trace it and answer anything: an answer for no
// request asked, a malformed message or one without its socket kills it and fails every
// dial waiting on it (the next dial starts a new helper); what a socket answer carries is
// checked as before (a TCP connection, nothing else).

const (
	// maxDialsInFlight bounds the dials one helper makes at once.
	maxDialsInFlight = 64
	// maxDialRequest bounds a request message: the id and HOST:PORT (a 253-byte name, a
	// colon and 5 digits, or an IPv6 address with its zone).
	maxDialRequest = 4 + 300
	// maxDialReason bounds a refusal's reason.
	maxDialReason = 120
	// netHelperIdle is how long a connection's dial helper stays without a dial.
	netHelperIdle = time.Minute
)

// dialAnswer is what a dial helper answered one request.
type dialAnswer struct {
	f   *os.File
	err error
}

// connDialer makes one SSH connection's direct-tcpip sockets as its login.
type connDialer struct {
	a *Agent
	u *localUser

	mu      sync.Mutex
	h       *netHelper // nil before the first dial, after an idle period or a failure
	pending map[uint32]chan dialAnswer
	next    uint32 // the last request id sent
	idle    *time.Timer
	closed  bool
	started int // helpers started, for tests
}

// dial connects to addr (checked with checkDialAddr) as the login. An agent that is not
// root can only serve its own user (lookupUser refuses any other login) and dials itself.
func (d *connDialer) dial(addr string) (net.Conn, error) {
	if os.Geteuid() != 0 {
		c, err := net.DialTimeout("tcp", addr, forwardDialTimeout)
		if err != nil {
			return nil, &helperError{dialReason(err)}
		}
		return c, nil
	}
	h, id, ch, err := d.ask()
	if err != nil {
		return nil, err
	}
	req := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(addr)), id)
	req = append(req, addr...)
	var ans dialAnswer
	timeout := time.NewTimer(netHelperTimeout)
	defer timeout.Stop()
	if _, err := h.uc.Write(req); err != nil {
		ans.err = &helperError{"the net helper is gone"}
	} else {
		select {
		case ans = <-ch:
		case <-timeout.C:
			ans.err = &helperError{"timed out"}
		}
	}
	d.done(id)
	if ans.err != nil {
		return nil, ans.err
	}
	defer ans.f.Close()
	c, err := net.FileConn(ans.f)
	if err != nil {
		return nil, fmt.Errorf("the net helper handed back no connection: %w", err)
	}
	if _, ok := c.(*net.TCPConn); !ok {
		c.Close()
		return nil, fmt.Errorf("the net helper handed back a %T, not a TCP connection", c)
	}
	if err := connectedTo(c, addr); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// connectedTo checks that c, a TCP socket from the helper, is connected to addr: to its
// port, and to its address when addr names one (a host name's address is the helper's
// resolver's). A listening socket (no peer) is refused: net.FileConn takes one as a
// *net.TCPConn.
func connectedTo(c net.Conn, addr string) error {
	host, port, _ := net.SplitHostPort(addr)
	ra, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok || ra == nil || ra.Port == 0 {
		return errors.New("the net helper handed back a socket that is not connected")
	}
	want := net.ParseIP(host)
	if ip, _, zoned := strings.Cut(host, "%"); zoned {
		want = net.ParseIP(ip)
	}
	if strconv.Itoa(ra.Port) != port || (want != nil && !want.Equal(ra.IP)) {
		return fmt.Errorf("the net helper handed back a connection to %s, not to %s", ra, addr)
	}
	return nil
}

// ask registers a request, starting the helper if none runs.
func (d *connDialer) ask() (*netHelper, uint32, chan dialAnswer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, 0, nil, errors.New("the connection ended")
	}
	if d.idle != nil {
		d.idle.Stop()
	}
	if d.h == nil {
		h, err := d.a.startNetHelper(d.u, syscall.SOCK_SEQPACKET, "serve")
		if err != nil {
			return nil, 0, nil, err
		}
		d.h, d.pending = h, map[uint32]chan dialAnswer{}
		d.started++
		go d.read(h)
	}
	d.next++
	ch := make(chan dialAnswer, 1)
	d.pending[d.next] = ch
	return d.h, d.next, ch, nil
}

// done forgets request id (answered or abandoned); a helper with nothing left to do is
// stopped after netHelperIdle.
func (d *connDialer) done(id uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.pending, id)
	if h := d.h; h != nil && len(d.pending) == 0 && !d.closed {
		d.idle = time.AfterFunc(netHelperIdle, func() {
			d.mu.Lock()
			quiet := d.h == h && len(d.pending) == 0
			if quiet {
				d.h = nil
			}
			d.mu.Unlock()
			if quiet {
				h.stop()
			}
		})
	}
}

// read delivers h's answers to the dials waiting for them until h ends or breaks the
// protocol; then every dial still waiting on h fails.
func (d *connDialer) read(h *netHelper) {
	buf := make([]byte, 4+1+maxDialReason+1)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	var why error
	for why == nil {
		n, oobn, flags, _, err := h.uc.ReadMsgUnix(buf, oob)
		fds := unixRights(oob[:oobn])
		switch {
		case err != nil || n == 0:
			why = errHelperEnded
		case flags&(syscall.MSG_TRUNC|syscall.MSG_CTRUNC) != 0:
			why = errors.New("the net helper sent a malformed answer")
		default:
			id, status, reason, err := parseDialAnswer(buf[:n])
			if err != nil {
				why = err
				break
			}
			why = d.deliver(id, status, reason, fds)
			fds = nil // deliver owns them
		}
		closeFDs(fds)
	}
	h.stop()
	if errors.Is(why, errHelperEnded) {
		if r := helperReason(h.stderr.Bytes()); r != "" && r != "failed" {
			why = &helperError{r}
		} else {
			why = &helperError{"the net helper ended"}
		}
	}
	d.mu.Lock()
	if d.h == h {
		d.h = nil
	}
	waiting := d.pending
	d.pending = map[uint32]chan dialAnswer{}
	d.mu.Unlock()
	for _, ch := range waiting {
		ch <- dialAnswer{err: why}
	}
}

var errHelperEnded = errors.New("the net helper ended")

// parseDialAnswer reads one answer message: the request id, the status (0: a socket is
// attached, 1: refused) and a refusal's reason (at most maxDialReason bytes, none for a
// socket).
func parseDialAnswer(msg []byte) (id uint32, status byte, reason []byte, err error) {
	if len(msg) < 5 || len(msg) > 5+maxDialReason {
		return 0, 0, nil, errors.New("the net helper sent a malformed answer")
	}
	id, status, reason = binary.BigEndian.Uint32(msg), msg[4], msg[5:]
	if status > 1 || (status == 0 && len(reason) > 0) {
		return 0, 0, nil, errors.New("the net helper sent a malformed answer")
	}
	return id, status, reason, nil
}

// parseDialRequest reads one request message: the request id and HOST:PORT, checked as
// every destination is (checkDialAddr).
func parseDialRequest(msg []byte) (id uint32, addr string, err error) {
	if len(msg) < 5 || len(msg) > maxDialRequest {
		return 0, "", errors.New("a malformed dial request")
	}
	id, addr = binary.BigEndian.Uint32(msg), string(msg[4:])
	return id, addr, checkDialAddr(addr)
}

// deliver hands one answer to the dial waiting for it. An answer for a request that timed
// out is dropped; one for a request never asked, or of the wrong shape, is a broken
// protocol (the error returned).
func (d *connDialer) deliver(id uint32, status byte, reason []byte, fds []int) error {
	d.mu.Lock()
	ch, ok := d.pending[id]
	delete(d.pending, id)
	asked := id != 0 && id <= d.next
	d.mu.Unlock()
	if !ok {
		closeFDs(fds)
		if asked {
			return nil // its dial gave up waiting
		}
		return fmt.Errorf("the net helper answered request %d, which was not asked", id)
	}
	switch {
	case status == 0 && len(fds) == 1 && len(reason) == 0:
		ch <- dialAnswer{f: os.NewFile(uintptr(fds[0]), "forwarded socket")}
		return nil
	case status == 1 && len(fds) == 0:
		ch <- dialAnswer{err: &helperError{helperReason(reason)}}
		return nil
	}
	closeFDs(fds)
	err := errors.New("the net helper sent a malformed answer")
	ch <- dialAnswer{err: err}
	return err
}

// close ends the helper with the connection.
func (d *connDialer) close() {
	d.mu.Lock()
	d.closed = true
	h := d.h
	d.h = nil
	if d.idle != nil {
		d.idle.Stop()
	}
	d.mu.Unlock()
	if h != nil {
		go h.stop()
	}
}

// unixRights is the descriptors an SCM_RIGHTS control message carried.
func unixRights(oob []byte) []int {
	var fds []int
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	for _, m := range msgs {
		if rights, err := syscall.ParseUnixRights(&m); err == nil {
			fds = append(fds, rights...)
		}
	}
	return fds
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

// serveDials is `node-net serve`: it answers the agent's dial requests on uc until the
// agent closes its end (or sends something that is not a request).
func serveDials(uc *net.UnixConn) error {
	var wmu sync.Mutex
	answer := func(id uint32, c *net.TCPConn, reason string) {
		msg := binary.BigEndian.AppendUint32(nil, id)
		wmu.Lock()
		defer wmu.Unlock()
		if c == nil {
			if len(reason) > maxDialReason {
				reason = reason[:maxDialReason]
			}
			_, _ = uc.Write(append(append(msg, 1), reason...))
			return
		}
		rc, err := c.SyscallConn()
		if err != nil {
			_, _ = uc.Write(append(append(msg, 1), "cannot hand the socket over"...))
			return
		}
		_ = rc.Control(func(fd uintptr) {
			_, _, _ = uc.WriteMsgUnix(append(msg, 0), syscall.UnixRights(int(fd)), nil)
		})
	}
	inFlight := make(chan struct{}, maxDialsInFlight)
	buf := make([]byte, maxDialRequest+1)
	for {
		n, err := uc.Read(buf)
		if err != nil || n == 0 {
			return nil // the agent closed its end
		}
		if n < 5 || n > maxDialRequest {
			return errors.New("a malformed dial request")
		}
		id, addr, err := parseDialRequest(buf[:n])
		if err != nil {
			answer(id, nil, err.Error())
			continue
		}
		select {
		case inFlight <- struct{}{}:
		default:
			answer(id, nil, fmt.Sprintf("more than %d connections being made at once", maxDialsInFlight))
			continue
		}
		go func() {
			defer func() { <-inFlight }()
			c, err := net.DialTimeout("tcp", addr, forwardDialTimeout)
			if err != nil {
				answer(id, nil, dialReason(err))
				return
			}
			answer(id, c.(*net.TCPConn), "")
			c.Close()
		}()
	}
}
