package startups

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func tcp(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }

func TestLimit(t *testing.T) {
	l := New(2, 0)
	a := tcp("192.0.2.1:1")
	r1, ok1 := l.Take(a)
	_, ok2 := l.Take(a)
	if !ok1 || !ok2 {
		t.Fatal("places within the bound refused")
	}
	if _, ok := l.Take(a); ok {
		t.Fatal("a place over the bound given")
	}
	r1()
	r1() // a second release gives back nothing more
	if _, ok := l.Take(a); !ok {
		t.Fatal("a released place not given again")
	}
	if _, ok := l.Take(a); ok {
		t.Fatal("a release counted twice")
	}
	if New(0, 0).Max() != 1 {
		t.Fatal("New(0) must still bound")
	}
}

// The attacker's case: one host fills its share of the places; another host still gets
// in, and the host gets a place back as soon as one of its own is released.
func TestOneSourceCannotTakeEveryPlace(t *testing.T) {
	l := New(4, 2)
	attacker, other := tcp("192.0.2.1:1000"), tcp("198.51.100.7:2000")
	var held []func()
	for i := range 2 {
		r, ok := l.Take(tcp(fmt.Sprintf("192.0.2.1:%d", 1+i)))
		if !ok {
			t.Fatalf("place %d of the source refused", i)
		}
		held = append(held, r)
	}
	if _, ok := l.Take(attacker); ok {
		t.Fatal("a third place from one source given, bound 2")
	}
	r, ok := l.Take(other)
	if !ok {
		t.Fatal("another source refused while the first holds only its share")
	}
	held[0]()
	held[0]()
	if _, ok := l.Take(attacker); !ok {
		t.Fatal("a place released by the source not given back to it")
	}
	r()
	held[1]()
	if len(l.bySource) != 1 {
		t.Fatalf("sources with no place held are kept: %v", l.bySource)
	}
}

// A refusal by the global bound does not keep a place of the source.
func TestGlobalRefusalGivesTheSourceBack(t *testing.T) {
	l := New(1, 5)
	a, b := tcp("192.0.2.1:1"), tcp("192.0.2.2:1")
	r, _ := l.Take(a)
	for range 10 {
		if _, ok := l.Take(b); ok {
			t.Fatal("a place over the global bound given")
		}
	}
	r()
	if len(l.bySource) != 0 {
		t.Fatalf("refused takes left counts: %v", l.bySource)
	}
}

func TestSource(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{tcp("192.0.2.1:22"), "192.0.2.1"},
		{tcp("[::ffff:192.0.2.1]:22"), "192.0.2.1"},
		{tcp("[2001:db8:1:2:3:4:5:6]:22"), "2001:db8:1:2::/64"},
		{tcp("[2001:db8:1:2:ffff::1]:22"), "2001:db8:1:2::/64"},
		{tcp("[2001:db8:1:3::1]:22"), "2001:db8:1:3::/64"},
		{&net.UDPAddr{IP: net.ParseIP("203.0.113.9"), Port: 443}, "203.0.113.9"},
		{&net.UnixAddr{Name: "@x", Net: "unix"}, "@x"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 22, Zone: "eth0"}, "fe80::/64"},
	} {
		if got := Source(tc.addr); got != tc.want {
			t.Errorf("Source(%v) = %q, want %q", tc.addr, got, tc.want)
		}
		if got := SourceOf(tc.addr.String()); got != tc.want {
			t.Errorf("SourceOf(%q) = %q, want %q", tc.addr.String(), got, tc.want)
		}
	}
}

func TestRefusedReportsOnceAMinute(t *testing.T) {
	l := New(1, 0)
	t0 := time.Unix(1_800_000_000, 0)
	for i, tc := range []struct {
		at     time.Duration
		n      int
		report bool
	}{
		{0, 1, true},
		{time.Second, 0, false},
		{30 * time.Second, 0, false},
		{61 * time.Second, 3, true},
		{62 * time.Second, 0, false},
	} {
		n, report := l.Refused(t0.Add(tc.at))
		if n != tc.n || report != tc.report {
			t.Fatalf("refusal %d at +%v: n=%d report=%v, want n=%d report=%v", i, tc.at, n, report, tc.n, tc.report)
		}
	}
}

// refusedConn is a connection Admit may refuse: it records its Close.
type refusedConn struct {
	net.Conn
	remote net.Addr
	closed bool
}

func (c *refusedConn) RemoteAddr() net.Addr { return c.remote }
func (c *refusedConn) Close() error         { c.closed = true; return nil }

// An operator reading the log must know which setting to raise: the refusal names the
// bound that refused, the global one or the one per source, and is closed unanswered.
func TestAdmitNamesTheBoundThatRefused(t *testing.T) {
	for _, tc := range []struct {
		name      string
		n, per    int
		held, new string
		want      []string
		notWant   string
	}{
		{"global", 1, 5, "192.0.2.1:1", "198.51.100.7:1",
			[]string{"refused SSH connections: ssh_max_startups reached", "ssh_max_startups=1", "remote=198.51.100.7:1", "refused_since_last_report=1"},
			"_per_source"},
		{"per_source", 5, 1, "192.0.2.1:1", "192.0.2.1:2",
			[]string{"refused SSH connections: ssh_max_startups_per_source reached by one source", "ssh_max_startups_per_source=1", "source=192.0.2.1", "remote=192.0.2.1:2"},
			"ssh_max_startups=5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			l := New(tc.n, tc.per)
			if _, ok := l.Take(tcp(tc.held)); !ok {
				t.Fatal("the first place refused")
			}
			c := &refusedConn{remote: tcp(tc.new)}
			if _, ok := l.Admit(c, log, "ssh_max_startups", "SSH connections"); ok || !c.closed {
				t.Fatalf("admitted=%v closed=%v, want refused and closed", ok, c.closed)
			}
			got := buf.String()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("log %q lacks %q", got, w)
				}
			}
			if strings.Contains(got, tc.notWant) {
				t.Errorf("log %q names the other bound (%q)", got, tc.notWant)
			}
			buf.Reset()
			if _, ok := l.Admit(&refusedConn{remote: tcp(tc.new)}, log, "ssh_max_startups", "SSH connections"); ok || buf.Len() != 0 {
				t.Fatalf("a second refusal within the minute: admitted=%v, logged %q", ok, buf.String())
			}
		})
	}
}
