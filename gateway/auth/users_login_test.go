package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/state"
)

// memAuditor keeps the audit events for assertions.
type memAuditor struct {
	mu     sync.Mutex
	events []AuditEvent
}

func (a *memAuditor) Audit(_ context.Context, ev AuditEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, ev)
}

func (a *memAuditor) of(typ string) []AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []AuditEvent
	for _, e := range a.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type usersFixture struct {
	s     *Service
	u     *Users
	audit *memAuditor
	clock *clock
}

const signinResources = `kind: role
version: v5
metadata: {name: access}
spec:
  allow:
    logins: ["{{internal.logins}}"]
    node_labels: {'*': '*'}
---
kind: role
version: v5
metadata: {name: short}
spec:
  options: {max_session_ttl: 1h}
  allow:
    logins: ["{{internal.logins}}"]
---
kind: user
version: v2
metadata: {name: alice}
spec:
  roles: [access]
  traits: {logins: [visitor, ubuntu]}
---
kind: user
version: v2
metadata: {name: bob}
spec:
  roles: [access]
  traits: {logins: [bob]}
---
kind: user
version: v2
metadata: {name: carol}
spec:
  roles: [access, short]
  traits: {logins: [carol]}
---
kind: user
version: v2
metadata: {name: nologins}
spec:
  roles: [access]
`

func newUsersFixture(t *testing.T, cfg UsersConfig) *usersFixture {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := state.OpenEmbedded(state.EmbeddedConfig{Dir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := ca.NewCluster("root.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.New(policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	f := &usersFixture{audit: &memAuditor{}, clock: &clock{t: time.Now()}}
	f.s, err = New(context.Background(), Config{ClusterName: "root.example.com", CA: c, Store: st, Engine: eng, Logger: quiet, Auditor: f.audit, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Create(context.Background(), mustParse(t, signinResources), false); err != nil {
		t.Fatal(err)
	}
	f.u = NewUsers(f.s, cfg)
	return f
}

const goodPassword = "correct horse battery"

// signUp issues a token for name and completes the sign-up; it returns the TOTP secret.
func (f *usersFixture) signUp(t *testing.T, name string) []byte {
	t.Helper()
	ctx := context.Background()
	token, _, err := f.u.IssueSignup(ctx, name, 0)
	if err != nil {
		t.Fatal(err)
	}
	info, err := f.u.SignupInfo(ctx, token, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	secret, err := DecodeTOTPSecret(info.TOTPSecret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.u.CompleteSignup(ctx, token, goodPassword, TOTPCode(secret, f.clock.Now()), "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	return secret
}

func newKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(ssh.MarshalAuthorizedKey(k))
}

// nextCode is the code of the step after the last one used, which the login accepts.
func (f *usersFixture) nextCode(secret []byte) string {
	f.clock.Add(TOTPPeriod)
	return TOTPCode(secret, f.clock.Now())
}

func TestTOTPMatchesRFC6238(t *testing.T) {
	t.Parallel()
	secret := []byte("12345678901234567890")
	// RFC 6238 appendix B, SHA-1, the last six of the eight digits.
	for _, tc := range []struct {
		unix int64
		code string
	}{{59, "287082"}, {1111111109, "081804"}, {1111111111, "050471"}, {1234567890, "005924"}, {2000000000, "279037"}, {20000000000, "353130"}} {
		if got := TOTPCode(secret, time.Unix(tc.unix, 0)); got != tc.code {
			t.Errorf("TOTPCode at %d = %s, want %s", tc.unix, got, tc.code)
		}
	}
	now := time.Unix(1111111111, 0)
	for _, tc := range []struct {
		name string
		at   time.Time
		used int64
		ok   bool
	}{
		{"current_step", now, -1, true},
		{"one_step_early_is_accepted", now.Add(-TOTPPeriod), -1, true},
		{"one_step_late_is_accepted", now.Add(TOTPPeriod), -1, true},
		{"two_steps_off_is_refused", now.Add(2 * TOTPPeriod), -1, false},
		{"a_used_step_is_refused", now, now.Unix() / 30, false},
	} {
		if _, ok := checkTOTP(secret, TOTPCode(secret, tc.at), now, tc.used); ok != tc.ok {
			t.Errorf("%s: accepted=%v, want %v", tc.name, ok, tc.ok)
		}
	}
	if _, ok := checkTOTP(secret, "", now, -1); ok {
		t.Error("an empty code was accepted")
	}
	if u := TOTPURI("root.example.com", "alice", secret); !strings.HasPrefix(u, "otpauth://totp/root.example.com:alice?") || !strings.Contains(u, "secret="+EncodeTOTPSecret(secret)) {
		t.Errorf("TOTPURI = %s", u)
	}
}

func TestPasswordHashIsArgon2idWithASaltPerHash(t *testing.T) {
	t.Parallel()
	a, err := hashPassword(context.Background(), goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := hashPassword(context.Background(), goodPassword)
	if a.Alg != "argon2id" || a.Memory != argonMemory || a.Time != argonTime || string(a.Salt) == string(b.Salt) || string(a.Hash) == string(b.Hash) {
		t.Fatalf("hashes %+v and %+v: want argon2id with its parameters and a salt each", a, b)
	}
	if !a.matchesNow(goodPassword) || a.matchesNow(goodPassword+"x") || a.matchesNow("") {
		t.Fatal("matches is wrong")
	}
	damaged := a
	damaged.Memory = 1
	if damaged.matchesNow(goodPassword) {
		t.Fatal("a hash with parameters out of bounds matched")
	}
	if dummyHash.matchesNow("") || dummyHash.matchesNow(goodPassword) {
		t.Fatal("the dummy hash matched")
	}
}

func TestSignInAttacks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newUsersFixture(t, UsersConfig{UserFailures: 100, AddrFailures: 100})
	secret := f.signUp(t, "alice")
	key := newKey(t)
	login := func(user, pw, code string) error {
		_, err := f.u.Login(ctx, LoginRequest{User: user, Password: pw, OTP: code, PublicKey: key, Remote: "10.0.0.1"})
		return err
	}

	t.Run("wrong_password_fails", func(t *testing.T) {
		if err := login("alice", "wrong password", f.nextCode(secret)); !errors.Is(err, ErrLoginFailed) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("wrong_code_fails", func(t *testing.T) {
		f.clock.Add(TOTPPeriod)
		code := TOTPCode(secret, f.clock.Now())
		wrong := "000000"
		if code == wrong {
			wrong = "111111"
		}
		if err := login("alice", goodPassword, wrong); !errors.Is(err, ErrLoginFailed) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a_code_signs_in_once", func(t *testing.T) {
		code := f.nextCode(secret)
		if err := login("alice", goodPassword, code); err != nil {
			t.Fatalf("first use: %v", err)
		}
		if err := login("alice", goodPassword, code); !errors.Is(err, ErrLoginFailed) {
			t.Fatalf("reuse: err = %v", err)
		}
		// An older code of the window is refused too once a later one was used.
		if err := login("alice", goodPassword, TOTPCode(secret, f.clock.Now().Add(-TOTPPeriod))); !errors.Is(err, ErrLoginFailed) {
			t.Fatalf("older code: err = %v", err)
		}
		last := f.audit.of(AuditLoginFailed)
		if r := last[len(last)-1].Fields["reason"]; r != "one-time code already used" {
			t.Fatalf("audited reason %v", r)
		}
	})
	t.Run("unknown_user_and_user_without_password_read_as_a_wrong_password", func(t *testing.T) {
		wrong := login("alice", "wrong password", f.nextCode(secret))
		unknown := login("mallory", goodPassword, f.nextCode(secret))
		noPassword := login("bob", goodPassword, f.nextCode(secret))
		if wrong == nil || unknown == nil || noPassword == nil || wrong.Error() != unknown.Error() || wrong.Error() != noPassword.Error() {
			t.Fatalf("answers differ: %v / %v / %v", wrong, unknown, noPassword)
		}
		ev := f.audit.of(AuditLoginFailed)
		if ev[len(ev)-2].Fields["reason"] != "unknown user" || ev[len(ev)-1].Fields["reason"] != "no password set (sign-up not completed)" {
			t.Fatalf("the audit log must say why: %v, %v", ev[len(ev)-2].Fields, ev[len(ev)-1].Fields)
		}
	})
	t.Run("sign_up_token_is_used_once", func(t *testing.T) {
		token, _, err := f.u.IssueSignup(ctx, "bob", 0)
		if err != nil {
			t.Fatal(err)
		}
		info, err := f.u.SignupInfo(ctx, token, "10.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		sec, _ := DecodeTOTPSecret(info.TOTPSecret)
		if _, err := f.u.CompleteSignup(ctx, token, goodPassword, TOTPCode(sec, f.clock.Now()), "10.0.0.1"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.u.CompleteSignup(ctx, token, "another password", TOTPCode(sec, f.clock.Now()), "10.0.0.1"); !errors.Is(err, ErrSignupRejected) {
			t.Fatalf("second redemption: err = %v", err)
		}
		if _, err := f.u.SignupInfo(ctx, token, "10.0.0.1"); !errors.Is(err, ErrSignupRejected) {
			t.Fatalf("info after use: err = %v", err)
		}
	})
	t.Run("expired_sign_up_token_is_refused", func(t *testing.T) {
		token, _, err := f.u.IssueSignup(ctx, "nologins", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Add(2 * time.Minute)
		if _, err := f.u.SignupInfo(ctx, token, "10.0.0.1"); !errors.Is(err, ErrSignupRejected) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("reset_voids_the_password_and_older_tokens", func(t *testing.T) {
		old, _, err := f.u.IssueSignup(ctx, "carol", 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.u.IssueSignup(ctx, "carol", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.u.SignupInfo(ctx, old, "10.0.0.1"); !errors.Is(err, ErrSignupRejected) {
			t.Fatalf("older token: err = %v", err)
		}
		if _, _, err := f.u.IssueSignup(ctx, "alice", 0); err != nil {
			t.Fatal(err)
		}
		if err := login("alice", goodPassword, f.nextCode(secret)); !errors.Is(err, ErrLoginFailed) {
			t.Fatalf("login after reset: err = %v", err)
		}
		secret = f.signUp(t, "alice")
	})
	t.Run("deleting_a_user_deletes_its_credentials", func(t *testing.T) {
		sec := f.signUp(t, "carol")
		if _, err := f.s.Delete(ctx, "user", "carol"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.Create(ctx, mustParse(t, "kind: user\nversion: v2\nmetadata: {name: carol}\nspec: {roles: [access], traits: {logins: [carol]}}\n"), false); err != nil {
			t.Fatal(err)
		}
		if err := login("carol", goodPassword, f.nextCode(sec)); !errors.Is(err, ErrLoginFailed) {
			t.Fatalf("a new user of the old name inherited the password: err = %v", err)
		}
	})
	t.Run("weak_password_is_refused_at_sign_up", func(t *testing.T) {
		token, _, _ := f.u.IssueSignup(ctx, "carol", 0)
		if _, err := f.u.CompleteSignup(ctx, token, "short", "123456", "10.0.0.1"); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("wrong_code_at_sign_up_keeps_the_token", func(t *testing.T) {
		token, _, _ := f.u.IssueSignup(ctx, "carol", 0)
		info, _ := f.u.SignupInfo(ctx, token, "10.0.0.1")
		sec, _ := DecodeTOTPSecret(info.TOTPSecret)
		if _, err := f.u.CompleteSignup(ctx, token, goodPassword, TOTPCode(sec, f.clock.Now().Add(5*TOTPPeriod)), "10.0.0.1"); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("err = %v", err)
		}
		if _, err := f.u.CompleteSignup(ctx, token, goodPassword, TOTPCode(sec, f.clock.Now()), "10.0.0.1"); err != nil {
			t.Fatalf("the token was used up by a failed attempt: %v", err)
		}
	})
}

func TestFailedSignInsAreRateLimitedPerUserAndPerAddress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newUsersFixture(t, UsersConfig{UserFailures: 3, AddrFailures: 5, FailureWindow: time.Minute})
	secret := f.signUp(t, "alice")
	bobSecret := f.signUp(t, "bob")
	key := newKey(t)
	try := func(user, pw, code, remote string) error {
		_, err := f.u.Login(ctx, LoginRequest{User: user, Password: pw, OTP: code, PublicKey: key, Remote: remote})
		return err
	}
	// Three wrong passwords for alice from three addresses lock the name.
	for i, addr := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		if err := try("alice", "guess", "000000", addr); !errors.Is(err, ErrLoginFailed) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	var rl *RateLimitedError
	if err := try("alice", goodPassword, f.nextCode(secret), "10.0.0.9"); !errors.As(err, &rl) || rl.RetryAfter <= 0 || rl.RetryAfter > time.Minute {
		t.Fatalf("the right password during the lockout: err = %v, want a rate limit (the password is not even checked)", err)
	}
	if n := len(f.audit.of(AuditLoginLimited)); n != 1 {
		t.Fatalf("%d lockout events, want 1", n)
	}
	// Bob, from the same addresses, is unaffected.
	if err := try("bob", goodPassword, f.nextCode(bobSecret), "10.0.0.1"); err != nil {
		t.Fatalf("another user: %v", err)
	}
	// One address guessing many names is locked as an address; another address is not.
	for i := range 5 {
		_ = try("nobody"+string(rune('a'+i)), "guess", "000000", "10.9.9.9")
	}
	if err := try("bob", goodPassword, f.nextCode(bobSecret), "10.9.9.9"); !errors.As(err, &rl) {
		t.Fatalf("a locked address: err = %v", err)
	}
	if err := try("bob", goodPassword, f.nextCode(bobSecret), "10.0.0.2"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	// The lock ends with the window.
	f.clock.Add(time.Minute + time.Second)
	if err := try("alice", goodPassword, f.nextCode(secret), "10.0.0.9"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestLoginIssuesCertificatesThePolicyAllows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newUsersFixture(t, UsersConfig{})
	secret := f.signUp(t, "alice")
	carol := f.signUp(t, "carol")
	nologins := f.signUp(t, "nologins")
	key := newKey(t)
	res, err := f.u.Login(ctx, LoginRequest{User: "alice", Password: goodPassword, OTP: f.nextCode(secret), PublicKey: key, TTL: 2 * time.Hour, Remote: "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ca.VerifyUser(res.SSHCert, f.s.CA().User.TrustedKeys())
	if err != nil {
		t.Fatalf("the certificate does not verify against the user CA: %v", err)
	}
	id, err := policy.CertFromSSH(res.SSHCert, signer)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.SSHCert.ValidPrincipals, ",") != "visitor,ubuntu" || id.Username != "alice" || strings.Join(id.Roles, ",") != "access" || !id.MFAVerified {
		t.Fatalf("certificate %+v", id)
	}
	if d := time.Until(id.ValidBefore); d > 2*time.Hour+time.Minute || d < 2*time.Hour-time.Minute {
		t.Fatalf("valid for %v, want the 2h asked for", d)
	}
	if res.TLSCert.Subject.CommonName != "alice" || len(res.TLSCert.URIs) != 1 || res.TLSCert.URIs[0].String() != UserURI("root.example.com", "alice").String() {
		t.Fatalf("TLS certificate %v %v", res.TLSCert.Subject, res.TLSCert.URIs)
	}
	if len(res.HostCAs) != 1 || res.HostCAs[0].Cluster != "root.example.com" || len(res.HostCAs[0].Keys) == 0 {
		t.Fatalf("host CAs %+v", res.HostCAs)
	}
	if n := len(f.audit.of(AuditLogin)) + len(f.audit.of(AuditCertIssued)); n != 2 {
		t.Fatalf("%d login and issue events, want 2", n)
	}

	t.Run("max_session_ttl_caps_the_certificate", func(t *testing.T) {
		res, err := f.u.Login(ctx, LoginRequest{User: "carol", Password: goodPassword, OTP: f.nextCode(carol), PublicKey: key, TTL: 30 * time.Hour, Remote: "10.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Until(time.Unix(int64(res.SSHCert.ValidBefore), 0)); d > time.Hour+time.Minute {
			t.Fatalf("valid for %v; the role short allows 1h", d)
		}
	})
	t.Run("a_hidden_or_unknown_route_is_denied", func(t *testing.T) {
		_, err := f.u.Login(ctx, LoginRequest{User: "alice", Password: goodPassword, OTP: f.nextCode(secret), PublicKey: key, RouteToCluster: "ghost.example.com", Remote: "10.0.0.1"})
		if !errors.Is(err, ErrAccessDenied) || !strings.Contains(err.Error(), `remote cluster "ghost.example.com" not found`) {
			t.Fatalf("err = %v", err)
		}
		if len(f.audit.of(AuditCertDenied)) == 0 {
			t.Fatal("denial not audited")
		}
	})
	t.Run("a_user_without_logins_gets_no_certificate", func(t *testing.T) {
		_, err := f.u.Login(ctx, LoginRequest{User: "nologins", Password: goodPassword, OTP: f.nextCode(nologins), PublicKey: key, Remote: "10.0.0.1"})
		if !errors.Is(err, ErrAccessDenied) || !strings.Contains(err.Error(), "no logins") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("bad_input_is_refused_before_authentication", func(t *testing.T) {
		for name, req := range map[string]LoginRequest{
			"no_key":        {User: "alice", Password: goodPassword},
			"two_keys":      {User: "alice", Password: goodPassword, PublicKey: key + key},
			"a_cert_as_key": {User: "alice", Password: goodPassword, PublicKey: string(ssh.MarshalAuthorizedKey(res.SSHCert))},
			"ttl_too_short": {User: "alice", Password: goodPassword, PublicKey: key, TTL: time.Second},
			"no_user":       {Password: goodPassword, PublicKey: key},
		} {
			if _, err := f.u.Login(ctx, req); !errors.Is(err, ErrBadRequest) {
				t.Errorf("%s: err = %v", name, err)
			}
		}
	})
	t.Run("authenticate_user_needs_both_certificates_of_one_key", func(t *testing.T) {
		line := string(ssh.MarshalAuthorizedKey(res.SSHCert))
		if _, err := f.u.AuthenticateUser([]*x509.Certificate{res.TLSCert}, line); err != nil {
			t.Fatalf("own pair: %v", err)
		}
		other, err := f.u.Login(ctx, LoginRequest{User: "alice", Password: goodPassword, OTP: f.nextCode(secret), PublicKey: newKey(t), Remote: "10.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		for name, tc := range map[string]struct {
			peer []*x509.Certificate
			ssh  string
		}{
			"no_client_certificate":          {nil, line},
			"no_ssh_certificate":             {[]*x509.Certificate{res.TLSCert}, ""},
			"ssh_certificate_of_another_key": {[]*x509.Certificate{res.TLSCert}, string(ssh.MarshalAuthorizedKey(other.SSHCert))},
		} {
			if _, err := f.u.AuthenticateUser(tc.peer, tc.ssh); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("%s: err = %v", name, err)
			}
		}
	})
}

func TestFailureLimiterFailsClosedWhenFullAndForgetsQuietKeys(t *testing.T) {
	t.Parallel()
	l := newFailureLimiter(3, time.Minute)
	t0 := time.Unix(1_000_000, 0)
	for i := range maxLimiterKeys {
		for range 3 {
			l.add("k"+strconv.Itoa(i), t0)
		}
	}
	if w := l.wait("newcomer", t0); w <= 0 {
		t.Fatal("a new key was let through while every slot holds a locked key")
	}
	// Keys under their limit give way to a newcomer (the review's made-up names); the
	// locked keys stay locked.
	for i := range maxLimiterKeys / 2 {
		l.reset("k" + strconv.Itoa(i))
		l.add("k"+strconv.Itoa(i), t0)
	}
	if w := l.wait("newcomer", t0); w != 0 {
		t.Fatalf("a new key waits %v although keys under their limit could give way", w)
	}
	if w := l.wait("k"+strconv.Itoa(maxLimiterKeys-1), t0); w <= 0 {
		t.Fatal("a locked key was let through")
	}
	l = newFailureLimiter(3, time.Minute)
	for i := range maxLimiterKeys {
		l.add("k"+strconv.Itoa(i), t0)
	}
	if w := l.wait("k1", t0); w != 0 {
		t.Fatalf("a tracked key under its limit waits %v", w)
	}
	if w := l.wait("newcomer", t0.Add(time.Minute+time.Second)); w != 0 {
		t.Fatalf("after the window the quiet keys are dropped, yet a new key waits %v", w)
	}
	for range 3 {
		l.add("k1", t0.Add(2*time.Minute))
	}
	if w := l.wait("k1", t0.Add(2*time.Minute+10*time.Second)); w != 50*time.Second {
		t.Fatalf("locked key waits %v, want 50s (until its oldest failure leaves the window)", w)
	}
}

// BenchmarkPasswordCheck is the cost of one password check (argon2id at the stored
// parameters): what every sign-in attempt, and every attempt for an unknown user, costs.
func BenchmarkPasswordCheck(b *testing.B) {
	h, err := hashPassword(context.Background(), goodPassword)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		h.matchesNow(goodPassword)
	}
}

// matchesNow is matches for a check nobody gives up on.
func (h passwordHash) matchesNow(pw string) bool {
	ok, _ := h.matches(context.Background(), pw)
	return ok
}
