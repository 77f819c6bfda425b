package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestASignInWaitsForAPasswordCheckOnlyWhileItsCallerWaits: at most GOMAXPROCS argon2id
// checks run at once, the rest queue (hashSlots). Under a flood from many addresses (the
// failure limits bound one address, not many) the queue is long, and a sign-in whose
// caller has gone (tether's 30 s HTTP timeout, a closed connection: its request context
// ends) still waited its turn and then ran its 46 ms check for nobody, holding its place
// in the user's and the address's limits all the while: abandoned attempts lengthened the
// queue for everyone after them. A wait ends with its context, and the attempt is not
// counted (nothing was checked). Not parallel: it holds every slot.
func TestASignInWaitsForAPasswordCheckOnlyWhileItsCallerWaits(t *testing.T) {
	f := newUsersFixture(t, UsersConfig{UserFailures: 2})
	secret := f.signUp(t, "alice")
	// A flood's checks hold every slot.
	for range cap(hashSlots) {
		hashSlots <- struct{}{}
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			for range cap(hashSlots) {
				<-hashSlots
			}
		})
	}
	t.Cleanup(release)
	time.AfterFunc(3*time.Second, release)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := f.u.Login(ctx, LoginRequest{User: "alice", Password: "a guess", OTP: "000000", PublicKey: newKey(t), Remote: "10.0.0.1"})
	took := time.Since(start)
	if took > time.Second {
		t.Fatalf("a sign-in whose caller gave up after 200ms waited %v for a password check (err %v)", took.Round(time.Millisecond), err)
	}
	if err == nil || errors.Is(err, ErrLoginFailed) {
		t.Fatalf("an unchecked sign-in answered %v, want an error saying it was not checked", err)
	}
	release()
	// Not counted: alice's two allowed failures are both still there, and then her password.
	for i := range 2 {
		if _, err := f.u.Login(context.Background(), LoginRequest{User: "alice", Password: "a guess", OTP: "000000", PublicKey: newKey(t), Remote: "10.0.0.2"}); !errors.Is(err, ErrLoginFailed) {
			t.Fatalf("failure %d after the abandoned attempt: %v (the abandoned attempt was counted)", i+1, err)
		}
	}
	f.clock.Add(DefaultLoginFailureWindow + time.Second)
	if _, err := f.u.Login(context.Background(), LoginRequest{User: "alice", Password: goodPassword, OTP: f.nextCode(secret), PublicKey: newKey(t), Remote: "10.0.0.2"}); err != nil {
		t.Fatalf("alice after the window: %v", err)
	}
}
