package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestConcurrentSignInsCannotOutrunTheFailureLimit: the limit of failed sign-ins was
// checked before the password and counted after it (argon2id takes tens of milliseconds),
// so an attacker who sends many attempts at once had every one of them checked before the
// first failure was counted: a thousand guesses (or, with the password, a thousand
// one-time codes) per window instead of five, and 19 MiB of argon2 memory each at once.
func TestConcurrentSignInsCannotOutrunTheFailureLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		cfg        UsersConfig
		user       func(i int) string
		wantUpTo   int
		attempts   int
		sameRemote bool
	}{
		{"per_user", UsersConfig{UserFailures: 3, AddrFailures: 1000}, func(int) string { return "alice" }, 3, 24, false},
		{"per_address", UsersConfig{UserFailures: 1000, AddrFailures: 4}, func(i int) string { return "nobody" + string(rune('a'+i)) }, 4, 24, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newUsersFixture(t, tc.cfg)
			f.signUp(t, "alice")
			key := newKey(t)
			start := make(chan struct{})
			var wg sync.WaitGroup
			var mu sync.Mutex
			checked := 0
			for i := range tc.attempts {
				remote := "10.0.0.1"
				if !tc.sameRemote {
					remote = "10.0.1." + string(rune('0'+i%10))
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, err := f.u.Login(ctx, LoginRequest{User: tc.user(i), Password: "a wrong guess", OTP: "000000", PublicKey: key, Remote: remote})
					var rl *RateLimitedError
					switch {
					case errors.Is(err, ErrLoginFailed):
						mu.Lock()
						checked++
						mu.Unlock()
					case errors.As(err, &rl):
					default:
						t.Errorf("attempt %d: %v", i, err)
					}
				}()
			}
			close(start)
			wg.Wait()
			if checked > tc.wantUpTo {
				t.Fatalf("%d of %d concurrent attempts had their password checked; the limit is %d", checked, tc.attempts, tc.wantUpTo)
			}
			if n := len(f.audit.of(AuditLoginLimited)); n != 1 {
				t.Fatalf("%d lockout events, want 1", n)
			}
		})
	}
}

// TestAnAttemptThatDidNotFailIsTakenBack: begin counts an attempt before it is checked;
// one that succeeds (or ends in a store error) must not stay counted, and attempts still
// being checked hold a key for a moment, not for the window.
func TestAnAttemptThatDidNotFailIsTakenBack(t *testing.T) {
	t.Parallel()
	l := newFailureLimiter(2, time.Minute)
	t0 := time.Unix(1_000_000, 0)
	for i := range 5 {
		at := t0.Add(time.Duration(i) * time.Second)
		if w, _ := l.begin("k", at); w != 0 {
			t.Fatalf("attempt %d waits %v though every earlier one was taken back", i, w)
		}
		l.end("k", at, false)
	}
	// Two attempts in flight: a third waits a second, not the window.
	l.begin("k", t0)
	l.begin("k", t0)
	if w, _ := l.begin("k", t0); w != time.Second {
		t.Fatalf("with the key full of attempts in flight, a third waits %v, want 1s", w)
	}
	l.end("k", t0, false)
	l.end("k", t0, false)
	if _, locks := l.begin("k", t0); !locks.IsZero() {
		t.Fatal("the first failure locked the key")
	}
	l.end("k", t0, true)
	if _, locks := l.begin("k", t0.Add(time.Second)); !locks.Equal(t0.Add(time.Minute)) {
		t.Fatalf("the second failure locks until %v, want %v", locks, t0.Add(time.Minute))
	}
	l.end("k", t0.Add(time.Second), true)
	if w, _ := l.begin("k", t0.Add(2*time.Second)); w != 58*time.Second {
		t.Fatalf("a locked key waits %v, want 58s", w)
	}
}

// TestASuccessfulSignInDoesNotForgiveGuessesInFlight: a sign-in that succeeds clears the
// user name's failures (as Teleport does), but attempts still being checked at that moment
// were counted before their check and must stay counted if they fail: clearing them let
// an attacker who guessed while the victim signed in have those guesses for free, and
// start again with a clean count.
func TestASuccessfulSignInDoesNotForgiveGuessesInFlight(t *testing.T) {
	t.Parallel()
	l := newFailureLimiter(5, time.Minute)
	t0 := time.Unix(1_000_000, 0)
	// Two earlier failures, then the attacker's four guesses in flight.
	for i := range 2 {
		at := t0.Add(time.Duration(i) * time.Second)
		l.begin("alice", at)
		l.end("alice", at, true)
	}
	guesses := t0.Add(10 * time.Second)
	for range 3 {
		if w, _ := l.begin("alice", guesses); w != 0 {
			t.Fatalf("a guess waits %v with 2 failures and a limit of 5", w)
		}
	}
	// alice signs in: her earlier failures are forgiven...
	l.reset("alice")
	// ...the guesses in flight fail and stay counted: 3 of 5, so two more guesses at most.
	for range 3 {
		l.end("alice", guesses, true)
	}
	more := 0
	for i := range 10 {
		at := guesses.Add(time.Duration(i+1) * time.Second)
		if w, _ := l.begin("alice", at); w != 0 {
			break
		}
		l.end("alice", at, true)
		more++
	}
	if more != 2 {
		t.Fatalf("after alice's sign-in the attacker had %d more guesses, want 2 (3 of the 5 were in flight)", more)
	}
}
