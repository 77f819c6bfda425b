// Package startups bounds the connections an SSH server holds before they have
// authenticated, as OpenSSH's MaxStartups does with its hard limit: a connection over
// the bound is closed unanswered, before any work is done for it. Refusals are reported
// at most once a minute, so a flood does not become a flood of log lines.
package startups

import (
	"log/slog"
	"net"
	"sync"
	"time"
)

// Limit is a bound on connections in their handshake. Create it with New.
type Limit struct {
	slots chan struct{}

	mu      sync.Mutex
	since   time.Time
	refused int
}

// New is a Limit of n connections at once (at least one).
func New(n int) *Limit {
	return &Limit{slots: make(chan struct{}, max(n, 1))}
}

// Max is the bound.
func (l *Limit) Max() int { return cap(l.slots) }

// Take takes a place for a new connection; release gives it back (once, however often
// it is called). ok is false when every place is held; the caller closes the connection
// and calls Refused.
func (l *Limit) Take() (release func(), ok bool) {
	select {
	case l.slots <- struct{}{}:
	default:
		return nil, false
	}
	var once sync.Once
	return func() { once.Do(func() { <-l.slots }) }, true
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

// Admit takes a place for c, or closes c and, at most once a minute, logs msg on log with
// the bound, c's address and the refusals since the last report. key names the bound in
// the log line ("max_startups").
func (l *Limit) Admit(c net.Conn, log *slog.Logger, msg, key string) (release func(), ok bool) {
	if release, ok = l.Take(); ok {
		return release, true
	}
	c.Close()
	if n, report := l.Refused(time.Now()); report {
		log.Warn(msg, key, l.Max(), "remote", c.RemoteAddr().String(), "refused_since_last_report", n)
	}
	return nil, false
}
