package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/state"
)

// Token TTLs.
const (
	// DefaultTokenTTL is a token's lifetime when none is given (Teleport's default).
	DefaultTokenTTL = 30 * time.Minute
	// MaxTokenTTL bounds a token's lifetime.
	MaxTokenTTL = 30 * 24 * time.Hour
	// tokenPrefixLen is how much of a token ListTokens shows.
	tokenPrefixLen = 4
)

// TokenInfo is what is stored about a token: never the token itself, only its SHA-256,
// the first characters (to tell tokens apart in a listing) and what it is for.
type TokenInfo struct {
	Hash    string            `json:"hash"`
	Prefix  string            `json:"prefix"`
	Roles   []string          `json:"roles"`
	Labels  map[string]string `json:"labels,omitempty"`
	Expires time.Time         `json:"expires"`
}

// Display is the token as listings show it: its prefix and an ellipsis.
func (t TokenInfo) Display() string { return t.Prefix + "…" }

// Matches reports whether s names this token: the whole token, or the prefix as shown
// (with or without the ellipsis).
func (t TokenInfo) Matches(s string) bool {
	if secretEqual(hashToken(s), t.Hash) {
		return true
	}
	return strings.TrimSuffix(s, "…") == t.Prefix
}

// Resource is the token as a resource for tetherctl get: named by its display prefix.
func (t TokenInfo) Resource() *resource.Token {
	exp := t.Expires.UTC()
	return &resource.Token{
		Kind: resource.KindToken, Version: "v2",
		Metadata: resource.Metadata{Name: t.Display(), Labels: t.Labels, Expires: &exp},
		Spec:     resource.TokenSpec{Roles: t.Roles},
	}
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func tokenKey(hash string) string { return tokensPrefix + hash }

// AddToken creates a random token for roles (trusted_cluster, node) valid for ttl (zero:
// DefaultTokenTTL) and returns it. This is the only time the token is seen: the store keeps
// its hash.
func (s *Service) AddToken(ctx context.Context, roles []string, ttl time.Duration, labels map[string]string) (string, TokenInfo, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", TokenInfo{}, err
	}
	token := hex.EncodeToString(b[:])
	info, err := s.storeToken(ctx, token, roles, ttl, labels)
	return token, info, err
}

func (s *Service) storeToken(ctx context.Context, token string, roles []string, ttl time.Duration, labels map[string]string) (TokenInfo, error) {
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < 0 || ttl > MaxTokenTTL {
		return TokenInfo{}, errorf(ErrBadRequest, "token TTL %v: want more than 0 and at most %v", ttl, MaxTokenTTL)
	}
	t := &resource.Token{Kind: resource.KindToken, Version: "v2", Metadata: resource.Metadata{Name: token, Labels: labels}, Spec: resource.TokenSpec{Roles: roles}}
	if err := t.Validate(); err != nil {
		return TokenInfo{}, errorf(ErrBadRequest, "%v", err)
	}
	if len(token) < 2*tokenPrefixLen {
		return TokenInfo{}, errorf(ErrBadRequest, "a token must be at least %d characters", 2*tokenPrefixLen)
	}
	info := TokenInfo{
		Hash:    hashToken(token),
		Prefix:  token[:tokenPrefixLen],
		Roles:   t.Spec.Roles,
		Labels:  labels,
		Expires: s.cfg.Now().Add(ttl).UTC().Truncate(time.Millisecond),
	}
	data, err := json.Marshal(info)
	if err != nil {
		return TokenInfo{}, err
	}
	if _, err := s.cfg.Store.Create(ctx, state.Item{Key: tokenKey(info.Hash), Value: data, Expires: info.Expires}); err != nil {
		if errors.Is(err, state.ErrAlreadyExists) {
			return TokenInfo{}, errorf(ErrAlreadyExists, "that token already exists")
		}
		return TokenInfo{}, fmt.Errorf("storing token: %w", err)
	}
	s.log.Info("token added", "token", info.Display(), "roles", info.Roles, "expires", info.Expires)
	return info, nil
}

// storeTokenResource stores a token given as a resource (tetherctl create token.yaml):
// metadata.expires is its expiry, default DefaultTokenTTL from now.
func (s *Service) storeTokenResource(ctx context.Context, t *resource.Token) error {
	ttl := DefaultTokenTTL
	if t.Metadata.Expires != nil {
		ttl = t.Metadata.Expires.Sub(s.cfg.Now())
		if ttl <= 0 {
			return errorf(ErrBadRequest, "token: metadata.expires has passed")
		}
	}
	_, err := s.storeToken(ctx, t.Metadata.Name, t.Spec.Roles, ttl, t.Metadata.Labels)
	return err
}

// ListTokens returns the live tokens, soonest expiry first.
func (s *Service) ListTokens(ctx context.Context) ([]TokenInfo, error) {
	items, err := s.cfg.Store.List(ctx, tokensPrefix)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	var out []TokenInfo
	for _, it := range items {
		var t TokenInfo
		if err := json.Unmarshal(it.Value, &t); err != nil {
			s.log.Error("skipping an unreadable token record", "err", err)
			continue
		}
		if !now.Before(t.Expires) {
			continue
		}
		out = append(out, t)
	}
	sortTokens(out)
	return out, nil
}

func sortTokens(ts []TokenInfo) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j].Expires.Before(ts[j-1].Expires); j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

// DeleteToken removes the token named by its value or by the prefix ListTokens shows (which
// must name exactly one token).
func (s *Service) DeleteToken(ctx context.Context, tokenOrPrefix string) error {
	toks, err := s.ListTokens(ctx)
	if err != nil {
		return err
	}
	var match []TokenInfo
	for _, t := range toks {
		if t.Matches(tokenOrPrefix) {
			match = append(match, t)
		}
	}
	switch len(match) {
	case 0:
		return errorf(ErrNotFound, "no such token")
	case 1:
	default:
		return errorf(ErrBadRequest, "%d tokens start with that prefix; give the whole token", len(match))
	}
	if err := s.cfg.Store.Delete(ctx, tokenKey(match[0].Hash)); err != nil {
		if errors.Is(err, state.ErrNotFound) {
			return errorf(ErrNotFound, "no such token")
		}
		return err
	}
	s.log.Info("token deleted", "token", match[0].Display())
	return nil
}

// checkToken reports whether token is a live token for role. The lookup is by hash and
// the stored hash is compared in constant time; tokens are multi-use until they expire.
func (s *Service) checkToken(ctx context.Context, token, role string) (bool, error) {
	h := hashToken(token)
	it, err := s.cfg.Store.Get(ctx, tokenKey(h))
	if errors.Is(err, state.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var t TokenInfo
	if err := json.Unmarshal(it.Value, &t); err != nil {
		return false, nil
	}
	if subtle.ConstantTimeCompare([]byte(t.Hash), []byte(h)) != 1 || !s.cfg.Now().Before(t.Expires) {
		return false, nil
	}
	for _, r := range t.Roles {
		if r == role {
			return true, nil
		}
	}
	return false, nil
}
