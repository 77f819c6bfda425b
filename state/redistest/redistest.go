// Package redistest runs private redis-server processes for tests: each on
// a free loopback port with its own data directory, so tests never depend
// on (or disturb) a Redis the machine already runs, and can kill and restart
// theirs.
//
// redis-server must be on PATH; `make tools` installs it.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Config says how to run the server. The zero value is an AOF-enabled
// primary with appendfsync everysec in a temporary directory.
type Config struct {
	// AppendFsync is "always", "everysec" (default) or "no".
	AppendFsync string
	// ReplicaOf, as "host:port", makes the server a replica of that primary.
	ReplicaOf string
	// Dir is the data directory; empty means a new temporary directory.
	Dir string
	// Args are extra redis-server arguments.
	Args []string
	// TLS, when set, also serves TLS on a second free port (TLSAddr). The
	// plain port stays open on loopback for readiness checks and for tests
	// that inspect the data.
	TLS *TLS
}

// TLS is the server side of a TLS port: PEM files as redis-server reads them.
type TLS struct {
	// CertFile and KeyFile are the server's certificate and key.
	CertFile, KeyFile string
	// CAFile holds the CAs that client certificates must chain to.
	CAFile string
	// RequireClientCert makes the server refuse clients without a certificate
	// of CAFile (tls-auth-clients yes).
	RequireClientCert bool
}

// Server is one redis-server process.
type Server struct {
	cfg     Config
	port    int
	tlsPort int
	dir     string
	ownDir  bool

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartupTimeout bounds how long Start waits for the server to answer PING.
const StartupTimeout = 15 * time.Second

// ErrNotInstalled means redis-server is not on PATH.
var ErrNotInstalled = errors.New("redis-server not found on PATH: run `make tools` to install it")

// New starts a server on a free loopback port. Stop it with Stop.
func New(cfg Config) (*Server, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrNotInstalled, err)
	}
	s := &Server{cfg: cfg, dir: cfg.Dir}
	if s.dir == "" {
		d, err := os.MkdirTemp("", "tether-redis-")
		if err != nil {
			return nil, err
		}
		s.dir, s.ownDir = d, true
	}
	var err error
	for range 5 { // the free port can be taken between choosing and binding
		if s.port, err = freePort(); err != nil {
			break
		}
		if cfg.TLS != nil {
			if s.tlsPort, err = freePort(); err != nil {
				break
			}
		}
		if err = s.start(); err == nil {
			return s, nil
		}
	}
	s.cleanDir()
	return nil, err
}

// Start is New for a test: it fails the test when the server cannot start
// and stops it when the test ends.
func Start(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s, err := New(cfg)
	if err != nil {
		tb.Fatalf("starting a private redis-server: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// Addr is the server's "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// TLSAddr is the TLS port's "127.0.0.1:port"; empty without Config.TLS.
func (s *Server) TLSAddr() string {
	if s.tlsPort == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tlsPort))
}

// Port is the server's port.
func (s *Server) Port() int { return s.port }

// Dir is the server's data directory.
func (s *Server) Dir() string { return s.dir }

func (s *Server) start() error {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--appendonly", "yes",
		"--appendfsync", orDefault(s.cfg.AppendFsync, "everysec"),
		"--save", "",
		"--daemonize", "no",
		"--logfile", "redis.log",
		"--protected-mode", "yes",
	}
	if s.cfg.ReplicaOf != "" {
		host, port, err := net.SplitHostPort(s.cfg.ReplicaOf)
		if err != nil {
			return fmt.Errorf("redistest: ReplicaOf %q: %w", s.cfg.ReplicaOf, err)
		}
		args = append(args, "--replicaof", host, port)
	}
	if t := s.cfg.TLS; t != nil {
		auth := "no"
		if t.RequireClientCert {
			auth = "yes"
		}
		args = append(args, "--tls-port", strconv.Itoa(s.tlsPort),
			"--tls-cert-file", t.CertFile, "--tls-key-file", t.KeyFile,
			"--tls-auth-clients", auth)
		if t.CAFile != "" {
			args = append(args, "--tls-ca-cert-file", t.CAFile)
		}
	}
	args = append(args, s.cfg.Args...)
	cmd := exec.Command("redis-server", args...)
	cmd.Dir = s.dir
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redistest: starting redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	deadline := time.Now().Add(StartupTimeout)
	for {
		if err := ping(s.Addr()); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("redistest: redis-server on %s did not answer PING within %s: %v; its log says: %s", s.Addr(), StartupTimeout, err, s.logTail())
		}
		select {
		case <-exited:
			return fmt.Errorf("redistest: redis-server on port %d exited at start; its log says: %s", s.port, s.logTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Kill sends SIGKILL, as a crash would, and waits for the process to go.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// Restart starts the server again on the same port and data directory,
// after Kill. It waits until the server answers PING (which, with
// appendonly, is after the AOF has loaded).
func (s *Server) Restart() error {
	s.Kill()
	var err error
	deadline := time.Now().Add(StartupTimeout)
	for time.Now().Before(deadline) {
		// The port can linger for a moment after the old process dies.
		if err = s.start(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

// Stop kills the server and removes a data directory New created.
func (s *Server) Stop() {
	s.Kill()
	s.cleanDir()
}

func (s *Server) cleanDir() {
	if s.ownDir {
		os.RemoveAll(s.dir)
	}
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], " | ")
}

// ping speaks just enough RESP to see the server answer.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
