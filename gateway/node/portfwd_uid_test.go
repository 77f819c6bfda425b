package node_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
)

// TestForwardedSocketsBelongToTheLogin is the attacker's side of forwarding done by a
// root agent: a login allowed to forward must reach only what its own processes could.
// Owner rules (iptables -m owner --uid-owner, nftables meta skuid) and services that
// trust "this loopback connection is root's" go by the socket's owner, so the socket that connects for -L/-D/-W and the one that listens for -R must be
// the login's, as OpenSSH makes them in the user's context. Until node-net, both were the
// agent's (uid 0).
func TestForwardedSocketsBelongToTheLogin(t *testing.T) {
	n := startSSHNode(t)
	login := n.user.Username
	want := uid(t, n.user)
	c := n.dial(t, n.key(t, login), login)

	t.Run("local_forward_connects_as_the_login", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		accepted := make(chan net.Conn, 1)
		go func() {
			if conn, err := l.Accept(); err == nil {
				accepted <- conn
			}
		}()
		conn, err := c.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatalf("direct-tcpip: %v\n%s", err, n.log.String())
		}
		defer conn.Close()
		var server net.Conn
		select {
		case server = <-accepted:
		case <-time.After(30 * time.Second):
			t.Fatal("the forwarded connection never arrived")
		}
		defer server.Close()
		// The connecting socket is the one whose local port is the peer port the
		// destination sees.
		from := server.RemoteAddr().(*net.TCPAddr).Port
		to := l.Addr().(*net.TCPAddr).Port
		if got, err := testenv.TCPSocketUID(from, to); err != nil || got != want {
			t.Errorf("the forwarded connection was made by uid %d (%v), want the login's uid %d", got, err, want)
		}
		roundTripThrough(t, conn, server, "as the login")
	})

	t.Run("remote_forward_listens_as_the_login", func(t *testing.T) {
		l, err := c.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("tcpip-forward: %v\n%s", err, n.log.String())
		}
		defer l.Close()
		port := l.Addr().(*net.TCPAddr).Port
		if got, err := testenv.TCPSocketUID(port, 0); err != nil || got != want {
			t.Errorf("the -R listener on port %d belongs to uid %d (%v), want the login's uid %d", port, got, err, want)
		}
		// The connections it accepts are the login's too (an accepted socket takes the
		// owner of whoever accepts it): the forward is open end to end once a line went
		// through, so the node has accepted.
		go func() {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = io.Copy(conn, conn)
		}()
		local, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer local.Close()
		roundTrip(t, local, "accepted as the login")
		accepted := local.LocalAddr().(*net.TCPAddr).Port
		if got, err := testenv.TCPSocketUID(port, accepted); err != nil || got != want {
			t.Errorf("the -R connection accepted on port %d belongs to uid %d (%v), want the login's uid %d", port, got, err, want)
		}
	})

	t.Run("a_cancelled_remote_forward_leaves_no_helper", func(t *testing.T) {
		// The connection's dial helper (from the -L above) stays with the connection.
		before := processesOf(t, want)
		l, err := c.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("tcpip-forward: %v\n%s", err, n.log.String())
		}
		if err := l.Close(); err != nil { // cancel-tcpip-forward
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, func() error {
			if pids := processesOf(t, want); !subset(pids, before) {
				return fmt.Errorf("processes of the login running: %v, before the forward: %v", pids, before)
			}
			return nil
		})
		if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
			t.Error("the cancelled forward's port still accepts connections")
		}
	})

	t.Run("one_dial_helper_per_connection_ending_with_it", func(t *testing.T) {
		before := processesOf(t, want)
		c2 := n.dial(t, n.key(t, login), login)
		echo := echoServer(t).Addr().String()
		for i := range 5 {
			conn, err := c2.Dial("tcp", echo)
			if err != nil {
				t.Fatalf("dial %d: %v\n%s", i, err, n.log.String())
			}
			roundTrip(t, conn, "dial "+strconv.Itoa(i))
			conn.Close()
		}
		if pids := processesOf(t, want); len(pids) != len(before)+1 || !subset(before, pids) {
			t.Fatalf("5 dials on one connection: processes of the login %v, before %v: want one helper more", pids, before)
		}
		c2.Close()
		testenv.Eventually(t, 10*time.Second, func() error {
			if pids := processesOf(t, want); !subset(pids, before) {
				return fmt.Errorf("the connection ended, processes of the login running: %v, before: %v", pids, before)
			}
			return nil
		})
	})
}

// processesOf lists the pids of the processes running as uid (real uid, /proc/PID/status).
func processesOf(t *testing.T, uid int) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, e := range entries {
		status, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue // not a process, or it ended
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" && f[1] == strconv.Itoa(uid) {
				pids = append(pids, e.Name())
			}
		}
	}
	return pids
}

// roundTripThrough writes msg into one end and reads it at the other.
func roundTripThrough(t *testing.T, from, to net.Conn, msg string) {
	t.Helper()
	_ = to.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintln(from, msg); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(to).ReadString('\n')
	if err != nil || line != msg+"\n" {
		t.Fatalf("read %q, %v; want %q", line, err, msg)
	}
}

// subset reports whether every pid of a is in b.
func subset(a, b []string) bool {
	for _, p := range a {
		if !slices.Contains(b, p) {
			return false
		}
	}
	return true
}
