package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/tetherproject/tether/gateway/audit"
	"github.com/tetherproject/tether/gateway/trust"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/state"
)

// usedTokenKey holds, on a leaf, the SHA-256 of the invitation token a trust was
// established with. The token itself is dropped after the handshake (the leaf keeps no
// reusable secret); the hash only lets `create --force` with the original file, token
// included, be told apart from an attempt to change the token.
func usedTokenKey(root string) string { return trustPrefix + root + "/used-token" }

type usedToken struct {
	SHA256 string `json:"sha256"`
}

// upsertTrustedCluster is `tetherctl create [--force] trusted_cluster.yaml` on a leaf.
// A new, enabled trust runs the handshake with the root before anything is stored; an
// existing one may change only role_map and enabled; enabling a trust whose root CAs are
// already stored needs no token. Once the root's CAs are stored the trust is stored
// without its token.
//
// Token rules on an existing trust (Teleport's: the token is immutable): the mask, an
// empty token, or the token the trust was established with are accepted and change
// nothing; any other token is refused with how to start over.
func (s *Service) upsertTrustedCluster(ctx context.Context, tc *resource.TrustedCluster, existed bool) error {
	name := tc.Metadata.Name
	if resource.SameCluster(name, s.cfg.ClusterName) {
		return errorf(ErrBadRequest, "trusted_cluster %q has this cluster's own name; name it after the root cluster", name)
	}
	if ok, err := s.exists(ctx, resourceKey(resource.KindRemoteCluster, name)); err != nil {
		return err
	} else if ok {
		return errorf(ErrBadRequest, "cluster %q is a leaf of this cluster (remote_cluster %s); a cluster cannot be both root and leaf of another", name, name)
	}
	for i, m := range tc.Spec.RoleMap {
		for _, local := range m.Local {
			if !isLiteralLocal(local) {
				continue
			}
			ok, err := s.exists(ctx, resourceKey(resource.KindRole, local))
			if err != nil {
				return err
			}
			if !ok {
				return errorf(ErrBadRequest, "trusted_cluster %q: role_map[%d] maps %q to local role %q, which does not exist on %s; create the role first",
					name, i, m.Remote, local, s.cfg.ClusterName)
			}
		}
	}
	haveCAs, err := s.hasCAs(ctx, name)
	if err != nil {
		return err
	}
	wasEnabled := false
	if existed {
		old, err := s.get(ctx, resourceKey(resource.KindTrustedCluster, name))
		if err != nil {
			return err
		}
		prev := old.(*resource.TrustedCluster)
		wasEnabled = prev.Spec.Enabled
		var changed []string
		switch {
		case tc.Spec.Token == SecretMask || tc.Spec.Token == "":
			tc.Spec.Token = prev.Spec.Token
		case prev.Spec.Token != "":
			if !secretEqual(tc.Spec.Token, prev.Spec.Token) {
				changed = append(changed, "token")
			}
		default:
			// The stored trust holds no token (dropped after the handshake): the same
			// token as then is no change; another is.
			used, err := s.usedTokenHash(ctx, name)
			if err != nil {
				return err
			}
			if used == "" || !secretEqual(hashToken(tc.Spec.Token), used) {
				changed = append(changed, "token")
			}
			tc.Spec.Token = ""
		}
		if tc.Spec.WebProxyAddr != prev.Spec.WebProxyAddr {
			changed = append(changed, "web_proxy_addr")
		}
		if tc.Spec.TunnelAddr != prev.Spec.TunnelAddr {
			changed = append(changed, "tunnel_addr")
		}
		if len(changed) > 0 {
			return errorf(ErrBadRequest, "trusted_cluster %q: %v cannot be changed on an existing trust (only role_map and enabled can); to change them remove the trust (tetherctl rm trusted_cluster/%s) and create it again with a new token",
				name, strings.Join(changed, ", "), name)
		}
	} else if tc.Spec.Token == SecretMask {
		return errorf(ErrBadRequest, "trusted_cluster %q: spec.token is the mask %q; put the invitation token from the root there", name, SecretMask)
	}
	if !haveCAs && tc.Spec.Token == "" && (tc.Spec.Enabled || !existed) {
		return errorf(ErrBadRequest, "trusted_cluster %q: spec.token is required: the invitation token from the root cluster (tetherctl tokens add --type=trusted_cluster on the root)", name)
	}
	if tc.Spec.Enabled && !haveCAs {
		if err := s.establishTrust(ctx, tc); err != nil {
			return err
		}
		if err := s.putJSON(ctx, usedTokenKey(name), usedToken{SHA256: hashToken(tc.Spec.Token)}); err != nil {
			return err
		}
		s.Audit(ctx, AuditEvent{Type: AuditTrustJoin, Fields: map[string]any{"root": name, "side": "leaf"}})
		haveCAs = true
	}
	if haveCAs {
		// The root's CAs are stored: the trust no longer needs the invitation token, and
		// a leaf keeps no secret that could be replayed (it stays valid on the root
		// until its TTL).
		tc.Spec.Token = ""
	}
	if err := s.put(ctx, resourceKey(resource.KindTrustedCluster, name), tc); err != nil {
		return err
	}
	s.log.Info("trusted cluster stored", "root", name, "enabled", tc.Spec.Enabled)
	switch {
	case existed && wasEnabled && !tc.Spec.Enabled:
		s.Audit(ctx, AuditEvent{Type: audit.TrustDisable, Fields: map[string]any{"root": name}})
	case existed && !wasEnabled && tc.Spec.Enabled:
		s.Audit(ctx, AuditEvent{Type: audit.TrustEnable, Fields: map[string]any{"root": name}})
	}
	return nil
}

// dropUsedTokens removes the invitation token from every stored trust whose root CAs are
// stored (trusts established before the leaf stopped keeping its token), keeping only its
// hash as upsertTrustedCluster does.
func (s *Service) dropUsedTokens(ctx context.Context) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	rs, err := s.list(ctx, resourcesPrefix+resource.KindTrustedCluster+"/")
	if err != nil {
		return err
	}
	for _, r := range rs {
		tc := r.(*resource.TrustedCluster)
		if tc.Spec.Token == "" {
			continue
		}
		if ok, err := s.hasCAs(ctx, tc.Metadata.Name); err != nil || !ok {
			if err != nil {
				return err
			}
			continue
		}
		if err := s.putJSON(ctx, usedTokenKey(tc.Metadata.Name), usedToken{SHA256: hashToken(tc.Spec.Token)}); err != nil {
			return err
		}
		tc.Spec.Token = ""
		if err := s.put(ctx, resourceKey(resource.KindTrustedCluster, tc.Metadata.Name), tc); err != nil {
			return err
		}
		s.log.Info("dropped the invitation token of an established trust", "root", tc.Metadata.Name)
	}
	return nil
}

func (s *Service) putJSON(ctx context.Context, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Store.Put(ctx, state.Item{Key: key, Value: data}); err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	return nil
}

func (s *Service) usedTokenHash(ctx context.Context, root string) (string, error) {
	it, err := s.cfg.Store.Get(ctx, usedTokenKey(root))
	if errors.Is(err, state.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var u usedToken
	if err := json.Unmarshal(it.Value, &u); err != nil {
		return "", nil
	}
	return u.SHA256, nil
}

func (s *Service) hasCAs(ctx context.Context, cluster string) (bool, error) {
	items, err := s.cfg.Store.List(ctx, resourcesPrefix+resource.KindCertAuthority+"/"+cluster+"/")
	if err != nil {
		return false, err
	}
	return len(items) > 0, nil
}

// establishTrust sends this cluster's host and TLS CAs and the token to the root and
// stores the root's host, user and TLS CAs, unless one of their keys is one this cluster
// already knows (its own, or another trusted cluster's). The root's TLS CA is what the
// tunnel agent pins; a root that sends none gets no tunnel.
func (s *Service) establishTrust(ctx context.Context, tc *resource.TrustedCluster) error {
	host, err := s.cfg.CA.Host.Resource(false)
	if err != nil {
		return err
	}
	tlsCA, err := s.cfg.CA.TLS.Resource(false)
	if err != nil {
		return err
	}
	root := tc.Metadata.Name
	req := trust.ValidateRequest{Token: tc.Spec.Token, CAs: []trust.CA{trust.FromResource(host), trust.FromResource(tlsCA)}}
	s.log.Info("establishing trust with root", "root", root, "web_proxy_addr", tc.Spec.WebProxyAddr)
	cas, err := s.cfg.Trust.Validate(ctx, tc.Spec.WebProxyAddr, root, req)
	if err != nil {
		s.log.Warn("trust with root not established", "root", root, "err", err)
		if errors.Is(err, trust.ErrTokenRejected) {
			return errorf(ErrBadRequest, "the root %s answered: %v; ask its admin for a new token (tetherctl tokens add --type=trusted_cluster)", root, err)
		}
		return errorf(ErrBadRequest, "establishing trust with %s: %v", root, err)
	}
	if err := s.checkNewCAs(ctx, cas...); err != nil {
		s.log.Warn("refused the root's answer: it reuses a known CA key", "root", root, "err", err)
		s.Audit(ctx, AuditEvent{Type: AuditTrustJoinRefused, Fields: map[string]any{"root": root, "side": "leaf", "reason": err.Error()}})
		return errorf(ErrBadRequest, "refused the answer of %s: %v; nothing was stored. The root presents keys that are not its own: check web_proxy_addr and the root's identity", root, err)
	}
	for _, c := range cas {
		if err := s.put(ctx, caKey(c.Spec.ClusterName, c.Spec.Type), c); err != nil {
			return err
		}
	}
	s.log.Info("trust with root established", "root", root)
	return nil
}

// ValidateTrustedCluster is ValidateLeaf for a leaf that sent no TLS CA (an older
// version): it joins, but its tunnel is refused until it joins again with one.
func (s *Service) ValidateTrustedCluster(ctx context.Context, token string, leafHostCA *resource.CertAuthority, remote string) (*trust.ValidateResponse, error) {
	return s.ValidateLeaf(ctx, token, leafHostCA, nil, remote)
}

// ValidateLeaf is the root's side of the handshake. In order: the token must be
// a live trusted_cluster token (else ErrTokenRejected, whatever else is wrong) and, when
// bound to a leaf name, bound to this one; the leaf's name must be a cluster name that is
// neither this cluster's, nor its root's, nor one that already has a remote_cluster
// (ErrAlreadyExists: a name is claimed once, until a root admin removes it); no key of
// the leaf's host and TLS CAs may be a key this cluster knows (nor may they share one).
// Then it creates the remote_cluster (offline, with the token's labels), stores the
// leaf's host CA and TLS CA (leafTLSCA, nil from an older leaf; the tunnel server
// verifies the leaf's client certificate against it, for that name only) and answers
// with this cluster's host, user and TLS CAs. A refused call changes nothing. remote is
// the caller's address, for the audit.
func (s *Service) ValidateLeaf(ctx context.Context, token string, leafHostCA, leafTLSCA *resource.CertAuthority, remote string) (*trust.ValidateResponse, error) {
	info, ok, err := s.checkToken(ctx, token, resource.TokenRoleTrustedCluster)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrTokenRejected
	}
	claimed := leafHostCA.Spec.ClusterName
	refuse := func(err error) (*trust.ValidateResponse, error) {
		// Info, not Warn: the web API counts refusals into its periodic summary; the
		// audit event records each one (the caller held a valid token).
		s.log.Info("leaf cluster refused", "leaf", claimed, "remote", remote, "token", info.Display(), "reason", err)
		s.Audit(ctx, AuditEvent{Type: AuditTrustJoinRefused, Fields: map[string]any{
			"leaf": claimed, "remote": remote, "token": info.Display(), "reason": err.Error(), "side": "root"}})
		return nil, err
	}
	if err := resource.CheckClusterName(claimed); err != nil {
		return refuse(errorf(ErrBadRequest, "leaf cluster name: %v", err))
	}
	leaf := resource.NormalizeClusterName(claimed)
	if info.ClusterName != "" && info.ClusterName != leaf {
		// To the caller it is a rejected token like any other: the token is not for it.
		_, err := refuse(fmt.Errorf("%w: the token is bound to leaf %q, not %q", ErrTokenRejected, info.ClusterName, leaf))
		return nil, err
	}
	if leaf == s.cfg.ClusterName {
		return refuse(errorf(ErrBadRequest, "the leaf cluster is named %q like this root; every cluster needs its own cluster_name", leaf))
	}
	if ps, icann := publicsuffix.PublicSuffix(leaf); icann && ps == leaf {
		// Users reach a leaf's nodes as NODE.LEAF (tether config writes Host *.LEAF and
		// trusts the leaf's host CA for *.LEAF): a leaf named com would take every host
		// under com.
		return refuse(errorf(ErrBadRequest, "the leaf cluster is named %q, a public suffix (a top-level domain): its nodes would be every host under it; choose a cluster_name under a domain you own", leaf))
	}
	s.trustMu.Lock()
	defer s.trustMu.Unlock()
	if ok, err := s.exists(ctx, resourceKey(resource.KindTrustedCluster, leaf)); err != nil {
		return nil, err
	} else if ok {
		return refuse(errorf(ErrBadRequest, "cluster %q is this cluster's root; a cluster cannot be both root and leaf of another", leaf))
	}
	alreadyJoined := func() (*trust.ValidateResponse, error) {
		return refuse(errorf(ErrAlreadyExists, "cluster %q has already joined %s; a cluster name joins once. If this is the same cluster joining again (for example with new CAs), a root admin must first remove it on the root: tetherctl rm rc/%s",
			leaf, s.cfg.ClusterName, leaf))
	}
	if ok, err := s.exists(ctx, resourceKey(resource.KindRemoteCluster, leaf)); err != nil {
		return nil, err
	} else if ok {
		return alreadyJoined()
	}
	leafHostCA.Metadata = resource.Metadata{Name: leaf}
	leafHostCA.Spec.ClusterName = leaf
	leafCAs := []*resource.CertAuthority{leafHostCA}
	if leafTLSCA != nil {
		if leafTLSCA.Spec.Type != resource.CATypeTLS || !resource.SameCluster(leafTLSCA.Spec.ClusterName, leaf) {
			return refuse(errorf(ErrBadRequest, "the leaf's tls CA is a %s CA of %q, not the tls CA of %q", leafTLSCA.Spec.Type, leafTLSCA.Spec.ClusterName, leaf))
		}
		leafTLSCA.Metadata = resource.Metadata{Name: leaf}
		leafTLSCA.Spec.ClusterName = leaf
		leafCAs = append(leafCAs, leafTLSCA)
	}
	if err := s.checkNewCAs(ctx, leafCAs...); err != nil {
		return refuse(errorf(ErrBadRequest, "the leaf's CAs: %v", err))
	}
	rc := &resource.RemoteCluster{
		Kind: resource.KindRemoteCluster, Version: "v3",
		Metadata: resource.Metadata{Name: leaf, Labels: info.Labels},
		Status:   resource.RemoteClusterStatus{Connection: resource.ConnectionOffline},
	}
	data, err := resource.Marshal(rc)
	if err != nil {
		return nil, err
	}
	// Creating the remote_cluster claims the name, atomically across replicas sharing
	// the store; the CA is stored only by the caller that won the claim.
	if _, err := s.cfg.Store.Create(ctx, state.Item{Key: resourceKey(resource.KindRemoteCluster, leaf), Value: data}); err != nil {
		if errors.Is(err, state.ErrAlreadyExists) {
			return alreadyJoined()
		}
		return nil, fmt.Errorf("creating remote cluster %q: %w", leaf, err)
	}
	for _, c := range leafCAs {
		if err := s.put(ctx, caKey(leaf, c.Spec.Type), c); err != nil {
			if derr := s.deleteCAs(ctx, leaf); derr != nil {
				s.log.Error("a failed join left CAs behind", "leaf", leaf, "err", derr)
			}
			if derr := s.cfg.Store.Delete(ctx, resourceKey(resource.KindRemoteCluster, leaf)); derr != nil {
				s.log.Error("a failed join left a remote_cluster without a CA; remove it with tetherctl rm rc/"+leaf, "err", derr)
			}
			return nil, err
		}
	}
	s.log.Info("leaf cluster joined", "leaf", leaf, "remote", remote, "token", info.Display(), "labels", info.Labels)
	s.Audit(ctx, AuditEvent{Type: AuditTrustJoin, Fields: map[string]any{"leaf": leaf, "remote": remote, "token_prefix": info.Display()}})
	if err := s.rebuildAfter(ctx); err != nil {
		return nil, err
	}
	resp := &trust.ValidateResponse{}
	for _, a := range []interface {
		Resource(bool) (*resource.CertAuthority, error)
	}{s.cfg.CA.Host, s.cfg.CA.User, s.cfg.CA.TLS} {
		r, err := a.Resource(false)
		if err != nil {
			return nil, err
		}
		resp.CAs = append(resp.CAs, trust.FromResource(r))
	}
	return resp, nil
}
