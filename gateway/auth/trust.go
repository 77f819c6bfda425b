package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tetherproject/tether/gateway/trust"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/state"
)

// upsertTrustedCluster is `tetherctl create [--force] trusted_cluster.yaml` on a leaf.
// A new, enabled trust runs the handshake with the root before anything is stored; an
// existing one may change only role_map and enabled; enabling a trust whose root CAs are
// already stored needs no token.
func (s *Service) upsertTrustedCluster(ctx context.Context, tc *resource.TrustedCluster, existed bool) error {
	name := tc.Metadata.Name
	if name == s.cfg.ClusterName {
		return errorf(ErrBadRequest, "trusted_cluster %q has this cluster's own name; name it after the root cluster", name)
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
	if existed {
		old, err := s.get(ctx, resourceKey(resource.KindTrustedCluster, name))
		if err != nil {
			return err
		}
		prev := old.(*resource.TrustedCluster)
		if tc.Spec.Token == SecretMask {
			tc.Spec.Token = prev.Spec.Token
		}
		var changed []string
		if !secretEqual(tc.Spec.Token, prev.Spec.Token) {
			changed = append(changed, "token")
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
	haveCAs, err := s.hasCAs(ctx, name)
	if err != nil {
		return err
	}
	if tc.Spec.Enabled && !haveCAs {
		if err := s.establishTrust(ctx, tc); err != nil {
			return err
		}
	}
	if err := s.put(ctx, resourceKey(resource.KindTrustedCluster, name), tc); err != nil {
		return err
	}
	s.log.Info("trusted cluster stored", "root", name, "enabled", tc.Spec.Enabled)
	return nil
}

func (s *Service) hasCAs(ctx context.Context, cluster string) (bool, error) {
	items, err := s.cfg.Store.List(ctx, resourcesPrefix+resource.KindCertAuthority+"/"+cluster+"/")
	if err != nil {
		return false, err
	}
	return len(items) > 0, nil
}

// establishTrust sends this cluster's host CA and the token to the root and stores the
// root's host and user CAs.
func (s *Service) establishTrust(ctx context.Context, tc *resource.TrustedCluster) error {
	host, err := s.cfg.CA.Host.Resource(false)
	if err != nil {
		return err
	}
	req := trust.ValidateRequest{Token: tc.Spec.Token, CAs: []trust.CA{trust.FromResource(host)}}
	s.log.Info("establishing trust with root", "root", tc.Metadata.Name, "web_proxy_addr", tc.Spec.WebProxyAddr)
	cas, err := s.cfg.Trust.Validate(ctx, tc.Spec.WebProxyAddr, tc.Metadata.Name, req)
	if err != nil {
		s.log.Warn("trust with root not established", "root", tc.Metadata.Name, "err", err)
		if errors.Is(err, trust.ErrTokenRejected) {
			return errorf(ErrBadRequest, "the root %s answered: %v; ask its admin for a new token (tetherctl tokens add --type=trusted_cluster)", tc.Metadata.Name, err)
		}
		return errorf(ErrBadRequest, "establishing trust with %s: %v", tc.Metadata.Name, err)
	}
	for _, c := range cas {
		if err := s.put(ctx, caKey(c.Spec.ClusterName, c.Spec.Type), c); err != nil {
			return err
		}
	}
	s.log.Info("trust with root established", "root", tc.Metadata.Name)
	return nil
}

// ValidateTrustedCluster is the root's side of the handshake: check the token (multi-use
// until it expires), refuse a leaf with this cluster's name, store the leaf's host CA,
// create the remote_cluster (offline, no labels; an existing one, labels included, is left
// alone) and answer with this cluster's host and user CAs.
func (s *Service) ValidateTrustedCluster(ctx context.Context, token string, leafHostCA *resource.CertAuthority) (*trust.ValidateResponse, error) {
	ok, err := s.checkToken(ctx, token, resource.TokenRoleTrustedCluster)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrTokenRejected
	}
	leaf := leafHostCA.Spec.ClusterName
	if leaf == s.cfg.ClusterName {
		return nil, errorf(ErrBadRequest, "the leaf cluster is named %q like this root; every cluster needs its own cluster_name", leaf)
	}
	if ok, err := s.exists(ctx, resourceKey(resource.KindTrustedCluster, leaf)); err != nil {
		return nil, err
	} else if ok {
		return nil, errorf(ErrBadRequest, "cluster %q is this cluster's root; a cluster cannot be both root and leaf of another", leaf)
	}
	s.trustMu.Lock()
	defer s.trustMu.Unlock()
	leafHostCA.Metadata.Labels = nil
	if err := s.put(ctx, caKey(leaf, resource.CATypeHost), leafHostCA); err != nil {
		return nil, err
	}
	rc := &resource.RemoteCluster{
		Kind: resource.KindRemoteCluster, Version: "v3",
		Metadata: resource.Metadata{Name: leaf},
		Status:   resource.RemoteClusterStatus{Connection: resource.ConnectionOffline},
	}
	data, err := resource.Marshal(rc)
	if err != nil {
		return nil, err
	}
	if _, err := s.cfg.Store.Create(ctx, state.Item{Key: resourceKey(resource.KindRemoteCluster, leaf), Value: data}); err != nil && !errors.Is(err, state.ErrAlreadyExists) {
		return nil, fmt.Errorf("creating remote cluster %q: %w", leaf, err)
	}
	s.log.Info("leaf cluster joined", "leaf", leaf)
	if err := s.rebuildAfter(ctx); err != nil {
		return nil, err
	}
	resp := &trust.ValidateResponse{}
	for _, a := range []interface {
		Resource(bool) (*resource.CertAuthority, error)
	}{s.cfg.CA.Host, s.cfg.CA.User} {
		r, err := a.Resource(false)
		if err != nil {
			return nil, err
		}
		resp.CAs = append(resp.CAs, trust.FromResource(r))
	}
	return resp, nil
}
