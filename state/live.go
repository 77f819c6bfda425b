package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// LivePrefix is where the helpers in this file keep state that its owners
// keep re-sending: heartbeats, tunnel claims and sessions. Everything under
// it expires unless renewed, and the Redis store does not WAIT for replicas
// on writes under it: losing one in a failover costs a re-send, not data.
const LivePrefix = "live/"

const (
	heartbeatPrefix = LivePrefix + "heartbeat/"
	tunnelPrefix    = LivePrefix + "tunnel/"
	sessionPrefix   = LivePrefix + "session/"
)

// Heartbeat kinds the gateway sends.
const (
	HeartbeatCluster = "cluster" // a leaf cluster, seen by the root over its tunnel
	HeartbeatNode    = "node"    // a node agent
	HeartbeatProxy   = "proxy"   // a proxy replica
)

// Heartbeat says that something was alive at Time; it disappears at Expires
// unless sent again.
type Heartbeat struct {
	Kind, Name string
	// Data is the sender's payload (address, labels, version), opaque here.
	Data     []byte
	Time     time.Time
	Expires  time.Time
	Revision int64
}

type heartbeatValue struct {
	Time time.Time `json:"time"`
	Data []byte    `json:"data,omitempty"`
}

// checkName rejects names that would break the key layout: a "/" in a kind
// or name would let one kind's listing see another's.
func checkName(what, name string) error {
	if name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("%w: %s %q must be non-empty and contain no '/'", ErrInvalid, what, name)
	}
	return nil
}

func checkTTL(ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("%w: TTL %s is shorter than a millisecond", ErrInvalid, ttl)
	}
	return nil
}

// PutHeartbeat records that kind/name is alive now, for ttl.
func PutHeartbeat(ctx context.Context, s Store, kind, name string, ttl time.Duration, data []byte) (Heartbeat, error) {
	if err := errors.Join(checkName("heartbeat kind", kind), checkName("heartbeat name", name), checkTTL(ttl)); err != nil {
		return Heartbeat{}, err
	}
	now := time.Now()
	val, err := json.Marshal(heartbeatValue{Time: now.UTC(), Data: data})
	if err != nil {
		return Heartbeat{}, err
	}
	it, err := s.Put(ctx, Item{Key: heartbeatPrefix + kind + "/" + name, Value: val, Expires: now.Add(ttl)})
	if err != nil {
		return Heartbeat{}, fmt.Errorf("recording heartbeat of %s %q: %w", kind, name, err)
	}
	return decodeHeartbeat(it)
}

// GetHeartbeat returns the live heartbeat of kind/name, or ErrNotFound.
func GetHeartbeat(ctx context.Context, s Store, kind, name string) (Heartbeat, error) {
	if err := errors.Join(checkName("heartbeat kind", kind), checkName("heartbeat name", name)); err != nil {
		return Heartbeat{}, err
	}
	it, err := s.Get(ctx, heartbeatPrefix+kind+"/"+name)
	if err != nil {
		return Heartbeat{}, err
	}
	return decodeHeartbeat(it)
}

// ListHeartbeats returns the live heartbeats of kind, sorted by name.
func ListHeartbeats(ctx context.Context, s Store, kind string) ([]Heartbeat, error) {
	if err := checkName("heartbeat kind", kind); err != nil {
		return nil, err
	}
	items, err := s.List(ctx, heartbeatPrefix+kind+"/")
	if err != nil {
		return nil, fmt.Errorf("listing %s heartbeats: %w", kind, err)
	}
	out := make([]Heartbeat, 0, len(items))
	for _, it := range items {
		hb, err := decodeHeartbeat(it)
		if err != nil {
			return nil, err
		}
		out = append(out, hb)
	}
	return out, nil
}

func decodeHeartbeat(it Item) (Heartbeat, error) {
	rest := strings.TrimPrefix(it.Key, heartbeatPrefix)
	kind, name, _ := strings.Cut(rest, "/")
	var v heartbeatValue
	if err := json.Unmarshal(it.Value, &v); err != nil {
		return Heartbeat{}, fmt.Errorf("state: decoding heartbeat %q: %w", it.Key, err)
	}
	return Heartbeat{Kind: kind, Name: name, Data: v.Data, Time: v.Time, Expires: it.Expires, Revision: it.Revision}, nil
}

// TunnelClaim says which proxy replica holds a leaf cluster's tunnel.
type TunnelClaim struct {
	Leaf     string
	ProxyID  string
	Expires  time.Time
	Revision int64
}

// TunnelClaimedError is ClaimTunnel's answer when another proxy replica holds
// the tunnel. The caller should route through that replica, or retry after
// Expires.
type TunnelClaimedError struct {
	Leaf, Owner string
	Expires     time.Time
}

func (e *TunnelClaimedError) Error() string {
	return fmt.Sprintf("state: tunnel of leaf cluster %q is held by proxy %q until %s", e.Leaf, e.Owner, e.Expires.UTC().Format(time.RFC3339))
}

type tunnelValue struct {
	Proxy string `json:"proxy"` // "" once released
}

// releasedTTL is how long a released claim lingers (as a free marker).
const releasedTTL = time.Minute

// maxClaimAttempts bounds ClaimTunnel's compare-and-swap retries.
const maxClaimAttempts = 16

// ClaimTunnel makes proxyID the holder of leaf's tunnel for ttl, or renews
// the claim when proxyID already holds it. Compare-and-swap makes sure only
// one replica wins; the others get a *TunnelClaimedError. A claim that is not
// renewed expires, and then any replica may take it.
func ClaimTunnel(ctx context.Context, s Store, leaf, proxyID string, ttl time.Duration) (TunnelClaim, error) {
	if err := errors.Join(checkName("leaf cluster", leaf), checkName("proxy ID", proxyID), checkTTL(ttl)); err != nil {
		return TunnelClaim{}, err
	}
	key := tunnelPrefix + leaf
	val, err := json.Marshal(tunnelValue{Proxy: proxyID})
	if err != nil {
		return TunnelClaim{}, err
	}
	for range maxClaimAttempts {
		cur, err := s.Get(ctx, key)
		var expected Item // zero revision: create if absent
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return TunnelClaim{}, fmt.Errorf("claiming tunnel of %q: %w", leaf, err)
		default:
			var v tunnelValue
			if err := json.Unmarshal(cur.Value, &v); err != nil {
				return TunnelClaim{}, fmt.Errorf("state: decoding tunnel claim %q: %w", key, err)
			}
			if v.Proxy != "" && v.Proxy != proxyID {
				return TunnelClaim{}, &TunnelClaimedError{Leaf: leaf, Owner: v.Proxy, Expires: cur.Expires}
			}
			expected = cur
		}
		expected.Key = key
		it, err := s.CompareAndSwap(ctx, expected, Item{Key: key, Value: val, Expires: time.Now().Add(ttl)})
		switch {
		case err == nil:
			return TunnelClaim{Leaf: leaf, ProxyID: proxyID, Expires: it.Expires, Revision: it.Revision}, nil
		case errors.Is(err, ErrConflict), errors.Is(err, ErrAlreadyExists):
			continue // someone else wrote it: look again
		default:
			return TunnelClaim{}, fmt.Errorf("claiming tunnel of %q: %w", leaf, err)
		}
	}
	return TunnelClaim{}, fmt.Errorf("claiming tunnel of %q: %w: still contended after %d attempts", leaf, ErrConflict, maxClaimAttempts)
}

// ReleaseTunnel gives up proxyID's claim on leaf's tunnel so another replica
// can take it at once. It does nothing when proxyID does not hold it.
func ReleaseTunnel(ctx context.Context, s Store, leaf, proxyID string) error {
	if err := errors.Join(checkName("leaf cluster", leaf), checkName("proxy ID", proxyID)); err != nil {
		return err
	}
	key := tunnelPrefix + leaf
	free, _ := json.Marshal(tunnelValue{})
	for range maxClaimAttempts {
		claim, cur, err := tunnelOwner(ctx, s, leaf)
		if errors.Is(err, ErrNotFound) || (err == nil && claim.ProxyID != proxyID) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("releasing tunnel of %q: %w", leaf, err)
		}
		// The Store has no compare-and-delete; a free marker written with
		// compare-and-swap cannot remove a claim someone else just took.
		_, err = s.CompareAndSwap(ctx, cur, Item{Key: key, Value: free, Expires: time.Now().Add(releasedTTL)})
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrConflict) {
			return fmt.Errorf("releasing tunnel of %q: %w", leaf, err)
		}
	}
	return fmt.Errorf("releasing tunnel of %q: %w: still contended after %d attempts", leaf, ErrConflict, maxClaimAttempts)
}

// TunnelOwner returns the current claim on leaf's tunnel, or ErrNotFound.
func TunnelOwner(ctx context.Context, s Store, leaf string) (TunnelClaim, error) {
	if err := checkName("leaf cluster", leaf); err != nil {
		return TunnelClaim{}, err
	}
	claim, _, err := tunnelOwner(ctx, s, leaf)
	return claim, err
}

func tunnelOwner(ctx context.Context, s Store, leaf string) (TunnelClaim, Item, error) {
	it, err := s.Get(ctx, tunnelPrefix+leaf)
	if err != nil {
		return TunnelClaim{}, Item{}, err
	}
	claim, err := decodeClaim(it)
	if err == nil && claim.ProxyID == "" {
		err = fmt.Errorf("tunnel of %q: released: %w", leaf, ErrNotFound)
	}
	return claim, it, err
}

// ListTunnels returns the current claims, sorted by leaf cluster.
func ListTunnels(ctx context.Context, s Store) ([]TunnelClaim, error) {
	items, err := s.List(ctx, tunnelPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing tunnel claims: %w", err)
	}
	var out []TunnelClaim
	for _, it := range items {
		c, err := decodeClaim(it)
		if err != nil {
			return nil, err
		}
		if c.ProxyID != "" {
			out = append(out, c)
		}
	}
	return out, nil
}

func decodeClaim(it Item) (TunnelClaim, error) {
	var v tunnelValue
	if err := json.Unmarshal(it.Value, &v); err != nil {
		return TunnelClaim{}, fmt.Errorf("state: decoding tunnel claim %q: %w", it.Key, err)
	}
	return TunnelClaim{Leaf: strings.TrimPrefix(it.Key, tunnelPrefix), ProxyID: v.Proxy, Expires: it.Expires, Revision: it.Revision}, nil
}

// Session is an active user session, kept while its proxy renews it.
type Session struct {
	ID      string    `json:"-"`
	User    string    `json:"user"`
	Login   string    `json:"login,omitempty"`
	Node    string    `json:"node,omitempty"`
	Cluster string    `json:"cluster,omitempty"`
	ProxyID string    `json:"proxy_id,omitempty"`
	Started time.Time `json:"started"`
	// Expires and Revision are set by the store.
	Expires  time.Time `json:"-"`
	Revision int64     `json:"-"`
}

// PutSession records (or renews) sess for ttl.
func PutSession(ctx context.Context, s Store, sess Session, ttl time.Duration) (Session, error) {
	if err := errors.Join(checkName("session ID", sess.ID), checkTTL(ttl)); err != nil {
		return Session{}, err
	}
	val, err := json.Marshal(sess)
	if err != nil {
		return Session{}, err
	}
	it, err := s.Put(ctx, Item{Key: sessionPrefix + sess.ID, Value: val, Expires: time.Now().Add(ttl)})
	if err != nil {
		return Session{}, fmt.Errorf("recording session %q: %w", sess.ID, err)
	}
	return decodeSession(it)
}

// ListSessions returns the active sessions, sorted by ID.
func ListSessions(ctx context.Context, s Store) ([]Session, error) {
	items, err := s.List(ctx, sessionPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing sessions: %w", err)
	}
	out := make([]Session, 0, len(items))
	for _, it := range items {
		sess, err := decodeSession(it)
		if err != nil {
			return nil, err
		}
		out = append(out, sess)
	}
	return out, nil
}

// DeleteSession removes an ended session; ErrNotFound if it is not there.
func DeleteSession(ctx context.Context, s Store, id string) error {
	if err := checkName("session ID", id); err != nil {
		return err
	}
	if err := s.Delete(ctx, sessionPrefix+id); err != nil {
		return fmt.Errorf("deleting session %q: %w", id, err)
	}
	return nil
}

func decodeSession(it Item) (Session, error) {
	var sess Session
	if err := json.Unmarshal(it.Value, &sess); err != nil {
		return Session{}, fmt.Errorf("state: decoding session %q: %w", it.Key, err)
	}
	sess.ID = strings.TrimPrefix(it.Key, sessionPrefix)
	sess.Expires, sess.Revision = it.Expires, it.Revision
	return sess, nil
}
