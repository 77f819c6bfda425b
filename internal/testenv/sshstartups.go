package testenv

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// stalls opens connections that send an SSH version line and then nothing, as an
// attacker holding places in a server's handshake does.
type stalls struct {
	t    *testing.T
	addr string
	all  []net.Conn
}

// open connects from the loopback address from ("" for any) and returns the connection
// and the server's first line ("" when it closed the connection unanswered).
func (s *stalls) open(from string) (net.Conn, string) {
	s.t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", s.addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.all = append(s.all, c)
	if _, err := c.Write([]byte("SSH-2.0-attacker\r\n")); err != nil {
		s.t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && strings.Contains(err.Error(), "timeout") {
		s.t.Fatalf("no answer and no close within 5 s: %v", err)
	}
	return c, line
}

// fill opens n connections from from, each of which must be answered.
func (s *stalls) fill(from string, n int) []net.Conn {
	s.t.Helper()
	var held []net.Conn
	for i := range n {
		c, line := s.open(from)
		if !strings.HasPrefix(line, "SSH-2.0-") {
			s.t.Fatalf("connection %d from %s within the limit: %q", i, from, line)
		}
		held = append(held, c)
	}
	return held
}

// answeredAgain waits up to 10 s for a connection from from to be answered.
func (s *stalls) answeredAgain(from string) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, line := s.open(from); strings.HasPrefix(line, "SSH-2.0-") {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatal("no handshake after a place was freed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *stalls) closeAll() {
	for _, c := range s.all {
		c.Close()
	}
}

// CheckSSHHandshakesBounded is the attacker's test of an SSH server's MaxStartups-like
// bound (limit) at addr: limit connections that send a version line and then nothing are
// each answered with the server's; the next is closed unanswered; once one of them
// leaves, a new connection is answered again within 10 s. The connections come from
// several loopback addresses, so that a bound per source lower than limit does not
// refuse them first. what names the bound in failures ("ssh_max_startups"). Every
// connection it opens is closed when it returns.
func CheckSSHHandshakesBounded(t *testing.T, addr string, limit int, what string) {
	t.Helper()
	s := &stalls{t: t, addr: addr}
	defer s.closeAll()
	var held []net.Conn
	for i := range limit {
		held = append(held, s.fill(loopback(i), 1)...)
	}
	if _, line := s.open(loopback(limit)); line != "" {
		t.Fatalf("a connection over %s=%d was answered %q; want it closed unanswered", what, limit, line)
	}
	held[0].Close()
	s.answeredAgain(loopback(limit + 1))
}

// CheckSSHHandshakesBoundedPerSource is the attacker's test of the bound per source
// (perSource) of an SSH server at addr: perSource stalled connections from 127.0.0.1 are
// answered, the next from it is closed unanswered, one from 127.0.0.2 is still answered,
// and once one of 127.0.0.1's leaves, 127.0.0.1 is answered again within 10 s.
func CheckSSHHandshakesBoundedPerSource(t *testing.T, addr string, perSource int, what string) {
	t.Helper()
	s := &stalls{t: t, addr: addr}
	defer s.closeAll()
	held := s.fill("127.0.0.1", perSource)
	if _, line := s.open("127.0.0.1"); line != "" {
		t.Fatalf("a connection over %s=%d from one source was answered %q; want it closed unanswered", what, perSource, line)
	}
	if _, line := s.open("127.0.0.2"); !strings.HasPrefix(line, "SSH-2.0-") {
		t.Fatalf("another source was refused (%q) while the first held only its %s=%d", line, what, perSource)
	}
	held[0].Close()
	s.answeredAgain("127.0.0.1")
}

// loopback is the i-th address of 127.0.0.0/8 after 127.0.0.1 (each is its own source).
func loopback(i int) string {
	return net.IPv4(127, 0, byte(1+(i+1)/250), byte(1+(i+1)%250)).String()
}
