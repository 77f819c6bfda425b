package node_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestForwardedSocketsBelongToTheLogin is the attacker's side of forwarding done by a
// root agent: a login allowed to forward must reach only what its own processes could.
// Per-user firewall rules (iptables -m owner --uid-owner, systemd IPAddressDeny, cgroup
// rules) and services that trust "this loopback connection is root's" go by the socket's
// owner, so the socket that connects for -L/-D/-W and the one that listens for -R must be
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
		if got := tcpSocketUID(t, from, to); got != want {
			t.Errorf("the forwarded connection was made by uid %d, want the login's uid %d", got, want)
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
		if got := tcpSocketUID(t, port, 0); got != want {
			t.Errorf("the -R listener on port %d belongs to uid %d, want the login's uid %d", port, got, want)
		}
	})
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

// tcpSocketUID is the owner (the uid column of /proc/net/tcp) of the IPv4 socket bound
// to 127.0.0.1:local, connected to 127.0.0.1:remote, or listening when remote is 0.
func tcpSocketUID(t *testing.T, local, remote int) int {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	wantLocal := fmt.Sprintf("0100007F:%04X", local)
	wantRemote, wantState := fmt.Sprintf("0100007F:%04X", remote), "01" // ESTABLISHED
	if remote == 0 {
		wantRemote, wantState = "00000000:0000", "0A" // LISTEN
	}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || fields[1] != wantLocal || fields[2] != wantRemote || fields[3] != wantState {
			continue
		}
		n, err := strconv.Atoi(fields[7])
		if err != nil {
			t.Fatalf("/proc/net/tcp: unreadable uid in %q", sc.Text())
		}
		return n
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Fatalf("no socket 127.0.0.1:%d → 127.0.0.1:%d (state %s) in /proc/net/tcp", local, remote, wantState)
	return -1
}
