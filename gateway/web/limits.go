package web

import (
	"context"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/internal/startups"
)

// maxTracked bounds the per-address state each of the helpers below keeps; past it, state
// that no longer matters (full buckets, quiet peers) is dropped first.
const maxTracked = 10000

// clientKey is the address a client is counted under, the source the SSH servers bound
// their handshakes by (startups.Source): the IP of an IPv4 peer, the /64 of an IPv6 one.
// Only the connection's own peer address counts: forwarded-for headers are the caller's
// to invent.
func clientKey(remoteAddr string) string { return startups.SourceOf(remoteAddr) }

// rateLimiter is a token bucket per client address: burst requests at once, then one
// every 1/rate seconds.
type rateLimiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, burst int, now func() time.Time) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), now: now, buckets: map[string]*bucket{}}
}

// allow takes a token for key, or says how long until one is there.
func (l *rateLimiter) allow(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxTracked {
			l.prune(now)
		}
		if len(l.buckets) >= maxTracked {
			// Too many addresses at once to track: refuse rather than forget one
			// that is being limited.
			return false, time.Duration(float64(time.Second) / l.rate)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// prune drops the buckets that have refilled: forgetting them changes nothing.
func (l *rateLimiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// failureCounter counts failed handshake attempts by reason and address; report turns a
// period's counts into one log line and one audit event.
type failureCounter struct {
	mu       sync.Mutex
	total    int
	byReason map[string]int
	byAddr   map[string]int
}

func newFailureCounter() *failureCounter {
	return &failureCounter{byReason: map[string]int{}, byAddr: map[string]int{}}
}

func (c *failureCounter) add(addr, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total++
	c.byReason[reason]++
	if _, ok := c.byAddr[addr]; ok || len(c.byAddr) < maxTracked {
		c.byAddr[addr]++
	} else {
		c.byAddr["other"]++
	}
}

// take returns the period's counts and starts a new period.
func (c *failureCounter) take() (int, map[string]int, map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	total, byReason, byAddr := c.total, c.byReason, c.byAddr
	c.total, c.byReason, c.byAddr = 0, map[string]int{}, map[string]int{}
	return total, byReason, byAddr
}

// topAddresses keeps the n addresses with the most failures (the line stays short under a
// distributed flood); the rest are summed under "others".
func topAddresses(byAddr map[string]int, n int) map[string]int {
	if len(byAddr) <= n {
		return byAddr
	}
	keys := make([]string, 0, len(byAddr))
	for k := range byAddr {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if byAddr[keys[i]] != byAddr[keys[j]] {
			return byAddr[keys[i]] > byAddr[keys[j]]
		}
		return keys[i] < keys[j]
	})
	out := map[string]int{}
	for i, k := range keys {
		if i < n {
			out[k] = byAddr[k]
		} else {
			out["others"] += byAddr[k]
		}
	}
	return out
}

// reportFailures writes one summary of the failed handshake attempts every interval (none
// for a quiet period) until ctx ends, then a last one.
func (s *Server) reportFailures(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.flushFailures(context.WithoutCancel(ctx), interval)
			return
		case <-t.C:
			s.flushFailures(ctx, interval)
		}
	}
}

func (s *Server) flushFailures(ctx context.Context, period time.Duration) {
	total, byReason, byAddr := s.failures.take()
	if total == 0 {
		return
	}
	top := topAddresses(byAddr, 10)
	s.log.Warn("failed trust handshake attempts", "period", period, "failures", total, "by_reason", byReason, "by_address", top)
	s.cfg.Auth.Audit(ctx, auth.AuditEvent{Type: auth.AuditTrustFailures, Fields: map[string]any{
		"period": period.String(), "failures": total, "by_reason": byReason, "by_address": top,
	}})
}

// peerLog rate-limits warnings per peer: the first failure of a peer in a window is
// logged (and audited) with the count of those suppressed since its last line.
type peerLog struct {
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	peers map[string]*peerState
}

type peerState struct {
	logged     time.Time
	suppressed int
}

func newPeerLog(window time.Duration, now func() time.Time) *peerLog {
	return &peerLog{window: window, now: now, peers: map[string]*peerState{}}
}

// note records a failure of peer and reports whether to write it, with how many were
// suppressed before it.
func (p *peerLog) note(peer string) (bool, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	st := p.peers[peer]
	if st == nil {
		if len(p.peers) >= maxTracked {
			for k, v := range p.peers {
				if now.Sub(v.logged) >= p.window {
					delete(p.peers, k)
				}
			}
		}
		st = &peerState{}
		if len(p.peers) < maxTracked {
			p.peers[peer] = st
		}
	}
	if !st.logged.IsZero() && now.Sub(st.logged) < p.window {
		st.suppressed++
		return false, 0
	}
	n := st.suppressed
	st.logged, st.suppressed = now, 0
	return true, n
}

// adminAuthFailed records a failed authentication on the admin API: one warning and one
// audit event per peer and window, carrying the number suppressed since the last.
func (s *Server) adminAuthFailed(ctx context.Context, remoteAddr, subject, reason string) {
	write, suppressed := s.adminFailures.note(clientKey(remoteAddr))
	if !write {
		return
	}
	s.log.Warn("admin API authentication failed", "peer", remoteAddr, "reason", reason, "subject", subject, "suppressed", suppressed)
	s.cfg.Auth.Audit(ctx, auth.AuditEvent{Type: auth.AuditAdminAuthFailed, Fields: map[string]any{
		"peer": remoteAddr, "reason": reason, "subject": subject, "suppressed": suppressed,
	}})
}
