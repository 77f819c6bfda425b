package transport

import (
	"math/rand/v2"
	"time"
)

// Backoff spaces reconnect attempts: exponential with full jitter (each wait is uniform
// in [0, min(Cap, Base·2ⁿ)]), so a crowd of leaves that lost the same root does not come
// back in lockstep; a tunnel that stayed up for StableAfter resets it.
type Backoff struct {
	// Base is the first ceiling (default 500 ms), Cap the largest (default 30 s).
	Base, Cap time.Duration
	// StableAfter is how long a tunnel must stay up to reset the backoff (default 30 s).
	StableAfter time.Duration

	attempt int
}

func (b *Backoff) withDefaults() {
	if b.Base <= 0 {
		b.Base = 500 * time.Millisecond
	}
	if b.Cap <= 0 {
		b.Cap = 30 * time.Second
	}
	if b.StableAfter <= 0 {
		b.StableAfter = 30 * time.Second
	}
}

// Ceiling is the largest wait the next attempt may draw.
func (b *Backoff) Ceiling() time.Duration {
	b.withDefaults()
	c := b.Base
	for i := 0; i < b.attempt && c < b.Cap; i++ {
		c *= 2
	}
	return min(c, b.Cap)
}

// Next draws the wait before the next attempt and counts the attempt.
func (b *Backoff) Next() time.Duration {
	c := b.Ceiling()
	if b.attempt < 62 {
		b.attempt++
	}
	return rand.N(c + 1)
}

// Connected tells the backoff a tunnel ran for up; a stable one resets it.
func (b *Backoff) Connected(up time.Duration) {
	b.withDefaults()
	if up >= b.StableAfter {
		b.attempt = 0
	}
}
