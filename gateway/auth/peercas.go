package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/trust"
	"github.com/tetherproject/tether/resource"
)

// CA rotation across a trust. The two sides of a trust keep copies of each other's SSH
// CAs from the handshake: a leaf keeps its root's user CA (root-signed certificates) and
// host CA; a root keeps its leaves' host CAs (its users' known_hosts). Over the tunnel,
// which authenticates both ends by their TLS CAs, the root sends its user and host CAs
// and the leaf answers with its host CA (gateway/tunnel, frame.ServiceTrustCAs), so a
// rotation of those CAs on either side reaches the other within a minute, as Teleport
// pushes rotated CAs over the reverse tunnel. The TLS CAs are not exchanged: they
// authenticate the tunnel itself (their rotation across a trust is still refused).

// PeerRole is which side of a trust the other cluster is.
type PeerRole string

const (
	// PeerRoot is a root this cluster (a leaf) trusts.
	PeerRoot PeerRole = "root"
	// PeerLeaf is a leaf that joined this cluster (a root).
	PeerLeaf PeerRole = "leaf"
)

// peerCATypes are the CA types each side may send.
var peerCATypes = map[PeerRole][]string{
	PeerRoot: {resource.CATypeUser, resource.CATypeHost},
	PeerLeaf: {resource.CATypeHost},
}

// MaxPeerCAs bounds the CAs one exchange may carry.
const MaxPeerCAs = 2

// PeerCAChangeGap is the least time between two changes of one peer's CAs.
const PeerCAChangeGap = 2 * time.Second

// OwnPeerCAs are this cluster's CAs that a peer of role to keeps a copy of: for a leaf
// (this cluster is its root) the user and host CAs, for a root the host CA. Public keys
// only, active and additionally trusted (a rotation's new or old key).
func (s *Service) OwnPeerCAs(to PeerRole) ([]trust.CA, error) {
	sends := peerCATypes[PeerRoot] // to a leaf, this cluster is its root
	if to == PeerRoot {
		sends = peerCATypes[PeerLeaf]
	}
	var out []trust.CA
	for _, a := range s.cfg.CA.Authorities() {
		if !slices.Contains(sends, string(a.Type())) {
			continue
		}
		r, err := a.Resource(false)
		if err != nil {
			return nil, err
		}
		out = append(out, trust.FromResource(r))
	}
	return out, nil
}

// ReplacePeerCAs stores the CAs that peer, a cluster of role role authenticated by its
// tunnel, sent as its own, in place of the copies this cluster kept, and rebuilds the
// bundle when one changed. It returns how many copies changed. Refused as a whole (and
// nothing stored): a peer this cluster does not trust now (a root whose trusted_cluster
// is missing or disabled, a leaf without a remote_cluster); a CA of another cluster or of
// a type that side does not send (a root sends user and host, a leaf host; never tls);
// a type twice; more than MaxPeerCAs; a CA that does not check (trust.CA.Resource); a key
// this cluster knows as anyone else's (its own CAs, another peer's, or the peer's other
// type), which would let one cluster's certificates pass as another's.
func (s *Service) ReplacePeerCAs(ctx context.Context, peer string, role PeerRole, cas []trust.CA) (int, error) {
	allowed, ok := peerCATypes[role]
	if !ok {
		return 0, fmt.Errorf("unknown peer role %q", role)
	}
	if len(cas) > MaxPeerCAs {
		return 0, errorf(ErrBadRequest, "%d CAs from %s, more than %d", len(cas), peer, MaxPeerCAs)
	}
	peer = resource.NormalizeClusterName(peer)
	var in []*resource.CertAuthority
	seen := map[string]bool{}
	for _, c := range cas {
		if !slices.Contains(allowed, c.Type) {
			return 0, errorf(ErrBadRequest, "a %s CA from %s (%s): a %s sends only its %v CAs", c.Type, role, peer, role, allowed)
		}
		if seen[c.Type] {
			return 0, errorf(ErrBadRequest, "two %s CAs from %s", c.Type, peer)
		}
		seen[c.Type] = true
		if !resource.SameCluster(c.ClusterName, peer) {
			return 0, errorf(ErrBadRequest, "%s sent a %s CA of %q; a cluster sends only its own", peer, c.Type, c.ClusterName)
		}
		r, err := c.Resource()
		if err != nil {
			return 0, errorf(ErrBadRequest, "the %s CA from %s: %v", c.Type, peer, err)
		}
		r.Metadata = resource.Metadata{Name: peer}
		r.Spec.ClusterName = peer
		in = append(in, r)
	}
	if err := s.checkPeerTrusted(ctx, peer, role); err != nil {
		return 0, err
	}
	// Most exchanges change nothing: they cost a read per CA, not the key index below,
	// which lists every CA this cluster knows.
	if same, err := s.samePeerCAs(ctx, peer, in); err != nil || same {
		return 0, err
	}
	// A change rebuilds the bundle: a peer (a compromised one included) gets at most one
	// applied per PeerCAChangeGap, as lock sets are (a rotation has four phases).
	if err := s.peerCAGap.wait(ctx, peer); err != nil {
		return 0, err
	}
	defer s.peerCAGap.next(peer, PeerCAChangeGap)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.trustMu.Lock()
	defer s.trustMu.Unlock()
	// Again under the locks: a trust disabled or removed meanwhile takes nothing.
	if err := s.checkPeerTrusted(ctx, peer, role); err != nil {
		return 0, err
	}
	// Every key this cluster knows but the copies being replaced.
	ix, err := s.knownKeysExcept(ctx, peer, in)
	if err != nil {
		return 0, err
	}
	for _, r := range in {
		if err := ix.add(r); err != nil {
			return 0, errorf(ErrBadRequest, "the %s CA from %s: %v", r.Spec.Type, peer, err)
		}
	}
	changed := 0
	for _, r := range in {
		if same, err := s.peerCAStored(ctx, peer, r); err != nil {
			return 0, err
		} else if same {
			continue
		}
		if err := s.put(ctx, caKey(peer, r.Spec.Type), r); err != nil {
			return changed, err
		}
		changed++
		fps, _ := caFingerprints(r)
		s.log.Info("a trusted cluster's CA changed (rotation)", "cluster", peer, "side", string(role), "type", r.Spec.Type, "keys", fps)
		s.Audit(ctx, AuditEvent{Type: AuditTrustCAUpdate, Fields: map[string]any{
			"cluster": peer, "side": string(role), "type": r.Spec.Type, "keys": fps}})
	}
	if changed > 0 {
		if err := s.rebuildAfter(ctx); err != nil {
			return changed, err
		}
	}
	return changed, nil
}

// samePeerCAs: the stored copies of peer's CAs hold exactly the keys of in.
func (s *Service) samePeerCAs(ctx context.Context, peer string, in []*resource.CertAuthority) (bool, error) {
	for _, r := range in {
		if same, err := s.peerCAStored(ctx, peer, r); err != nil || !same {
			return false, err
		}
	}
	return true, nil
}

// peerCAStored: the stored copy of peer's CA of r's type holds exactly r's keys.
func (s *Service) peerCAStored(ctx context.Context, peer string, r *resource.CertAuthority) (bool, error) {
	old, err := s.get(ctx, caKey(peer, r.Spec.Type))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	oc, ok := old.(*resource.CertAuthority)
	return ok && sameKeys(oc, r), nil
}

// checkPeerTrusted: peer is a root this cluster trusts now, or a leaf that joined it.
func (s *Service) checkPeerTrusted(ctx context.Context, peer string, role PeerRole) error {
	switch role {
	case PeerRoot:
		r, err := s.get(ctx, resourceKey(resource.KindTrustedCluster, peer))
		if errors.Is(err, ErrNotFound) {
			return errorf(ErrBadRequest, "CAs from %s refused: this cluster does not trust it", peer)
		}
		if err != nil {
			return err
		}
		if tc, ok := r.(*resource.TrustedCluster); !ok || !tc.Spec.Enabled {
			return errorf(ErrBadRequest, "CAs from %s refused: the trust in it is disabled", peer)
		}
	case PeerLeaf:
		ok, err := s.exists(ctx, resourceKey(resource.KindRemoteCluster, peer))
		if err != nil {
			return err
		}
		if !ok {
			return errorf(ErrBadRequest, "CAs from %s refused: it is not a leaf of this cluster", peer)
		}
	}
	return nil
}

// knownKeysExcept is knownKeys without the stored copies of peer's CAs of the types in
// replacing (none when peer is empty). A conflict already in the store is an error: then
// nothing new gets in.
func (s *Service) knownKeysExcept(ctx context.Context, peer string, replacing []*resource.CertAuthority) (keyIndex, error) {
	ix := keyIndex{}
	own, err := s.cfg.CA.Resources(false)
	if err != nil {
		return nil, err
	}
	for _, c := range own {
		if err := ix.add(c); err != nil {
			return nil, fmt.Errorf("this cluster's own CAs: %w", err)
		}
	}
	stored, err := s.list(ctx, resourcesPrefix+resource.KindCertAuthority+"/")
	if err != nil {
		return nil, fmt.Errorf("listing known certificate authorities: %w", err)
	}
	for _, r := range stored {
		c := r.(*resource.CertAuthority)
		if c.Spec.ClusterName == s.cfg.ClusterName {
			continue
		}
		if resource.SameCluster(c.Spec.ClusterName, peer) && slices.ContainsFunc(replacing, func(n *resource.CertAuthority) bool { return n.Spec.Type == c.Spec.Type }) {
			continue
		}
		if err := ix.add(c); err != nil {
			return nil, fmt.Errorf("stored certificate authorities: %w", err)
		}
	}
	return ix, nil
}

// sameKeys: a and b hold the same public keys in the same roles.
func sameKeys(a, b *resource.CertAuthority) bool {
	fa, errA := caFingerprints(a)
	fb, errB := caFingerprints(b)
	return errA == nil && errB == nil && slices.Equal(fa, fb) &&
		len(a.Spec.ActiveKeys.SSH) == len(b.Spec.ActiveKeys.SSH)
}

// peerExchanged: CAs of type typ that a peer keeps reach it over the tunnel, so they may
// rotate across a trust (what a root sends covers what a leaf sends).
func peerExchanged(typ ca.Type) bool {
	return slices.Contains(peerCATypes[PeerRoot], string(typ))
}
