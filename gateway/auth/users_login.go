package auth

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/state"
)

// Local users' sign-in. Keys in the store, none of them under resources/ so that
// `tetherctl get user` never returns them:
//
//	users/<escaped name>/credentials   argon2id password hash (parameters with it), TOTP secret, last TOTP step used
//	users/<escaped name>/signup        the SHA-256 of the user's current sign-up token (older ones are void)
//	signup/<hex sha256 of the token>   a pending sign-up: user, TOTP secret to enrol, expiry (the item expires with it)
const (
	usersPrefix  = "users/"
	signupPrefix = "signup/"
)

// Audit event types of sign-in.
const (
	// AuditSignupIssued: an admin issued a sign-up token (fields: user, expires).
	AuditSignupIssued = "user.signup.issued"
	// AuditSignup: a user set a password and enrolled TOTP (fields: user, remote).
	AuditSignup = "user.signup"
	// AuditSignupFailed: a sign-up attempt failed (fields: reason, remote, and user when
	// the token named one).
	AuditSignupFailed = "user.signup.failed"
	// AuditLogin: a user signed in (fields: user, remote, roles, logins, valid_before,
	// route_to_cluster).
	AuditLogin = "user.login"
	// AuditLoginFailed: a failed sign-in (fields: user as typed, remote, reason).
	AuditLoginFailed = "user.login.failed"
	// AuditLoginLimited: a user name or an address reached its limit of failed sign-ins;
	// further attempts are refused unchecked until retry_after (fields: user, remote,
	// limited_by, retry_after). Reported once per lockout.
	AuditLoginLimited = "user.login.rate_limited"
	// AuditCertIssued: certificates were issued at sign-in or reissued to a signed-in
	// user (fields: user, ssh_serial, tls_serial, principals, valid_before, via: login or
	// reissue, remote, route_to_cluster).
	AuditCertIssued = "cert.issued"
	// AuditCertDenied: the policy refused cert.issue to an authenticated user (fields:
	// user, reasons).
	AuditCertDenied = "cert.issue.denied"
)

// Errors of sign-in the web API branches on.
var (
	// ErrLoginFailed is every authentication failure: unknown user, no password yet,
	// wrong password, wrong or reused code. One message, so that an answer never says
	// which.
	ErrLoginFailed = errors.New("sign-in failed: wrong user name, password or one-time code")
	// ErrSignupRejected: a sign-up token that is unknown, used, expired or replaced.
	ErrSignupRejected = errors.New("this sign-up token is not valid (used, expired or replaced by a newer one); ask your administrator for a new one (tetherctl users reset NAME)")
	// ErrAccessDenied: an authenticated user the policy refuses.
	ErrAccessDenied = errors.New("access denied")
	// ErrUnauthenticated: a request without a valid user identity (tether's client
	// certificate and SSH certificate from sign-in).
	ErrUnauthenticated = errors.New("not signed in")
)

// RateLimitedError refuses a sign-in attempt unchecked: the user name or the address has
// failed too often. It wraps ErrLoginFailed's sibling ErrRateLimited.
type RateLimitedError struct {
	RetryAfter time.Duration
}

// ErrRateLimited is what RateLimitedError unwraps to.
var ErrRateLimited = errors.New("too many failed sign-in attempts")

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("too many failed sign-in attempts; try again in %d seconds", int64(e.RetryAfter.Round(time.Second)/time.Second))
}

// Unwrap returns ErrRateLimited.
func (e *RateLimitedError) Unwrap() error { return ErrRateLimited }

// Defaults of UsersConfig.
const (
	DefaultSignupTTL          = time.Hour
	MaxSignupTTL              = 7 * 24 * time.Hour
	DefaultLoginTTL           = 12 * time.Hour
	MinLoginTTL               = time.Minute
	DefaultUserFailures       = 5
	DefaultAddrFailures       = 20
	DefaultLoginFailureWindow = 5 * time.Minute
)

// UsersConfig configures NewUsers. Zero values take the defaults above.
type UsersConfig struct {
	// PublicAddr is the proxy address users sign in at (what `tetherctl users add` prints).
	PublicAddr string
	// UserFailures failed sign-ins of one user name within FailureWindow lock that name
	// until the oldest of them is FailureWindow old.
	UserFailures int
	// AddrFailures failed sign-ins from one client address within FailureWindow lock that
	// address likewise.
	AddrFailures  int
	FailureWindow time.Duration
}

// Users signs local users in: sign-up tokens, passwords, TOTP, and the certificates a
// successful sign-in gets. Its methods are safe for concurrent use.
type Users struct {
	s         *Service
	cfg       UsersConfig
	userLimit *failureLimiter
	addrLimit *failureLimiter
}

// NewUsers returns the sign-in service of s's cluster.
func NewUsers(s *Service, cfg UsersConfig) *Users {
	if cfg.UserFailures <= 0 {
		cfg.UserFailures = DefaultUserFailures
	}
	if cfg.AddrFailures <= 0 {
		cfg.AddrFailures = DefaultAddrFailures
	}
	if cfg.FailureWindow <= 0 {
		cfg.FailureWindow = DefaultLoginFailureWindow
	}
	return &Users{
		s: s, cfg: cfg,
		userLimit: newFailureLimiter(cfg.UserFailures, cfg.FailureWindow),
		addrLimit: newFailureLimiter(cfg.AddrFailures, cfg.FailureWindow),
	}
}

// PublicAddr is the proxy address users sign in at.
func (u *Users) PublicAddr() string { return u.cfg.PublicAddr }

func userKey(name, what string) string { return usersPrefix + url.PathEscape(name) + "/" + what }

type credentials struct {
	Password     *passwordHash `json:"password,omitempty"`
	TOTPSecret   []byte        `json:"totp_secret,omitempty"`
	TOTPLastStep int64         `json:"totp_last_step"`
	Updated      time.Time     `json:"updated"`
}

type signupRecord struct {
	User       string    `json:"user"`
	TOTPSecret []byte    `json:"totp_secret"`
	Expires    time.Time `json:"expires"`
}

type signupPointer struct {
	Hash string `json:"hash"`
}

// IssueSignup makes a one-time sign-up token for the existing user name, valid for ttl
// (zero: DefaultSignupTTL), and clears the user's password and TOTP: the user can no
// longer sign in until the token is redeemed. Any earlier token of the user is void. The
// token is returned once; only its SHA-256 is stored.
func (u *Users) IssueSignup(ctx context.Context, name string, ttl time.Duration) (string, time.Time, error) {
	s := u.s
	if ttl == 0 {
		ttl = DefaultSignupTTL
	}
	if ttl < time.Minute || ttl > MaxSignupTTL {
		return "", time.Time{}, errorf(ErrBadRequest, "a sign-up token lives between 1m and %v, not %v", MaxSignupTTL, ttl)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if _, err := s.get(ctx, resourceKey(resource.KindUser, name)); err != nil {
		if errors.Is(err, ErrNotFound) {
			return "", time.Time{}, errorf(ErrNotFound, "user %q not found: create it first (tetherctl users add %s --roles=...)", name, name)
		}
		return "", time.Time{}, err
	}
	raw := make([]byte, 32) // 256 bits
	if _, err := rand.Read(raw); err != nil {
		return "", time.Time{}, err
	}
	token := hex.EncodeToString(raw)
	secret, err := newTOTPSecret()
	if err != nil {
		return "", time.Time{}, err
	}
	expires := s.cfg.Now().Add(ttl)
	hash := hashToken(token)
	if err := s.clearCredentials(ctx, name); err != nil {
		return "", time.Time{}, err
	}
	data, _ := json.Marshal(signupRecord{User: name, TOTPSecret: secret, Expires: expires})
	if _, err := s.cfg.Store.Put(ctx, state.Item{Key: signupPrefix + hash, Value: data, Expires: expires}); err != nil {
		return "", time.Time{}, fmt.Errorf("storing the sign-up token: %w", err)
	}
	if err := s.putJSON(ctx, userKey(name, "signup"), signupPointer{Hash: hash}); err != nil {
		return "", time.Time{}, err
	}
	s.Audit(ctx, AuditEvent{Type: AuditSignupIssued, Fields: map[string]any{"user": name, "expires": expires.UTC().Format(time.RFC3339)}})
	return token, expires, nil
}

// clearCredentials removes the user's password, TOTP and pending sign-up. A user that is
// deleted loses them as well (Service.Delete), so that a new user of the same name never
// inherits them.
func (s *Service) clearCredentials(ctx context.Context, name string) error {
	if it, err := s.cfg.Store.Get(ctx, userKey(name, "signup")); err == nil {
		var p signupPointer
		if json.Unmarshal(it.Value, &p) == nil && p.Hash != "" {
			if err := s.cfg.Store.Delete(ctx, signupPrefix+p.Hash); err != nil && !errors.Is(err, state.ErrNotFound) {
				return fmt.Errorf("removing the sign-up token of %q: %w", name, err)
			}
		}
	} else if !errors.Is(err, state.ErrNotFound) {
		return err
	}
	for _, k := range []string{userKey(name, "credentials"), userKey(name, "signup")} {
		if err := s.cfg.Store.Delete(ctx, k); err != nil && !errors.Is(err, state.ErrNotFound) {
			return fmt.Errorf("removing the credentials of %q: %w", name, err)
		}
	}
	return nil
}

// SignupInfo is what a user needs to enrol: the TOTP secret, as an otpauth:// URI and
// as base32.
type SignupInfo struct {
	User       string `json:"user"`
	TOTPURI    string `json:"totp_uri"`
	TOTPSecret string `json:"totp_secret"`
}

// signup reads the pending sign-up of token; ErrSignupRejected when there is none.
func (u *Users) signup(ctx context.Context, token string) (signupRecord, error) {
	s := u.s
	if len(token) != 64 {
		return signupRecord{}, ErrSignupRejected
	}
	hash := hashToken(token)
	it, err := s.cfg.Store.Get(ctx, signupPrefix+hash)
	if errors.Is(err, state.ErrNotFound) {
		return signupRecord{}, ErrSignupRejected
	}
	if err != nil {
		return signupRecord{}, err
	}
	var rec signupRecord
	if err := json.Unmarshal(it.Value, &rec); err != nil || !s.cfg.Now().Before(rec.Expires) || len(rec.TOTPSecret) == 0 {
		return signupRecord{}, ErrSignupRejected
	}
	// Only the user's newest token counts.
	pit, err := s.cfg.Store.Get(ctx, userKey(rec.User, "signup"))
	if err != nil {
		if errors.Is(err, state.ErrNotFound) {
			return signupRecord{}, ErrSignupRejected
		}
		return signupRecord{}, err
	}
	var p signupPointer
	if json.Unmarshal(pit.Value, &p) != nil || !secretEqual(p.Hash, hash) {
		return signupRecord{}, ErrSignupRejected
	}
	return rec, nil
}

// SignupInfo returns the TOTP enrolment of a valid sign-up token.
func (u *Users) SignupInfo(ctx context.Context, token, remote string) (SignupInfo, error) {
	rec, err := u.signup(ctx, token)
	if err != nil {
		u.s.Audit(ctx, AuditEvent{Type: AuditSignupFailed, Fields: map[string]any{"reason": "rejected token", "remote": remote}})
		return SignupInfo{}, err
	}
	return SignupInfo{User: rec.User, TOTPURI: TOTPURI(u.s.cfg.ClusterName, rec.User, rec.TOTPSecret), TOTPSecret: EncodeTOTPSecret(rec.TOTPSecret)}, nil
}

// CompleteSignup sets the password of the token's user and enrols the token's TOTP secret,
// once code proves the user's authenticator has it. The token is used up only by a
// complete sign-up; the code it was confirmed with cannot sign in.
func (u *Users) CompleteSignup(ctx context.Context, token, password, code, remote string) (string, error) {
	s := u.s
	if err := checkPasswordRules(password); err != nil {
		return "", err
	}
	rec, err := u.signup(ctx, token)
	if err != nil {
		s.Audit(ctx, AuditEvent{Type: AuditSignupFailed, Fields: map[string]any{"reason": "rejected token", "remote": remote}})
		return "", err
	}
	step, ok := checkTOTP(rec.TOTPSecret, code, s.cfg.Now(), -1)
	if !ok {
		s.Audit(ctx, AuditEvent{Type: AuditSignupFailed, Fields: map[string]any{"user": rec.User, "reason": "wrong one-time code", "remote": remote}})
		return "", errorf(ErrBadRequest, "the one-time code is wrong: check the authenticator's clock and enter the current code for %s", rec.User)
	}
	h, err := hashPassword(ctx, password)
	if err != nil {
		return "", err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	// Consume the token: of two redemptions at once, only one deletes it.
	if err := s.cfg.Store.Delete(ctx, signupPrefix+hashToken(token)); err != nil {
		if errors.Is(err, state.ErrNotFound) {
			return "", ErrSignupRejected
		}
		return "", err
	}
	if err := s.cfg.Store.Delete(ctx, userKey(rec.User, "signup")); err != nil && !errors.Is(err, state.ErrNotFound) {
		return "", err
	}
	if _, err := s.get(ctx, resourceKey(resource.KindUser, rec.User)); err != nil {
		return "", ErrSignupRejected // the user was deleted since
	}
	if err := s.putJSON(ctx, userKey(rec.User, "credentials"), credentials{
		Password: &h, TOTPSecret: rec.TOTPSecret, TOTPLastStep: step, Updated: s.cfg.Now().UTC(),
	}); err != nil {
		return "", err
	}
	s.Audit(ctx, AuditEvent{Type: AuditSignup, Fields: map[string]any{"user": rec.User, "remote": remote}})
	return rec.User, nil
}

// LoginRequest is one sign-in attempt.
type LoginRequest struct {
	User, Password, OTP string
	// PublicKey is the user's SSH public key (authorized_keys format) that both
	// certificates certify.
	PublicKey string
	// TTL asked for; zero means DefaultLoginTTL. The roles' max_session_ttl caps it.
	TTL time.Duration
	// RouteToCluster is the cluster the certificate is for; empty means this one.
	RouteToCluster string
	// Remote is the client's address as it is counted for rate limits.
	Remote string
}

// LoginResult is what a successful sign-in gets.
type LoginResult struct {
	Cluster string
	// SSHCert certifies the public key for the user's logins.
	SSHCert *ssh.Certificate
	// TLSCert certifies the same key for mutual TLS with this cluster's web API.
	TLSCert *x509.Certificate
	// HostCAs are the host CAs of this cluster and of the clusters the user may see.
	HostCAs []ClusterKeys
	// TLSCAs are this cluster's TLS CA certificates.
	TLSCAs []*x509.Certificate
	Roles  []string
	Logins []string
}

// ClusterKeys are one cluster's SSH CA public keys.
type ClusterKeys struct {
	Cluster string
	Keys    []ssh.PublicKey
}

// Login authenticates req (password, then TOTP) and, when the policy allows cert.issue
// for the user's roles and logins, issues an SSH user certificate and a TLS client
// certificate for req.PublicKey. Every authentication failure is ErrLoginFailed; a user
// name or address with too many recent failures gets a *RateLimitedError without its
// password being checked.
func (u *Users) Login(ctx context.Context, req LoginRequest) (*LoginResult, error) {
	s := u.s
	pub, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(req.PublicKey))
	if err != nil || len(strings.TrimSpace(string(rest))) != 0 {
		return nil, errorf(ErrBadRequest, "public_key must be one SSH public key in authorized_keys format")
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return nil, errorf(ErrBadRequest, "public_key must be a plain public key, not a certificate")
	}
	if _, ok := pub.(ssh.CryptoPublicKey); !ok {
		return nil, errorf(ErrBadRequest, "public_key has a key type that cannot be certified")
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = DefaultLoginTTL
	}
	if ttl < MinLoginTTL {
		return nil, errorf(ErrBadRequest, "ttl %v is shorter than %v", ttl, MinLoginTTL)
	}
	if req.User == "" || len(req.User) > 256 {
		return nil, errorf(ErrBadRequest, "a user name is required")
	}
	now := s.cfg.Now()
	// The attempt counts as a failure from before its password is checked until it
	// succeeds: attempts sent at once cannot all pass the limit before any has failed.
	att, wait := u.begin(req.User, req.Remote, now)
	if wait > 0 {
		return nil, &RateLimitedError{RetryAfter: wait}
	}
	user, reason, err := u.authenticate(ctx, req, now)
	if err != nil {
		att.undo() // a store error is not the user's failure
		return nil, err
	}
	if reason != "" {
		att.end(true)
		u.failed(ctx, req, reason, att)
		return nil, ErrLoginFailed
	}
	att.undo()
	u.userLimit.reset(req.User)
	return u.issue(ctx, user, pub, ttl, req.RouteToCluster, req.Remote, now, false)
}

// Reissue issues new certificates to a signed-in user for the key of the certificates
// they presented (id, authenticated with AuthenticateUser; pub is their key), routed to
// route: Teleport's certificate reissue, behind tsh login LEAF with a valid session, which
// asks for no password. The certificates carry the user's roles and logins as they are
// now and the policy decides cert.issue again (a locked or removed user gets nothing), but
// they end when the presented ones do: a reissue never lengthens a sign-in, and only the
// certificates of a password and one-time-code sign-in here are reissued.
func (u *Users) Reissue(ctx context.Context, id policy.Cert, pub ssh.PublicKey, route, remote string) (*LoginResult, error) {
	s := u.s
	now := s.cfg.Now()
	if id.SigningCA.Cluster != s.cfg.ClusterName || id.IssuedVia != "local" || !id.MFAVerified {
		return nil, errorf(ErrAccessDenied, "only certificates from a sign-in at %s are reissued: run tether login --proxy=PROXY --user=%s", s.cfg.ClusterName, id.Username)
	}
	if _, ok := pub.(ssh.CryptoPublicKey); !ok {
		return nil, errorf(ErrBadRequest, "the key has a type that cannot be certified")
	}
	ttl := id.ValidBefore.Sub(now)
	if ttl < MinLoginTTL {
		// Unauthenticated: tether then asks for the password.
		return nil, fmt.Errorf("%w: the sign-in ends in %v, too soon to reissue its certificates; sign in again", ErrUnauthenticated, ttl.Round(time.Second))
	}
	r, err := s.get(ctx, resourceKey(resource.KindUser, id.Username))
	if errors.Is(err, ErrNotFound) {
		s.Audit(ctx, AuditEvent{Type: AuditCertDenied, Fields: map[string]any{"user": id.Username, "remote": remote, "reasons": []string{"the user no longer exists"}}})
		return nil, errorf(ErrAccessDenied, "user %s no longer exists at %s: ask your administrator", id.Username, s.cfg.ClusterName)
	}
	if err != nil {
		return nil, err
	}
	user, ok := r.(*resource.User)
	if !ok {
		return nil, fmt.Errorf("user %q is stored as %T", id.Username, r)
	}
	return u.issue(ctx, user, pub, ttl, route, remote, now, true)
}

// attempt is one sign-in counted against the user name's and the address's limits.
type attempt struct {
	u            *Users
	user, remote string
	at           time.Time
	// userLocks, addrLocks: this attempt, if it fails, is the one that locks the key,
	// until then.
	userLocks, addrLocks time.Time
}

// begin counts an attempt for user and remote, or says how long the one locked must wait
// (the attempt is then not counted).
func (u *Users) begin(user, remote string, now time.Time) (*attempt, time.Duration) {
	a := &attempt{u: u, user: user, remote: remote, at: now}
	wait, userLocks := u.userLimit.begin(user, now)
	if wait > 0 {
		return nil, wait
	}
	wait, addrLocks := u.addrLimit.begin(remote, now)
	if wait > 0 {
		u.userLimit.end(user, now, false)
		return nil, wait
	}
	a.userLocks, a.addrLocks = userLocks, addrLocks
	return a, 0
}

// undo takes back an attempt that did not fail.
func (a *attempt) undo() { a.end(false) }

// end ends the attempt: counted as a failure when failed, else taken back.
func (a *attempt) end(failed bool) {
	a.u.userLimit.end(a.user, a.at, failed)
	a.u.addrLimit.end(a.remote, a.at, failed)
}

// failed audits a failed attempt (already counted) and the lockout it caused, if any.
func (u *Users) failed(ctx context.Context, req LoginRequest, reason string, a *attempt) {
	u.s.Audit(ctx, AuditEvent{Type: AuditLoginFailed, Fields: map[string]any{"user": req.User, "remote": req.Remote, "reason": reason}})
	for _, l := range []struct {
		until time.Time
		name  string
	}{{a.userLocks, "user"}, {a.addrLocks, "address"}} {
		if !l.until.IsZero() {
			u.s.Audit(ctx, AuditEvent{Type: AuditLoginLimited, Fields: map[string]any{
				"user": req.User, "remote": req.Remote, "limited_by": l.name, "retry_after": l.until.UTC().Format(time.RFC3339),
			}})
		}
	}
}

// authenticate returns the user and "" when password and code are right, else the
// reason for the audit log. Store errors are errors, not failures.
func (u *Users) authenticate(ctx context.Context, req LoginRequest, now time.Time) (*resource.User, string, error) {
	s := u.s
	r, err := s.get(ctx, resourceKey(resource.KindUser, req.User))
	var user *resource.User
	switch {
	case err == nil:
		user, _ = r.(*resource.User)
	case !errors.Is(err, ErrNotFound):
		return nil, "", err
	}
	var cred credentials
	var credItem state.Item
	if user != nil {
		credItem, err = s.cfg.Store.Get(ctx, userKey(req.User, "credentials"))
		switch {
		case err == nil:
			if json.Unmarshal(credItem.Value, &cred) != nil {
				cred = credentials{}
			}
		case !errors.Is(err, state.ErrNotFound):
			return nil, "", err
		}
	}
	if user == nil || cred.Password == nil || len(cred.TOTPSecret) == 0 {
		// The same work as a real check.
		if _, err := dummyHash.matches(ctx, req.Password); err != nil {
			return nil, "", err
		}
		if user == nil {
			return nil, "unknown user", nil
		}
		return nil, "no password set (sign-up not completed)", nil
	}
	if ok, err := cred.Password.matches(ctx, req.Password); err != nil {
		return nil, "", err // not checked: not the user's failure
	} else if !ok {
		return nil, "wrong password", nil
	}
	step, ok := checkTOTP(cred.TOTPSecret, req.OTP, now, cred.TOTPLastStep)
	if !ok {
		if _, seen := checkTOTP(cred.TOTPSecret, req.OTP, now, -1); seen {
			return nil, "one-time code already used", nil
		}
		return nil, "wrong one-time code", nil
	}
	// Record the step; of two sign-ins with the same code at once, only one swaps.
	cred.TOTPLastStep = step
	data, _ := json.Marshal(cred)
	if _, err := s.cfg.Store.CompareAndSwap(ctx, credItem, state.Item{Key: credItem.Key, Value: data}); err != nil {
		if errors.Is(err, state.ErrConflict) || errors.Is(err, state.ErrNotFound) {
			return nil, "one-time code already used", nil
		}
		return nil, "", err
	}
	return user, "", nil
}

// UserURI marks a TLS client certificate as user name's of cluster:
// tether://cluster/<cluster>/user/<name>.
func UserURI(cluster, name string) *url.URL {
	u := ca.ClusterURI(cluster)
	u.Path += "/user/" + name
	return u
}

// userOfURI returns the user a certificate URI of this cluster names.
func (s *Service) userOfURI(u *url.URL) (string, bool) {
	prefix := ca.ClusterURI(s.cfg.ClusterName).Path + "/user/"
	if u.Scheme != "tether" || u.Host != "cluster" || u.RawQuery != "" || u.Fragment != "" || !strings.HasPrefix(u.Path, prefix) {
		return "", false
	}
	name := strings.TrimPrefix(u.Path, prefix)
	return name, name != ""
}

// issue issues the certificates of a sign-in, or of a reissue (audited as cert.issued
// only, with via: reissue).
func (u *Users) issue(ctx context.Context, user *resource.User, pub ssh.PublicKey, ttl time.Duration, route, remote string, now time.Time, reissue bool) (*LoginResult, error) {
	s := u.s
	name := user.Metadata.Name
	logins := append([]string(nil), user.Spec.Traits["logins"]...)
	if len(logins) == 0 {
		s.Audit(ctx, AuditEvent{Type: AuditCertDenied, Fields: map[string]any{"user": name, "reasons": []string{"the user has no logins"}}})
		return nil, errorf(ErrAccessDenied, "user %s has no logins, so no certificate can be issued; ask an administrator to give you some (tetherctl users update %s --set-logins=...)", name, name)
	}
	route = resource.NormalizeClusterName(route)
	in := &policy.Input{
		Action: policy.ActionCertIssue, Cluster: s.cfg.ClusterName, Now: now,
		Cert: policy.Cert{
			Type:           "user",
			SigningCA:      policy.SigningCA{Cluster: s.cfg.ClusterName, Fingerprint: ca.Fingerprint(s.cfg.CA.User.SigningKey())},
			Username:       name,
			KeyID:          name,
			Principals:     logins,
			Roles:          user.Spec.Roles,
			Traits:         user.Spec.Traits,
			ValidAfter:     now.Add(-ca.BackdateBy),
			ValidBefore:    now.Add(ttl),
			RouteToCluster: route,
			IssuedVia:      "local",
			MFAVerified:    true,
		},
	}
	d, err := s.cfg.Engine.Decide(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("deciding cert.issue for %q: %w", name, err)
	}
	maxTTL := d.ExpiresAt.Sub(now)
	if !d.Allow || d.ExpiresAt.IsZero() || maxTTL <= 0 {
		reasons := d.Reasons
		if d.Allow {
			reasons = []string{"the policy gave no expiry for the certificate"}
		}
		s.Audit(ctx, AuditEvent{Type: AuditCertDenied, Fields: map[string]any{"user": name, "remote": remote, "reasons": reasons}})
		return nil, errorf(ErrAccessDenied, "the cluster refused to issue certificates to %s: %s", name, strings.Join(reasons, "; "))
	}
	cert, err := s.cfg.CA.User.IssueUser(ca.UserCertRequest{
		PublicKey: pub, Username: name, Logins: logins, Roles: user.Spec.Roles, Traits: user.Spec.Traits,
		RouteToCluster: route, IssuedVia: "local", MFAVerified: true, TTL: ttl, MaxTTL: maxTTL,
	})
	if err != nil {
		return nil, err
	}
	validBefore := time.Unix(int64(cert.ValidBefore), 0)
	tlsCert, err := s.cfg.CA.TLS.IssueTLS(ca.TLSCertRequest{
		PublicKey: pub.(ssh.CryptoPublicKey).CryptoPublicKey(), CommonName: name,
		URIs: []*url.URL{UserURI(s.cfg.ClusterName, name)}, Client: true,
		TTL: min(validBefore.Sub(now), ca.MaxTLSTTL),
	})
	if err != nil {
		return nil, err
	}
	signer, err := ca.VerifyUser(cert, s.cfg.CA.User.TrustedKeys())
	if err != nil {
		return nil, err
	}
	id, err := policy.CertFromSSH(cert, signer)
	if err != nil {
		return nil, err
	}
	res := &LoginResult{
		Cluster: s.cfg.ClusterName, SSHCert: cert, TLSCert: tlsCert, TLSCAs: s.cfg.CA.TLS.CACerts(),
		Roles: user.Spec.Roles, Logins: logins,
	}
	hostCAs, err := u.hostCAs(ctx, id, now)
	if err != nil {
		return nil, err
	}
	res.HostCAs = hostCAs
	via := "login"
	if reissue {
		via = "reissue"
	} else {
		s.Audit(ctx, AuditEvent{Type: AuditLogin, Fields: map[string]any{
			"user": name, "remote": remote, "roles": user.Spec.Roles, "logins": logins,
			"valid_before": validBefore.UTC().Format(time.RFC3339), "route_to_cluster": route,
		}})
	}
	s.Audit(ctx, AuditEvent{Type: AuditCertIssued, Fields: map[string]any{
		"user": name, "ssh_serial": cert.Serial, "tls_serial": tlsCert.SerialNumber.String(),
		"principals": logins, "valid_before": validBefore.UTC().Format(time.RFC3339),
		"via": via, "remote": remote, "route_to_cluster": route,
	}})
	return res, nil
}

// hostCAs are this cluster's host CA keys, those of the clusters it trusts as roots, and
// those of the remote clusters id may list.
func (u *Users) hostCAs(ctx context.Context, id policy.Cert, now time.Time) ([]ClusterKeys, error) {
	s := u.s
	out := []ClusterKeys{{Cluster: s.cfg.ClusterName}}
	for _, k := range s.cfg.CA.Host.TrustedKeys() {
		out[0].Keys = append(out[0].Keys, k.Key)
	}
	names := map[string]bool{}
	tcs, err := s.list(ctx, resourcesPrefix+resource.KindTrustedCluster+"/")
	if err != nil {
		return nil, err
	}
	for _, r := range tcs {
		names[r.GetMetadata().Name] = true
	}
	clusters, err := u.Clusters(ctx, id, now)
	if err != nil {
		return nil, err
	}
	for _, c := range clusters {
		if c.Type == "leaf" {
			names[c.Name] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		r, err := s.get(ctx, caKey(n, string(ca.HostCA)))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		cr, ok := r.(*resource.CertAuthority)
		if !ok {
			continue
		}
		keys, err := ca.TrustedKeysOf(cr)
		if err != nil {
			return nil, err
		}
		ck := ClusterKeys{Cluster: n}
		for _, k := range keys {
			ck.Keys = append(ck.Keys, k.Key)
		}
		out = append(out, ck)
	}
	return out, nil
}

// ClusterInfo is one row of a user's cluster list.
type ClusterInfo struct {
	Name          string            `json:"name"`
	Type          string            `json:"type"` // "root" (this cluster) or "leaf"
	Status        string            `json:"status"`
	LastHeartbeat *time.Time        `json:"last_heartbeat,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
}

// ClusterLocked is the status of a remote cluster that only a lock keeps from the user.
const ClusterLocked = "locked"

// Clusters lists this cluster and every remote cluster the policy lets id list
// (cluster.list: the roles' cluster_labels against the labels the admins set). A
// remote cluster's status comes from its tunnel records, as `get rc` shows it, or is
// ClusterLocked when only a lock denies it.
func (u *Users) Clusters(ctx context.Context, id policy.Cert, now time.Time) ([]ClusterInfo, error) {
	s := u.s
	out := []ClusterInfo{{Name: s.cfg.ClusterName, Type: "root", Status: resource.ConnectionOnline}}
	rcs, err := s.remoteClusters(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range rcs {
		rc, ok := r.(*resource.RemoteCluster)
		if !ok {
			continue
		}
		d, err := s.cfg.Engine.Decide(ctx, &policy.Input{
			Action: policy.ActionClusterList, Cluster: s.cfg.ClusterName, Now: now, Cert: id,
			RemoteCluster: &policy.RemoteCluster{Name: rc.Metadata.Name, Labels: rc.Metadata.Labels},
		})
		if err != nil {
			return nil, fmt.Errorf("deciding cluster.list of %s: %w", rc.Metadata.Name, err)
		}
		locked := !d.Allow && d.DeniedOnlyByLocks()
		if !d.Allow && !locked {
			continue
		}
		ci := ClusterInfo{Name: rc.Metadata.Name, Type: "leaf", Status: rc.Status.Connection, Labels: rc.Metadata.Labels}
		switch {
		case locked:
			// Only a lock hides it: the lock names the user (or the cluster), so the
			// cluster is listed as locked, and what is asked of it says which lock.
			ci.Status = ClusterLocked
		case ci.Status == "":
			ci.Status = resource.ConnectionOffline
		}
		if !rc.Status.LastHeartbeat.IsZero() {
			hb := rc.Status.LastHeartbeat.UTC()
			ci.LastHeartbeat = &hb
		}
		out = append(out, ci)
	}
	return out, nil
}

// AuthenticateUser checks a user's identity on the web API: the TLS client certificate
// (chains to this cluster's TLS CA now, client usage, a user URI of this cluster) and the
// SSH certificate from the same sign-in (signed by this cluster's user CA, certifying the
// same key, for the same user). It returns the SSH certificate as the decision input
// reads it. Every failure is ErrUnauthenticated.
func (u *Users) AuthenticateUser(peer []*x509.Certificate, sshCert string) (policy.Cert, error) {
	s := u.s
	fail := func(why string) (policy.Cert, error) {
		return policy.Cert{}, fmt.Errorf("%w: %s", ErrUnauthenticated, why)
	}
	if len(peer) == 0 {
		return fail("no client certificate")
	}
	leaf := peer[0]
	inter := x509.NewCertPool()
	for _, c := range peer[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: s.cfg.CA.TLS.CertPool(), Intermediates: inter, CurrentTime: s.cfg.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return fail("the client certificate is not valid here (expired or from another cluster)")
	}
	name := ""
	for _, uri := range leaf.URIs {
		if n, ok := s.userOfURI(uri); ok {
			if name != "" {
				return fail("the client certificate names two users")
			}
			name = n
		}
	}
	if name == "" || leaf.Subject.CommonName != name {
		return fail("the client certificate is not a user's")
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(sshCert))
	if err != nil {
		return fail("no SSH certificate")
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		return fail("no SSH certificate")
	}
	signer, err := ca.VerifyUser(cert, s.cfg.CA.User.TrustedKeys())
	if err != nil {
		return fail("the SSH certificate is not from this cluster's user CA")
	}
	leafKey, err := ssh.NewPublicKey(leaf.PublicKey)
	if err != nil || string(leafKey.Marshal()) != string(cert.Key.Marshal()) {
		return fail("the SSH certificate and the client certificate certify different keys")
	}
	id, err := policy.CertFromSSH(cert, signer)
	if err != nil {
		return fail("unreadable SSH certificate")
	}
	now := s.cfg.Now()
	if id.Username != name || now.Before(id.ValidAfter) || !now.Before(id.ValidBefore) {
		return fail("the SSH certificate is expired or another user's")
	}
	return id, nil
}

// failureLimiter counts failures per key within a sliding window; a key with max
// failures in the window is locked until the oldest of them leaves it.
type failureLimiter struct {
	max    int
	window time.Duration

	mu   sync.Mutex
	keys map[string][]time.Time
	// pending holds, per key, when each attempt that begin counted and that has not
	// ended began (its failure's time in keys).
	pending map[string][]time.Time
}

// maxLimiterKeys bounds the keys a failureLimiter tracks; past it, keys with no failure
// in the window are dropped, then a key under its limit (evictOne), and if none can be,
// new keys count as locked (fail closed).
const maxLimiterKeys = 100000

func newFailureLimiter(max int, window time.Duration) *failureLimiter {
	return &failureLimiter{max: max, window: window, keys: map[string][]time.Time{}, pending: map[string][]time.Time{}}
}

func (l *failureLimiter) recent(key string, now time.Time) []time.Time {
	ts := l.keys[key]
	i := 0
	for i < len(ts) && !ts[i].After(now.Add(-l.window)) {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.keys, key)
	} else {
		l.keys[key] = ts
	}
	return ts
}

// wait is how long key is locked for, zero when it is not.
func (l *failureLimiter) wait(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waitLocked(key, now)
}

func (l *failureLimiter) waitLocked(key string, now time.Time) time.Duration {
	ts := l.recent(key, now)
	if len(ts) < l.max {
		if _, tracked := l.keys[key]; !tracked && len(l.keys) >= maxLimiterKeys {
			l.prune(now)
			if len(l.keys) >= maxLimiterKeys && !l.evictOne() {
				return l.window
			}
		}
		return 0
	}
	if len(ts)-len(l.pending[key]) < l.max {
		// Attempts still being checked fill the key: most end in a moment, and those
		// that succeed are taken back.
		return time.Second
	}
	return max(ts[len(ts)-l.max].Add(l.window).Sub(now), time.Second)
}

// begin counts an attempt of key as a failure at now, unless key is locked (then it says
// for how long, counting nothing). locks is when the lock ends if this attempt is the
// one that locks key (zero otherwise): the lock takes effect at once, the attempt being
// counted before it is checked. undo takes the attempt back.
func (l *failureLimiter) begin(key string, now time.Time) (wait time.Duration, locks time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.waitLocked(key, now); w > 0 {
		return w, time.Time{}
	}
	until, locked := l.addLocked(key, now)
	if !locked {
		until = time.Time{}
	}
	l.pending[key] = append(l.pending[key], now)
	return 0, until
}

// end ends an attempt begin counted at at: it stays counted when it failed, else it is
// taken back.
func (l *failureLimiter) end(key string, at time.Time, failed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := removeTime(l.pending[key], at); len(p) == 0 {
		delete(l.pending, key)
	} else {
		l.pending[key] = p
	}
	if !failed {
		l.undoLocked(key, at)
	}
}

// undoLocked removes one failure of key recorded at at.
func (l *failureLimiter) undoLocked(key string, at time.Time) {
	ts := removeTime(l.keys[key], at)
	if len(ts) == 0 {
		delete(l.keys, key)
	} else {
		l.keys[key] = ts
	}
}

// add records a failure; locked reports that this failure locked the key, until when.
func (l *failureLimiter) add(key string, now time.Time) (until time.Time, locked bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addLocked(key, now)
}

func (l *failureLimiter) addLocked(key string, now time.Time) (until time.Time, locked bool) {
	ts := l.recent(key, now)
	if _, tracked := l.keys[key]; !tracked && len(l.keys) >= maxLimiterKeys {
		l.prune(now)
		if len(l.keys) >= maxLimiterKeys {
			l.evictOne()
		}
	}
	ts = append(ts, now)
	if len(ts) > l.max {
		ts = ts[len(ts)-l.max:]
	}
	l.keys[key] = ts
	if len(ts) == l.max {
		return ts[0].Add(l.window), true
	}
	return time.Time{}, false
}

// evictProbes bounds the keys evictOne looks at: a table full of locked keys is not
// scanned whole on every attempt.
const evictProbes = 64

// evictOne drops one key that is neither locked nor being checked, to make room in a full
// table, and reports whether it found one. A full table of keys under the limit is what
// failed attempts for made-up names leave behind: refusing every untracked key then would
// lock out every user who had not failed (found by the attacker review), so those keys
// give way; a locked key never does (its lock stands), and a table full of locked keys
// still refuses newcomers (fail closed).
func (l *failureLimiter) evictOne() bool {
	probes := 0
	for k, ts := range l.keys {
		if len(ts) < l.max && len(l.pending[k]) == 0 {
			delete(l.keys, k)
			return true
		}
		if probes++; probes >= evictProbes {
			return false
		}
	}
	return false
}

// prune drops the keys with no failure left in the window.
func (l *failureLimiter) prune(now time.Time) {
	for k := range l.keys {
		l.recent(k, now)
	}
}

// reset forgives key's failures (a successful sign-in), except those of attempts still
// being checked: they were counted before their check so that guesses sent at once cannot
// pass the limit together, and forgiving them would give an attacker guessing while the
// user signs in those guesses free and a clean count (attacker review).
func (l *failureLimiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var keep []time.Time
	for _, at := range l.pending[key] {
		if slices.ContainsFunc(l.keys[key], at.Equal) {
			keep = append(keep, at)
		}
	}
	if len(keep) == 0 {
		delete(l.keys, key)
		return
	}
	slices.SortFunc(keep, time.Time.Compare)
	if len(keep) > l.max {
		keep = keep[len(keep)-l.max:]
	}
	l.keys[key] = keep
}

// removeTime removes one element equal to at from ts (a new slice: ts may be shared).
func removeTime(ts []time.Time, at time.Time) []time.Time {
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i].Equal(at) {
			return append(ts[:i:i], ts[i+1:]...)
		}
	}
	return ts
}
