// Package startups bounds the connections an SSH server holds before they have
// authenticated, as OpenSSH's MaxStartups does with its hard limit: a connection over
// the bound is closed unanswered, before any work is done for it. A second bound per
// source (Source: one IPv4 address, one IPv6 /64) keeps one host from taking every place
// and locking everyone else out. Refusals are reported at most once a minute, so a flood
// does not become a flood of log lines.
package startups

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Limit is a bound on connections in their handshake. Create it with New.
type Limit struct {
	slots     chan struct{}
	perSource int // 0: no bound per source

	mu       sync.Mutex
	bySource map[string]int
	since    time.Time
	refused  int
}

// New is a Limit of n connections at once (at least one), and of perSource from one
// source; perSource ≤ 0 sets no bound per source.
func New(n, perSource int) *Limit {
	return &Limit{slots: make(chan struct{}, max(n, 1)), perSource: max(perSource, 0), bySource: map[string]int{}}
}

// Max is the bound.
func (l *Limit) Max() int { return cap(l.slots) }

// MaxPerSource is the bound per source, 0 for none.
func (l *Limit) MaxPerSource() int { return l.perSource }

// Source is the group a peer address counts in: an IPv4 address (an IPv4-mapped IPv6 one
// too), or the /64 of an IPv6 address, since one IPv6 host commonly holds a whole /64.
// An address that is not IP is its own group.
func Source(addr net.Addr) string {
	switch a := addr.(type) {
	case nil:
		return ""
	case *net.TCPAddr:
		return sourceOfIP(a.AddrPort().Addr(), addr.String())
	case *net.UDPAddr:
		return sourceOfIP(a.AddrPort().Addr(), addr.String())
	}
	return SourceOf(addr.String())
}

// SourceOf is Source for an address written HOST:PORT or HOST (http.Request.RemoteAddr).
func SourceOf(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	return sourceOfIP(ip, host)
}

func sourceOfIP(ip netip.Addr, orig string) string {
	ip = ip.Unmap().WithZone("")
	switch {
	case !ip.IsValid():
		return orig
	case ip.Is4():
		return ip.String()
	}
	return netip.PrefixFrom(ip, 64).Masked().String()
}

// Why a place was refused.
const (
	refusedNone = iota
	refusedGlobal
	refusedSource
)

// take takes a place for a connection from source; release gives it back (once, however
// often it is called). why says which bound refused.
func (l *Limit) take(source string) (release func(), why int) {
	if l.perSource > 0 {
		l.mu.Lock()
		if l.bySource[source] >= l.perSource {
			l.mu.Unlock()
			return nil, refusedSource
		}
		l.bySource[source]++
		l.mu.Unlock()
	}
	select {
	case l.slots <- struct{}{}:
	default:
		l.giveBack(source)
		return nil, refusedGlobal
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-l.slots
			l.giveBack(source)
		})
	}, refusedNone
}

func (l *Limit) giveBack(source string) {
	if l.perSource == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bySource[source]--; l.bySource[source] <= 0 {
		delete(l.bySource, source)
	}
}

// Take takes a place for a new connection from addr; release gives it back (once, however
// often it is called). ok is false when every place, or every place of addr's source, is
// held; the caller closes the connection and calls Refused.
func (l *Limit) Take(addr net.Addr) (release func(), ok bool) {
	release, why := l.take(Source(addr))
	return release, why == refusedNone
}

// Refused counts a refusal at now. report is true for the first refusal of a minute;
// n is then the refusals since the last report, this one included.
func (l *Limit) Refused(now time.Time) (n int, report bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refused++
	if now.Sub(l.since) < time.Minute {
		return 0, false
	}
	n, l.since, l.refused = l.refused, now, 0
	return n, true
}

// Admit takes a place for c, or closes c and, at most once a minute, logs on log which
// bound refused it, with c's address and the refusals since the last report. key names
// the bound as configured ("ssh_max_startups"; the bound per source is key_per_source),
// what the connections ("SSH connections"). The message says only that the bound was
// reached: Bounded holds places for connections past their handshake too.
func (l *Limit) Admit(c net.Conn, log *slog.Logger, key, what string) (release func(), ok bool) {
	release, why := l.take(Source(c.RemoteAddr()))
	if why == refusedNone {
		return release, true
	}
	c.Close()
	if n, report := l.Refused(time.Now()); report {
		if why == refusedSource {
			log.Warn("refused "+what+": "+key+"_per_source reached by one source",
				key+"_per_source", l.perSource, "source", Source(c.RemoteAddr()), "remote", c.RemoteAddr().String(), "refused_since_last_report", n)
		} else {
			log.Warn("refused "+what+": "+key+" reached",
				key, l.Max(), "remote", c.RemoteAddr().String(), "refused_since_last_report", n)
		}
	}
	return nil, false
}

// Bounded wraps l so that each connection it accepts holds a place of lim for as long as
// it is open (until its Close, however often called): a connection over a bound is closed
// unanswered, as Admit does, and the next is accepted.
func Bounded(l net.Listener, lim *Limit, log *slog.Logger, key, what string) net.Listener {
	return &boundedListener{Listener: l, lim: lim, log: log, key: key, what: what}
}

type boundedListener struct {
	net.Listener
	lim       *Limit
	log       *slog.Logger
	key, what string
}

func (b *boundedListener) Accept() (net.Conn, error) {
	for {
		c, err := b.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if release, ok := b.lim.Admit(c, b.log, b.key, b.what); ok {
			return &heldConn{Conn: c, release: release}, nil
		}
	}
}

// heldConn gives its place back when closed.
type heldConn struct {
	net.Conn
	release func()
}

func (c *heldConn) Close() error {
	c.release()
	return c.Conn.Close()
}
