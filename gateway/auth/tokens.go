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
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tetherproject/tether/gateway/audit"
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
	// MinTokenLength is the shortest token accepted: 32 characters, so that the prefix a
	// listing shows is an eighth of it at most.
	MinTokenLength = 32
	// MinTokenBits is the least entropy a token must carry, estimated from its length and
	// alphabet (see tokenStrength): 128 bits, 32 hex characters.
	MinTokenBits = 128
)

// TokenInfo is what is stored about a token: never the token itself, only its SHA-256,
// the first characters (to tell tokens apart in a listing) and what it is for.
type TokenInfo struct {
	Hash   string            `json:"hash"`
	Prefix string            `json:"prefix"`
	Roles  []string          `json:"roles"`
	Labels map[string]string `json:"labels,omitempty"`
	// ClusterName, for a trusted_cluster token, is the only leaf name it may join as;
	// empty: any name (Teleport's behaviour).
	ClusterName string `json:"cluster_name,omitempty"`
	// Length is the token's length. Records written before it was kept read as 0.
	Length  int       `json:"length,omitempty"`
	Expires time.Time `json:"expires"`
}

// Display is the token as listings show it: its prefix and an ellipsis. A token too short
// for its prefix to be a small part of it (only records from before MinTokenLength) is
// shown by its hash instead, never by half of its value.
func (t TokenInfo) Display() string {
	if t.Length >= MinTokenLength {
		return t.Prefix + "…"
	}
	return t.hashDisplay() + "…"
}

func (t TokenInfo) hashDisplay() string {
	h := t.Hash
	if len(h) > 16 {
		h = h[:16]
	}
	return "sha256:" + h
}

// Matches reports whether s names this token: the whole token, or the name a listing
// shows (with or without the ellipsis).
func (t TokenInfo) Matches(s string) bool {
	if secretEqual(hashToken(s), t.Hash) {
		return true
	}
	return strings.TrimSuffix(s, "…") == strings.TrimSuffix(t.Display(), "…")
}

// tokenStrength refuses a token that is too short or too guessable to be one: fewer than
// MinTokenLength characters, fewer than MinTokenBits estimated from its length and the
// alphabet it draws from (16 for hex, else the sum of the classes it uses: digits 10,
// lower 26, upper 26, others 32), or a repetition (fewer than 8 distinct characters, or
// one character making up half of it). The message never echoes the token.
func tokenStrength(token string) error {
	if len(token) < MinTokenLength {
		return fmt.Errorf("a token must be at least %d characters (%d random bits; tetherctl tokens add makes one), this one has %d", MinTokenLength, MinTokenBits, len(token))
	}
	var digit, lower, upper, other, hexLower, hexUpper bool
	hexLower, hexUpper = true, true
	counts := map[byte]int{}
	for i := 0; i < len(token); i++ {
		c := token[i]
		counts[c]++
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'z':
			lower = true
			hexUpper = false
			if c > 'f' {
				hexLower = false
			}
		case c >= 'A' && c <= 'Z':
			upper = true
			hexLower = false
			if c > 'F' {
				hexUpper = false
			}
		default:
			other = true
			hexLower, hexUpper = false, false
		}
	}
	alphabet := 0
	switch {
	case !lower && !upper && !other:
		alphabet = 10
	case hexLower || hexUpper:
		alphabet = 16
	default:
		for _, cl := range []struct {
			used bool
			n    int
		}{{digit, 10}, {lower, 26}, {upper, 26}, {other, 32}} {
			if cl.used {
				alphabet += cl.n
			}
		}
	}
	bits := float64(len(token)) * math.Log2(float64(alphabet))
	if bits < MinTokenBits {
		return fmt.Errorf("a token must carry at least %d bits (32 hex characters); this one carries about %.0f", MinTokenBits, bits)
	}
	most := 0
	for _, n := range counts {
		most = max(most, n)
	}
	if len(counts) < 8 || 2*most >= len(token) {
		return fmt.Errorf("a token must be random: this one repeats a few characters (%d distinct); use tetherctl tokens add, or openssl rand -hex 16", len(counts))
	}
	return nil
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

// TokenOptions describe a token for AddToken.
type TokenOptions struct {
	// Roles are what the token is for: trusted_cluster, node.
	Roles []string
	// TTL is the token's lifetime; zero means DefaultTokenTTL.
	TTL time.Duration
	// Labels go onto what joins with the token (a trusted_cluster token's labels become
	// the remote_cluster's).
	Labels map[string]string
	// ClusterName binds a trusted_cluster token to the leaf of that name.
	ClusterName string
	// Value is the token; empty means a new random one (128 bits, hex).
	Value string
}

// AddToken creates a token (random unless opts.Value) and returns it. This is the only
// time the token is seen: the store keeps its hash.
func (s *Service) AddToken(ctx context.Context, opts TokenOptions) (string, TokenInfo, error) {
	token := opts.Value
	if token == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", TokenInfo{}, err
		}
		token = hex.EncodeToString(b[:])
	}
	info, err := s.storeToken(ctx, token, opts)
	return token, info, err
}

func (s *Service) storeToken(ctx context.Context, token string, opts TokenOptions) (TokenInfo, error) {
	ttl := opts.TTL
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < 0 || ttl > MaxTokenTTL {
		return TokenInfo{}, errorf(ErrBadRequest, "token TTL %v: want more than 0 and at most %v", ttl, MaxTokenTTL)
	}
	t := &resource.Token{Kind: resource.KindToken, Version: "v2", Metadata: resource.Metadata{Name: token, Labels: opts.Labels}, Spec: resource.TokenSpec{Roles: opts.Roles}}
	if err := t.Validate(); err != nil {
		return TokenInfo{}, errorf(ErrBadRequest, "%v", err)
	}
	if err := tokenStrength(token); err != nil {
		return TokenInfo{}, errorf(ErrBadRequest, "token refused: %v", err)
	}
	bound := ""
	if opts.ClusterName != "" {
		if len(t.Spec.Roles) != 1 || t.Spec.Roles[0] != resource.TokenRoleTrustedCluster {
			return TokenInfo{}, errorf(ErrBadRequest, "a token bound to a cluster name must be of type trusted_cluster only")
		}
		if err := resource.CheckClusterName(opts.ClusterName); err != nil {
			return TokenInfo{}, errorf(ErrBadRequest, "token cluster name: %v", err)
		}
		bound = resource.NormalizeClusterName(opts.ClusterName)
		if bound == s.cfg.ClusterName {
			return TokenInfo{}, errorf(ErrBadRequest, "token cluster name %q is this cluster's own name; give the leaf's cluster_name", bound)
		}
	}
	if slices.Contains(t.Spec.Roles, resource.TokenRoleNode) {
		// The labels go onto every node that joins with the token.
		if err := CheckNodeLabels(opts.Labels); err != nil {
			return TokenInfo{}, errorf(ErrBadRequest, "token labels: %v", err)
		}
	}
	if len(opts.Labels) > 0 {
		// The labels become a remote_cluster's: refuse now what SetRemoteClusterLabels would.
		rc := &resource.RemoteCluster{Kind: resource.KindRemoteCluster, Version: "v3", Metadata: resource.Metadata{Name: "leaf", Labels: opts.Labels}}
		if err := rc.Validate(); err != nil {
			return TokenInfo{}, errorf(ErrBadRequest, "token labels: %v", err)
		}
	}
	info := TokenInfo{
		Hash:        hashToken(token),
		Prefix:      token[:tokenPrefixLen],
		Roles:       t.Spec.Roles,
		Labels:      opts.Labels,
		ClusterName: bound,
		Length:      len(token),
		Expires:     s.cfg.Now().Add(ttl).UTC().Truncate(time.Millisecond),
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
	s.log.Info("token added", "token", info.Display(), "roles", info.Roles, "cluster_name", info.ClusterName, "expires", info.Expires)
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
	_, err := s.storeToken(ctx, t.Metadata.Name, TokenOptions{Roles: t.Spec.Roles, TTL: ttl, Labels: t.Metadata.Labels})
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

// checkToken returns the token's record if token is a live token for role. The lookup is
// by hash and the stored hash is compared in constant time; tokens are multi-use until
// they expire.
func (s *Service) checkToken(ctx context.Context, token, role string) (TokenInfo, bool, error) {
	h := hashToken(token)
	it, err := s.cfg.Store.Get(ctx, tokenKey(h))
	if errors.Is(err, state.ErrNotFound) {
		return TokenInfo{}, false, nil
	}
	if err != nil {
		return TokenInfo{}, false, err
	}
	var t TokenInfo
	if err := json.Unmarshal(it.Value, &t); err != nil {
		return TokenInfo{}, false, nil
	}
	if subtle.ConstantTimeCompare([]byte(t.Hash), []byte(h)) != 1 || !s.cfg.Now().Before(t.Expires) {
		return TokenInfo{}, false, nil
	}
	for _, r := range t.Roles {
		if r == role {
			s.Audit(ctx, AuditEvent{Type: audit.TokenUse, Fields: map[string]any{"token_type": role, "token_prefix": t.Display()}})
			return t, true, nil
		}
	}
	return TokenInfo{}, false, nil
}
