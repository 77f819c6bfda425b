package node

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Port and agent forwarding on the node, as OpenSSH's sshd serves them: only for a
// certificate that carries permit-port-forwarding (permit-agent-forwarding for the
// agent). The cluster's enforcement point issues the node's certificates and leaves a
// permit out when the policy denies it (gateway/forward), so the node never needs the
// policy itself. Like sshd with GatewayPorts no, remote forwards listen on loopback only,
// and ports below 1024 need a root login. As under sshd, the sockets are the login's: a
// root agent has them made by the net helper running as the login (nethelper.go), so
// per-user firewall rules apply to forwarded connections.

const (
	permPortForward  = "tether-permit-port-forwarding"
	permAgentForward = "tether-permit-agent-forwarding"
)

// forwardDialTimeout bounds a direct-tcpip connection attempt from the node.
const forwardDialTimeout = 10 * time.Second

// forwards is one connection's remote listeners (ssh -R), by bound port.
type forwards struct {
	a    *Agent
	conn *ssh.ServerConn
	log  *slog.Logger

	mu        sync.Mutex
	listeners map[uint32]net.Listener
	closed    bool
	// dialer makes the connection's direct-tcpip sockets (one helper for all of them).
	dialer *connDialer
}

func (f *forwards) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	if f.dialer != nil {
		f.dialer.close()
	}
	for p, l := range f.listeners {
		l.Close()
		delete(f.listeners, p)
	}
}

// directTCPIP serves ssh -L and -D: the node connects to the named address.
func (f *forwards) directTCPIP(sc *ssh.ServerConn, nc ssh.NewChannel, log *slog.Logger) {
	if _, ok := sc.Permissions.Extensions[permPortForward]; !ok {
		log.Warn("refused a port forwarding channel: the certificate does not permit port forwarding", "channel", nc.ChannelType())
		_ = nc.Reject(ssh.Prohibited, "port forwarding is not allowed on this node for this certificate")
		return
	}
	var m struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &m); err != nil || m.Port == 0 || m.Port > 65535 {
		_ = nc.Reject(ssh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	dest := net.JoinHostPort(m.Host, strconv.Itoa(int(m.Port)))
	if err := checkDialAddr(dest); err != nil {
		log.Info("port forward: refused destination", "dest", dest, "reason", err.Error())
		_ = nc.Reject(ssh.ConnectionFailed, fmt.Sprintf("connect to %s failed: %v", dest, err))
		return
	}
	u, err := lookupUser(sc.Permissions.Extensions[permLogin])
	if err != nil {
		log.Info("port forward: the login is not a user here", "dest", dest, "err", err)
		_ = nc.Reject(ssh.ConnectionFailed, fmt.Sprintf("connect to %s failed", dest))
		return
	}
	c, err := f.dialerFor(u).dial(dest)
	if err != nil {
		log.Info("port forward: connecting failed", "dest", dest, "uid", u.UID, "err", err)
		_ = nc.Reject(ssh.ConnectionFailed, fmt.Sprintf("connect to %s failed%s", dest, userReason(err)))
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		c.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	log.Info("port forward opened", "dest", dest, "uid", u.UID)
	pipeConn(ch, c)
}

// dialerFor is the connection's dialer for u, its login.
func (f *forwards) dialerFor(u *localUser) *connDialer {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dialer == nil {
		f.dialer = &connDialer{a: f.a, u: u, closed: f.closed}
	}
	return f.dialer
}

// userReason is ": reason" for a refusal the user reads when err is a reason fit to
// show (the helper's or the dial's), else nothing: internals stay in the log.
func userReason(err error) string {
	var he *helperError
	if errors.As(err, &he) {
		return ": " + he.reason
	}
	return ""
}

// pipeConn copies between a channel and a connection until both directions end.
func pipeConn(ch ssh.Channel, c net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(c, ch)
		if tc, ok := c.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		} else {
			c.Close()
		}
	}()
	go func() {
		defer wg.Done()
		_, _ = io.Copy(ch, c)
		_ = ch.CloseWrite()
	}()
	wg.Wait()
	c.Close()
	ch.Close()
}

// tcpipForward serves ssh -R: listen on loopback and open forwarded-tcpip channels back.
func (f *forwards) tcpipForward(r *ssh.Request) (bool, []byte, string) {
	if _, ok := f.conn.Permissions.Extensions[permPortForward]; !ok {
		return false, nil, "the certificate does not permit port forwarding"
	}
	var m struct {
		Addr string
		Port uint32
	}
	if err := ssh.Unmarshal(r.Payload, &m); err != nil || m.Port > 65535 {
		return false, nil, "malformed tcpip-forward request"
	}
	u, err := lookupUser(f.conn.Permissions.Extensions[permLogin])
	if err != nil {
		return false, nil, "the login is not a user here: " + err.Error()
	}
	if m.Port != 0 && m.Port < 1024 && u.UID != 0 {
		return false, nil, fmt.Sprintf("port %d is privileged: only root may forward ports below 1024", m.Port)
	}
	// Checked before the listener (a helper process as the login) is made; the connection's
	// global requests are served one at a time, and the count is checked again below.
	f.mu.Lock()
	held := len(f.listeners)
	f.mu.Unlock()
	if limit := f.a.cfg.MaxRemoteForwards; held >= limit {
		return false, nil, fmt.Sprintf("the connection holds %d remote forwards, the node's max_remote_forwards", limit)
	}
	// GatewayPorts no: whatever address was asked for, listen on loopback.
	l, err := f.a.listenAs(u, net.JoinHostPort("127.0.0.1", strconv.Itoa(int(m.Port))))
	if err != nil {
		return false, nil, fmt.Sprintf("cannot listen on port %d as uid %d: %v", m.Port, u.UID, err)
	}
	port := uint32(l.Addr().(*net.TCPAddr).Port)
	f.mu.Lock()
	if f.closed || f.listeners[port] != nil || len(f.listeners) >= f.a.cfg.MaxRemoteForwards {
		f.mu.Unlock()
		l.Close()
		return false, nil, "connection closing, port already forwarded, or max_remote_forwards reached"
	}
	if f.listeners == nil {
		f.listeners = map[uint32]net.Listener{}
	}
	f.listeners[port] = l
	f.mu.Unlock()
	f.log.Info("remote forward listening", "addr", l.Addr().String(), "asked", m.Addr, "uid", u.UID)
	go f.accept(l, m.Addr, port)
	var reply []byte
	if m.Port == 0 {
		reply = ssh.Marshal(struct{ Port uint32 }{port})
	}
	return true, reply, ""
}

func (f *forwards) accept(l net.Listener, addr string, port uint32) {
	for {
		c, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				f.log.Warn("remote forward: accepting failed; the forward accepts no more connections", "port", port, "err", err)
			}
			return
		}
		go func() {
			ra, ok := c.RemoteAddr().(*net.TCPAddr)
			if !ok || ra == nil {
				c.Close()
				return
			}
			ch, reqs, err := f.conn.OpenChannel("forwarded-tcpip", ssh.Marshal(struct {
				Addr     string
				Port     uint32
				OrigAddr string
				OrigPort uint32
			}{addr, port, ra.IP.String(), uint32(ra.Port)}))
			if err != nil {
				f.log.Info("remote forward: the client refused the connection", "port", port, "err", err)
				c.Close()
				return
			}
			go ssh.DiscardRequests(reqs)
			pipeConn(ch, c)
		}()
	}
}

func (f *forwards) cancel(r *ssh.Request) bool {
	var m struct {
		Addr string
		Port uint32
	}
	if err := ssh.Unmarshal(r.Payload, &m); err != nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.listeners[m.Port]
	if l == nil {
		return false
	}
	l.Close()
	delete(f.listeners, m.Port)
	return true
}

// agentSocket serves auth-agent-req@openssh.com for a session: a Unix socket in a
// directory only the login's user can enter, each connection to which becomes an
// auth-agent@openssh.com channel to the client. It returns the socket's path for
// SSH_AUTH_SOCK and a function that removes it.
func (s *session) agentSocket() (string, func(), error) {
	u, err := lookupUser(s.conn.Permissions.Extensions[permLogin])
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "tether-agent-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	path := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		cleanup()
		return "", nil, err
	}
	if err := os.Chmod(path, 0o600); err == nil && os.Geteuid() == 0 {
		err = os.Chown(dir, int(u.UID), int(u.GID))
		if err == nil {
			err = os.Chown(path, int(u.UID), int(u.GID))
		}
		if err != nil {
			l.Close()
			cleanup()
			return "", nil, err
		}
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				ch, reqs, err := s.conn.OpenChannel("auth-agent@openssh.com", nil)
				if err != nil {
					c.Close()
					return
				}
				go ssh.DiscardRequests(reqs)
				pipeConn(ch, c)
			}()
		}
	}()
	return path, func() { l.Close(); cleanup() }, nil
}
