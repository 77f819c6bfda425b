package testenv

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// CheckSSHHandshakesBounded is the attacker's test of an SSH server's MaxStartups-like
// bound (limit) at addr: limit connections that send a version line and then nothing are
// each answered with the server's; the next is closed unanswered; once one of them
// leaves, a new connection is answered again within 10 s. what names the bound in
// failures ("ssh_max_startups"). Every connection it opens is closed when it returns.
func CheckSSHHandshakesBounded(t *testing.T, addr string, limit int, what string) {
	t.Helper()
	var all []net.Conn
	defer func() {
		for _, c := range all {
			c.Close()
		}
	}()
	stall := func() (net.Conn, string) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, c)
		if _, err := c.Write([]byte("SSH-2.0-attacker\r\n")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil && strings.Contains(err.Error(), "timeout") {
			t.Fatalf("no answer and no close within 5 s: %v", err)
		}
		return c, line
	}
	var held []net.Conn
	for i := 0; i < limit; i++ {
		c, line := stall()
		if !strings.HasPrefix(line, "SSH-2.0-") {
			t.Fatalf("connection %d within the limit: %q", i, line)
		}
		held = append(held, c)
	}
	if _, line := stall(); line != "" {
		t.Fatalf("a connection over %s=%d was answered %q; want it closed unanswered", what, limit, line)
	}
	held[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, line := stall(); strings.HasPrefix(line, "SSH-2.0-") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no handshake after a place was freed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
