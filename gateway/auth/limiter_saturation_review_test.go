package auth

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"
)

// Attacker review finding: the failure limiters track at most maxLimiterKeys keys and,
// full of keys with a failure in the window, refused every key they did not track. Failed sign-ins for made-up user names fill
// the user-name table: 100000 names at 20 failures per address (DefaultAddrFailures) is
// 5000 addresses per 5-minute window, an IPv6 /51 (clientKey counts a /64 as one
// address). Then every user whose name has no recent failure, that is every legitimate
// user, is refused sign-in for the window, renewed by the next wave. On main the fill
// rate is bounded by argon2id (failures are counted after the check, ~46 ms a check here);
// the attack branch counts attempts before the check (begin), so a wave costs only the
// requests. Now keys under their limit give way to newcomers (evictOne); it failed before.
func TestAFullUserNameTableLocksOutEveryLegitimateUser(t *testing.T) {
	ctx := context.Background()
	f := newUsersFixture(t, UsersConfig{})
	secret := f.signUp(t, "alice")
	now := f.clock.Now()
	// What 100000 failed sign-ins for made-up names leave behind (each also counted
	// against one of 5000 addresses, not shown: the address table holds 5000 keys).
	for i := range maxLimiterKeys {
		f.u.userLimit.add("made-up-"+strconv.Itoa(i), now)
	}
	code := f.nextCode(secret)
	_, err := f.u.Login(ctx, LoginRequest{User: "alice", Password: goodPassword, OTP: code, PublicKey: newKey(t), Remote: "192.0.2.7"})
	var rl *RateLimitedError
	if errors.As(err, &rl) {
		t.Fatalf("alice, who never failed a sign-in, is refused for %v because strangers' made-up names fill the table", rl.RetryAfter.Round(time.Second))
	}
	if err != nil {
		t.Fatal(err)
	}
}
