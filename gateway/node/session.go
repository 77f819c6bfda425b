package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/gateway/audit"
)

// countingChannel counts a session's bytes for its session.end event: in from the
// client, out to it (stdout and stderr).
type countingChannel struct {
	ssh.Channel
	in, out atomic.Int64
}

func (c *countingChannel) Read(p []byte) (int, error) {
	n, err := c.Channel.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c *countingChannel) Write(p []byte) (int, error) {
	n, err := c.Channel.Write(p)
	c.out.Add(int64(n))
	return n, err
}

func (c *countingChannel) Stderr() io.ReadWriter { return countingStderr{c.Channel.Stderr(), &c.out} }

type countingStderr struct {
	io.ReadWriter
	out *atomic.Int64
}

func (c countingStderr) Write(p []byte) (int, error) {
	n, err := c.ReadWriter.Write(p)
	c.out.Add(int64(n))
	return n, err
}

// acceptEnv reports whether a client may set the environment variable name: LANG,
// LC_* and TERM, as Debian's sshd_config AcceptEnv; everything else (LD_PRELOAD, PATH,
// ...) is refused.
// maxSessionEnv bounds the env requests a session keeps, as sshd's session_env_req.
const maxSessionEnv = 128

func acceptEnv(name string) bool {
	return name == "LANG" || name == "TERM" || (strings.HasPrefix(name, "LC_") && len(name) > 3)
}

// signals maps RFC 4254 signal names to signals.
var signals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE, "HUP": syscall.SIGHUP,
	"ILL": syscall.SIGILL, "INT": syscall.SIGINT, "KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE,
	"QUIT": syscall.SIGQUIT, "SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2,
}

func signalName(sig syscall.Signal) string {
	for n, s := range signals {
		if s == sig {
			return n
		}
	}
	return fmt.Sprintf("SIG%d", int(sig))
}

// ptyDrainTimeout bounds how long output still in the terminal is forwarded after the
// session's process ended (a background child may keep the terminal open forever).
const ptyDrainTimeout = 2 * time.Second

// session is one "session" channel: at most one program (shell, exec or subsystem).
type session struct {
	a    *Agent
	conn *ssh.ServerConn
	ch   ssh.Channel
	log  *slog.Logger

	env  []string // accepted env requests, NAME=value
	pty  *ptyRequest
	size *pty.Winsize

	agentSock  string // SSH_AUTH_SOCK once agent forwarding was asked for and permitted
	agentClose func()

	// afterReply, when set by handle, runs once the request has been answered.
	afterReply func()

	mu      sync.Mutex
	started bool
	ptmx    *os.File
	proc    *os.Process
}

// runSession serves one session channel until its program ended and its status was
// sent, or the client closed it.
func (a *Agent) runSession(ctx context.Context, conn *ssh.ServerConn, ch ssh.Channel, reqs <-chan *ssh.Request, log *slog.Logger) {
	counted := &countingChannel{Channel: ch}
	ch = counted
	rec := audit.StartSession(ctx, a.cfg.Auditor, audit.ComponentNode, conn.Permissions.Extensions[permUser], map[string]any{
		"login": conn.User(), "node": a.cfg.Name, "remote": conn.RemoteAddr().String(), "cert": conn.Permissions.Extensions[permKeyID],
	})
	defer func() { rec.End(ctx, counted.in.Load(), counted.out.Load()) }()
	s := &session{a: a, conn: conn, ch: ch, log: log}
	defer ch.Close()
	defer func() {
		if s.agentClose != nil {
			s.agentClose()
		}
	}()
	done := make(chan struct{})
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			s.signal(syscall.SIGHUP)
			return
		case r, ok := <-reqs:
			if !ok {
				// The client closed the channel: hang up on the program.
				s.signal(syscall.SIGHUP)
				return
			}
			ok, msg := s.handle(r, done)
			if !ok && msg != "" {
				s.log.Info("session request refused", "request", r.Type, "reason", msg)
			}
			if r.WantReply {
				_ = r.Reply(ok, nil)
			}
			if f := s.afterReply; f != nil {
				s.afterReply = nil
				f()
			}
		}
	}
}

// handle answers one channel request; false with the reason when refused.
func (s *session) handle(r *ssh.Request, done chan struct{}) (bool, string) {
	switch r.Type {
	case "env":
		var kv struct{ Name, Value string }
		if err := ssh.Unmarshal(r.Payload, &kv); err != nil {
			return false, "malformed env request"
		}
		if !acceptEnv(kv.Name) {
			return false, fmt.Sprintf("environment variable %q refused: only LANG, LC_* and TERM are accepted", kv.Name)
		}
		for i, e := range s.env {
			if strings.HasPrefix(e, kv.Name+"=") {
				s.env[i] = kv.Name + "=" + kv.Value
				return true, ""
			}
		}
		if len(s.env) >= maxSessionEnv {
			return false, fmt.Sprintf("environment variable %q refused: the session already has %d", kv.Name, maxSessionEnv)
		}
		s.env = append(s.env, kv.Name+"="+kv.Value)
		return true, ""
	case "pty-req":
		if _, ok := s.conn.Permissions.Extensions[permPTY]; !ok {
			return false, "the certificate does not permit a terminal (no permit-pty)"
		}
		var p ptyRequest
		if err := ssh.Unmarshal(r.Payload, &p); err != nil {
			return false, "malformed pty-req"
		}
		s.pty = &p
		s.size = winsize(p.Cols, p.Rows, p.PxW, p.PxH)
		return true, ""
	case "window-change":
		var w windowChange
		if err := ssh.Unmarshal(r.Payload, &w); err != nil {
			return false, "malformed window-change"
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.size = winsize(w.Cols, w.Rows, w.PxW, w.PxH)
		if s.ptmx != nil {
			// The kernel sends SIGWINCH to the terminal's foreground process group.
			_ = pty.Setsize(s.ptmx, s.size)
		}
		return true, ""
	case "signal":
		var sig struct{ Signal string }
		if err := ssh.Unmarshal(r.Payload, &sig); err != nil {
			return false, "malformed signal request"
		}
		n, ok := signals[sig.Signal]
		if !ok {
			return false, fmt.Sprintf("unknown signal %q", sig.Signal)
		}
		if !s.signal(n) {
			return false, "no program is running in this session"
		}
		return true, ""
	case "shell", "exec", "subsystem":
		s.mu.Lock()
		started := s.started
		s.started = true
		s.mu.Unlock()
		if started {
			return false, "a session runs one program; open another session"
		}
		var arg struct{ Value string }
		if r.Type != "shell" {
			if err := ssh.Unmarshal(r.Payload, &arg); err != nil {
				return false, "malformed " + r.Type + " request"
			}
		}
		if err := s.start(r.Type, arg.Value, done); err != nil {
			// As sshd does when the login's shell cannot run: the request succeeds, the
			// reason goes to stderr and the exit status is 1, so the user reads why (a
			// refused request carries no reason in SSH).
			s.log.Info("session program not started", "request", r.Type, "reason", err.Error())
			s.afterReply = func() {
				fmt.Fprintf(s.ch.Stderr(), "node: cannot start the %s: %v\r\n", r.Type, err)
				s.exitStatus(1)
				close(done)
			}
			return true, ""
		}
		return true, ""
	case "x11-req":
		return false, "X11 forwarding is not allowed on this node"
	case "auth-agent-req@openssh.com":
		if _, ok := s.conn.Permissions.Extensions[permAgentForward]; !ok {
			return false, "agent forwarding is not allowed on this node for this certificate"
		}
		if s.agentSock != "" {
			return true, ""
		}
		path, closeFn, err := s.agentSocket()
		if err != nil {
			return false, "cannot create the agent socket: " + err.Error()
		}
		s.agentSock, s.agentClose = path, closeFn
		return true, ""
	}
	return false, fmt.Sprintf("request %q is not served by this node", r.Type)
}

// signal sends sig to the program's process group while the program runs; false when
// there is none. The lock is held across the kill so that the program cannot be reaped
// (its group id freed for another's process) in between: ended forgets it first.
func (s *session) signal(sig syscall.Signal) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return false
	}
	_ = syscall.Kill(-s.proc.Pid, sig)
	return true
}

// ended waits until the program has ended, without reaping it, and forgets it: its pid,
// and so its process group's id, stays taken until cmd.Wait reaps it afterwards, so no
// signal can reach a group that reuses the id.
func (s *session) ended(p *os.Process) {
	waitExited(p.Pid)
	s.mu.Lock()
	s.proc = nil
	s.mu.Unlock()
}

// start runs the program of a shell, exec or subsystem request as the login's user and,
// in the background, waits for it, sends its exit status and closes done.
func (s *session) start(kind, arg string, done chan struct{}) error {
	login := s.conn.Permissions.Extensions[permLogin]
	u, err := lookupUser(login)
	if err != nil {
		return err
	}
	env := u.baseEnv()
	if s.pty != nil && s.pty.Term != "" {
		env = append(env, "TERM="+s.pty.Term)
	}
	env = append(env, s.env...)
	env = append(env, "SSH_CONNECTION="+sshConnection(s.conn))
	if s.agentSock != "" {
		env = append(env, "SSH_AUTH_SOCK="+s.agentSock)
	}
	var cmd *exec.Cmd
	switch kind {
	case "subsystem":
		if arg != "sftp" {
			return fmt.Errorf("subsystem %q is not served by this node (only sftp)", arg)
		}
		cmd = u.command(s.a.cfg.SFTPCommand[0], s.a.cfg.SFTPCommand, env)
		s.pty = nil // sftp speaks binary: never through a terminal
	default:
		cmd = u.shellCommand(arg, env)
	}
	s.log.Info("session started", "kind", kind, "command", arg, "pty", s.pty != nil, "uid", u.UID)
	if s.pty != nil {
		return s.startPTY(cmd, u, done)
	}
	return s.startPipes(cmd, done)
}

func sshConnection(c *ssh.ServerConn) string {
	split := func(a string) string {
		if i := strings.LastIndex(a, ":"); i >= 0 {
			return strings.Trim(a[:i], "[]") + " " + a[i+1:]
		}
		return a
	}
	return split(c.RemoteAddr().String()) + " " + split(c.LocalAddr().String())
}

func (s *session) startPipes(cmd *exec.Cmd, done chan struct{}) error {
	cmd.SysProcAttr.Setpgid = true
	cmd.Stdout = s.ch
	cmd.Stderr = s.ch.Stderr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the session's program: %w", err)
	}
	s.mu.Lock()
	s.proc = cmd.Process
	s.mu.Unlock()
	go func() {
		_, _ = io.Copy(stdin, s.ch)
		stdin.Close()
	}()
	go func() {
		defer close(done)
		s.ended(cmd.Process)
		err := cmd.Wait()
		s.exit(cmd.ProcessState, err)
	}()
	return nil
}

func (s *session) startPTY(cmd *exec.Cmd, u *localUser, done chan struct{}) error {
	s.mu.Lock()
	size := s.size
	s.mu.Unlock()
	ptmx, err := startPTY(cmd, u, size)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.ptmx, s.proc = ptmx, cmd.Process
	s.mu.Unlock()
	go func() { _, _ = io.Copy(ptmx, s.ch) }()
	out := make(chan struct{})
	go func() {
		defer close(out)
		_, _ = io.Copy(s.ch, ptmx) // ends with EIO once no process holds the terminal
	}()
	go func() {
		defer close(done)
		s.ended(cmd.Process)
		err := cmd.Wait()
		t := time.NewTimer(ptyDrainTimeout)
		select {
		case <-out:
		case <-t.C:
		}
		t.Stop()
		s.mu.Lock()
		s.ptmx.Close()
		s.mu.Unlock()
		s.exit(cmd.ProcessState, err)
	}()
	return nil
}

// exit sends the program's end to the client: exit-signal when a signal killed it, else
// exit-status; then EOF and close.
func (s *session) exit(ps *os.ProcessState, err error) {
	_ = s.ch.CloseWrite()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		s.log.Warn("waiting for the session's program", "err", err)
	}
	status := uint32(255)
	if ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			name := signalName(ws.Signal())
			s.log.Info("session ended", "signal", name)
			_, _ = s.ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
				Signal     string
				CoreDumped bool
				Msg, Lang  string
			}{name, ws.CoreDump(), "", ""}))
			s.ch.Close()
			return
		}
		status = uint32(ps.ExitCode())
	}
	s.log.Info("session ended", "status", status)
	s.exitStatus(status)
}

// exitStatus sends exit-status and closes the channel.
func (s *session) exitStatus(status uint32) {
	_, _ = s.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
	s.ch.Close()
}
