package node_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/gateway/node"
	"github.com/tetherproject/tether/internal/testenv"
)

// runNetHelper runs `node-net args...` from the test binary's copy with back as its
// descriptor 3 (nil: nothing there) and returns its exit code and stderr.
func runNetHelper(t *testing.T, back *os.File, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, netCommand(t)[0], append(netCommand(t)[1:], args...)...)
	if back != nil {
		cmd.ExtraFiles = []*os.File{back}
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), stderr.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, stderr.String()
}

// socketPair is a connected pair of Unix sockets: the test's end and the helper's.
func socketPair(t *testing.T) (*net.UnixConn, *os.File) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine := os.NewFile(uintptr(fds[0]), "test")
	defer mine.Close()
	c, err := net.FileConn(mine)
	if err != nil {
		t.Fatal(err)
	}
	theirs := os.NewFile(uintptr(fds[1]), "helper")
	t.Cleanup(func() { c.Close(); theirs.Close() })
	return c.(*net.UnixConn), theirs
}

// TestNetHelperChecksItsArgumentsAgain: `tetherd node-net` is a second way into the
// binary, run by anyone who can run tetherd; it makes nothing but a TCP connection to a
// host:port or a listener on 127.0.0.1, and only for a caller that gave it a socket to
// hand it to. Each refusal is one short line and exit 1.
func TestNetHelperChecksItsArgumentsAgain(t *testing.T) {
	dest := echoServer(t).Addr().String()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no_arguments", nil, "usage: node-net"},
		{"one_argument", []string{"dial"}, "usage: node-net"},
		{"an_extra_argument", []string{"dial", dest, "x"}, "usage: node-net"},
		{"unknown_operation", []string{"connect", dest}, `unknown operation "connect"`},
		{"serve_with_an_argument", []string{"serve", dest}, "usage: node-net serve"},
		{"dial_port_zero", []string{"dial", "127.0.0.1:0"}, "not a number from 1 to 65535"},
		{"dial_without_port", []string{"dial", "127.0.0.1"}, "not host:port"},
		{"dial_an_option_as_host", []string{"dial", "-oProxyCommand=id:22"}, "not an IP address or a host name"},
		{"dial_a_host_with_a_space", []string{"dial", "a b:22"}, "not an IP address or a host name"},
		{"dial_a_host_with_a_slash", []string{"dial", "/run/x.sock:22"}, "not an IP address or a host name"},
		{"listen_on_all_addresses", []string{"listen", "0.0.0.0:0"}, "127.0.0.1:PORT only"},
		{"listen_on_ipv6_any", []string{"listen", "[::]:0"}, "127.0.0.1:PORT only"},
		{"listen_on_a_name", []string{"listen", "localhost:0"}, "127.0.0.1:PORT only"},
		{"listen_port_out_of_range", []string{"listen", "127.0.0.1:65536"}, "not a number from 0 to 65535"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, back := socketPair(t)
			code, stderr := runNetHelper(t, back, tc.args...)
			if code != 1 || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q; want exit 1 and one line saying %q", code, stderr, tc.want)
			}
		})
	}
	t.Run("no_socket_to_hand_it_to", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		f, err := os.CreateTemp(t.TempDir(), "fd3")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, back := range []*os.File{nil, f} {
			code, stderr := runNetHelper(t, back, "dial", l.Addr().String())
			if code != 1 || !strings.Contains(stderr, "node-net is run by the node agent only") {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
		}
		// Nothing connected to the destination.
		_ = l.(*net.TCPListener).SetDeadline(time.Now().Add(200 * time.Millisecond))
		if c, err := l.Accept(); err == nil {
			c.Close()
			t.Fatal("the helper connected although it had no one to hand the connection to")
		}
	})
	t.Run("a_refused_connection_says_why", func(t *testing.T) {
		_, back := socketPair(t)
		code, stderr := runNetHelper(t, back, "dial", "127.0.2.1:9")
		if code != 1 || strings.TrimSpace(stderr) != "connection refused" {
			t.Fatalf("exit %d, stderr %q; want exit 1 and \"connection refused\"", code, stderr)
		}
	})
	t.Run("dial_hands_the_connection_back", func(t *testing.T) {
		mine, back := socketPair(t)
		code, stderr := runNetHelper(t, back, "dial", dest)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		_ = mine.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf, oob := make([]byte, 1), make([]byte, syscall.CmsgSpace(4))
		_, oobn, _, _, err := mine.ReadMsgUnix(buf, oob)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			t.Fatalf("control messages %v, %v", msgs, err)
		}
		fds, err := syscall.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			t.Fatalf("rights %v, %v", fds, err)
		}
		f := os.NewFile(uintptr(fds[0]), "dialed")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		roundTrip(t, c, "handed over")
	})
}

// TestForwardingRefusesDestinationsThatAreNotHosts: a direct-tcpip destination is a host
// name or an address; anything else is refused before a helper runs, saying why.
func TestForwardingRefusesDestinationsThatAreNotHosts(t *testing.T) {
	n := startSSHNode(t)
	login := n.user.Username
	c := n.dial(t, n.key(t, login), login)
	for _, host := range []string{"-oProxyCommand=id", "a b", "x\x00y"} {
		_, _, err := c.OpenChannel("direct-tcpip", ssh.Marshal(struct {
			Host     string
			Port     uint32
			OrigHost string
			OrigPort uint32
		}{host, 22, "127.0.0.1", 1234}))
		if err == nil || !strings.Contains(err.Error(), "not an IP address or a host name") {
			t.Errorf("direct-tcpip to %q: %v", host, err)
		}
	}
}

// lyingNetHelper is the test binary's stand-in for a node-net the login traced and
// rewrote: `node.test lying-node-net MODE OP ADDR` hands the agent something other than
// what it asked for.
const lyingNetHelper = "lying-node-net"

// lieToTheAgent is lyingNetHelper: mode "unix" hands back a Unix socket, "anywhere"
// a TCP listener on all addresses at another port, "listener_as_connection" the right
// listener and then the listener again where a connection it accepted should come.
func lieToTheAgent(mode, addr string) {
	var f *os.File
	switch mode {
	case "listener_as_connection":
		l, err := net.Listen("tcp", addr)
		if err != nil {
			os.Exit(2)
		}
		f, _ = l.(*net.TCPListener).File()
		back, err := net.FileConn(os.NewFile(3, "agent"))
		if err != nil || f == nil {
			os.Exit(2)
		}
		for range 2 {
			_, _, _ = back.(*net.UnixConn).WriteMsgUnix([]byte{1}, syscall.UnixRights(int(f.Fd())), nil)
		}
		_, _ = back.Read(make([]byte, 1))
		return
	case "unix":
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		if err != nil {
			os.Exit(2)
		}
		f = os.NewFile(uintptr(fds[0]), "unix")
	case "anywhere":
		l, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			os.Exit(2)
		}
		f, _ = l.(*net.TCPListener).File()
	}
	back, err := net.FileConn(os.NewFile(3, "agent"))
	if err != nil || f == nil {
		os.Exit(2)
	}
	_, _, _ = back.(*net.UnixConn).WriteMsgUnix([]byte{1}, syscall.UnixRights(int(f.Fd())), nil)
}

// TestTheAgentTrustsNothingTheNetHelperHandsBack: the helper runs as the login, who may
// trace it and hand the agent any descriptor. The agent takes only a TCP connection for a
// dial, only a listener on 127.0.0.1 at the asked port for a listen, and only a
// connection on that listener's address afterwards; anything else fails the forward and
// is logged, and the agent serves on.
func TestTheAgentTrustsNothingTheNetHelperHandsBack(t *testing.T) {
	for _, mode := range []string{"unix", "anywhere", "listener_as_connection"} {
		t.Run(mode, func(t *testing.T) {
			n := startSSHNode(t, func(c *node.Config) {
				c.NetCommand = []string{netCommand(t)[0], lyingNetHelper, mode}
			})
			login := n.user.Username
			c := n.dial(t, n.key(t, login), login)
			if mode == "unix" {
				dest := echoServer(t).Addr().String()
				if conn, err := c.Dial("tcp", dest); err == nil {
					conn.Close()
					t.Fatal("direct-tcpip accepted a Unix socket from the helper")
				}
			}
			if mode == "listener_as_connection" {
				// The listener is right, what comes as its connection is not: the forward
				// accepts no more, and the agent lives on.
				l, err := c.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatalf("tcpip-forward: %v\n%s", err, n.log.String())
				}
				defer l.Close()
				testenv.Eventually(t, 10*time.Second, func() error {
					if !strings.Contains(n.log.String(), "the net helper handed back a connection on") {
						return fmt.Errorf("the helper's lie is not logged:\n%s", n.log.String())
					}
					return nil
				})
				s, err := c.NewSession()
				if err != nil {
					t.Fatalf("the agent no longer serves: %v", err)
				}
				defer s.Close()
				if out, err := s.CombinedOutput("echo alive"); err != nil || string(out) != "alive\n" {
					t.Fatalf("the agent no longer serves: %q %v", out, err)
				}
				return
			}
			if l, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
				l.Close()
				t.Fatalf("tcpip-forward accepted the helper's %s listener", mode)
			}
			if !strings.Contains(n.log.String(), "the net helper handed back") {
				t.Errorf("the helper's lie is not logged:\n%s", n.log.String())
			}
		})
	}
}

// lieAboutDials is lyingNetHelper run as a connection's dial helper (`node-net serve`):
// it reads the agent's first request and answers it as mode says; the modes that lie about
// listeners only serve dials honestly.
func lieAboutDials(mode string) {
	back, err := net.FileConn(os.NewFile(3, "agent"))
	if err != nil {
		os.Exit(2)
	}
	uc := back.(*net.UnixConn)
	if mode == "anywhere" || mode == "listener_as_connection" {
		back.Close()
		if err := node.ServeNet([]string{"serve"}); err != nil {
			os.Exit(1)
		}
		return
	}
	buf := make([]byte, 512)
	n, err := uc.Read(buf)
	if err != nil || n < 5 {
		os.Exit(2)
	}
	id, addr := binary.BigEndian.Uint32(buf), string(buf[4:n])
	ok := func(id uint32) []byte { return append(binary.BigEndian.AppendUint32(nil, id), 0) }
	var fd int
	switch mode {
	case "dies":
		os.Exit(0)
	case "garbage":
		_, _ = uc.Write([]byte{1, 2, 3})
	case "no_fd":
		_, _ = uc.Write(ok(id))
	case "unix":
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		if err != nil {
			os.Exit(2)
		}
		fd = fds[0]
	case "listener":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			os.Exit(2)
		}
		f, _ := l.(*net.TCPListener).File()
		fd = int(f.Fd())
	case "wrong_id":
		c, err := net.Dial("tcp", addr)
		if err != nil {
			os.Exit(2)
		}
		f, _ := c.(*net.TCPConn).File()
		_, _, _ = uc.WriteMsgUnix(ok(id+1000), syscall.UnixRights(int(f.Fd())), nil)
	}
	if fd != 0 {
		_, _, _ = uc.WriteMsgUnix(ok(id), syscall.UnixRights(fd), nil)
	}
	// Stay until the agent closes its end (or kills the helper).
	_, _ = uc.Read(buf)
}

// TestTheAgentTrustsNothingTheDialHelperAnswers: a connection's dial helper runs as the
// login, who may trace it and answer anything. A socket that is not a TCP connection, an
// answer to a request never asked, a malformed answer, an answer without its socket, or a
// helper that dies fails that dial with a reason; the agent neither crashes nor hangs,
// serves on, and the next dial starts a new helper.
func TestTheAgentTrustsNothingTheDialHelperAnswers(t *testing.T) {
	for _, mode := range []string{"unix", "listener", "wrong_id", "garbage", "no_fd", "dies"} {
		t.Run(mode, func(t *testing.T) {
			n := startSSHNode(t, func(c *node.Config) {
				c.NetCommand = []string{netCommand(t)[0], lyingNetHelper, mode}
			})
			login := n.user.Username
			c := n.dial(t, n.key(t, login), login)
			dest := echoServer(t).Addr().String()
			for i := range 2 {
				start := time.Now()
				if conn, err := c.Dial("tcp", dest); err == nil {
					conn.Close()
					t.Fatalf("dial %d: direct-tcpip took what the lying helper (%s) answered\n%s", i, mode, n.log.String())
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Fatalf("dial %d: the refusal took %v", i, d)
				}
			}
			if !strings.Contains(n.log.String(), "port forward: connecting failed") {
				t.Errorf("the failed dials are not logged:\n%s", n.log.String())
			}
			s, err := c.NewSession()
			if err != nil {
				t.Fatalf("the agent no longer serves: %v", err)
			}
			defer s.Close()
			if out, err := s.CombinedOutput("echo alive"); err != nil || string(out) != "alive\n" {
				t.Fatalf("the agent no longer serves: %q %v", out, err)
			}
		})
	}
}
