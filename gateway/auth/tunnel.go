package auth

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/state"
)

// What the reverse tunnel (package gateway/tunnel) needs from the auth service: the TLS
// CAs stored at trust time, the trusts a leaf keeps tunnels for, registered node names,
// and remote_cluster status from the root replicas' tunnel heartbeats.
//
// Tunnel heartbeats live under the state store's live prefix as heartbeats of kind
// state.HeartbeatCluster named "<leaf>@<replica>", one per root replica holding a tunnel
// of the leaf, so replicas sharing Redis do not overwrite one another. Each holds the
// tunnel's carrier and "online until" (last heartbeat + keep-alive interval × count); a
// closed tunnel is written once more as offline. The records themselves live a day so
// `get rc` still shows when an offline leaf was last heard from.

// TunnelRecordTTL is how long a tunnel heartbeat record is kept after its last write.
const TunnelRecordTTL = 24 * time.Hour

// TunnelRecord is one root replica's account of a leaf's tunnel.
type TunnelRecord struct {
	Replica       string    `json:"replica"`
	Transport     string    `json:"transport,omitempty"`
	RemoteAddr    string    `json:"remote_addr,omitempty"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
	// OnlineUntil is when the leaf counts as offline unless heard from again.
	OnlineUntil time.Time `json:"online_until"`
	// Closed: the tunnel ended (the leaf is offline on this replica now).
	Closed bool `json:"closed,omitempty"`
}

// RecordTunnel writes a root replica's account of a leaf's tunnel. It writes nothing for
// a leaf that has no remote_cluster (removed meanwhile), so a removal is not undone.
func (s *Service) RecordTunnel(ctx context.Context, leaf string, rec TunnelRecord) error {
	if ok, err := s.exists(ctx, resourceKey(resource.KindRemoteCluster, leaf)); err != nil || !ok {
		return err
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = state.PutHeartbeat(ctx, s.cfg.Store, state.HeartbeatCluster, leaf+"@"+rec.Replica, TunnelRecordTTL, data)
	return err
}

// tunnelRecords reads every tunnel record, by leaf.
func (s *Service) tunnelRecords(ctx context.Context) (map[string][]TunnelRecord, error) {
	hbs, err := state.ListHeartbeats(ctx, s.cfg.Store, state.HeartbeatCluster)
	if err != nil {
		return nil, err
	}
	out := map[string][]TunnelRecord{}
	for _, hb := range hbs {
		leaf, _, ok := strings.Cut(hb.Name, "@")
		if !ok {
			continue
		}
		var rec TunnelRecord
		if err := json.Unmarshal(hb.Data, &rec); err != nil {
			continue
		}
		out[leaf] = append(out[leaf], rec)
	}
	return out, nil
}

// remoteClusters lists the remote_cluster resources with their status filled from the
// tunnel records: what every reader of a leaf's status (get rc, status, the user's cluster
// list) sees.
func (s *Service) remoteClusters(ctx context.Context) ([]resource.Resource, error) {
	rcs, err := s.list(ctx, resourcesPrefix+resource.KindRemoteCluster+"/")
	if err != nil {
		return nil, err
	}
	if err := s.fillRemoteClusterStatus(ctx, rcs); err != nil {
		return nil, err
	}
	return rcs, nil
}

// fillRemoteClusterStatus sets the status of remote_cluster resources from the tunnel
// records: online while a replica holds an open tunnel heard from within its keep-alive
// interval × count, with that tunnel's carrier (QUIC preferred when several replicas
// hold one); offline otherwise. last_heartbeat is the latest of all replicas.
func (s *Service) fillRemoteClusterStatus(ctx context.Context, rs []resource.Resource) error {
	recs, err := s.tunnelRecords(ctx)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	for _, r := range rs {
		rc, ok := r.(*resource.RemoteCluster)
		if !ok {
			continue
		}
		rc.Status = resource.RemoteClusterStatus{Connection: resource.ConnectionOffline}
		for _, rec := range recs[rc.Metadata.Name] {
			if rec.LastHeartbeat.After(rc.Status.LastHeartbeat) {
				rc.Status.LastHeartbeat = rec.LastHeartbeat
			}
			if rec.Closed || !now.Before(rec.OnlineUntil) {
				continue
			}
			rc.Status.Connection = resource.ConnectionOnline
			if rc.Status.Transport == "" || rec.Transport == "quic" {
				rc.Status.Transport = rec.Transport
			}
		}
	}
	return nil
}

// RemoteClusterTLSPool is the pool a leaf's tunnel certificate must verify against: the
// TLS CA the leaf sent at trust time. Nil (refused) when no remote_cluster of that name
// exists or it joined without a TLS CA.
func (s *Service) RemoteClusterTLSPool(ctx context.Context, leaf string) (*x509.CertPool, error) {
	if resource.CheckClusterName(leaf) != nil || resource.NormalizeClusterName(leaf) != leaf || leaf == s.cfg.ClusterName {
		return nil, nil
	}
	if ok, err := s.exists(ctx, resourceKey(resource.KindRemoteCluster, leaf)); err != nil || !ok {
		return nil, err
	}
	return s.tlsPool(ctx, leaf)
}

// tlsPool is the pool of the stored TLS CA of another cluster, nil when none is stored.
func (s *Service) tlsPool(ctx context.Context, cluster string) (*x509.CertPool, error) {
	r, err := s.get(ctx, caKey(cluster, resource.CATypeTLS))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c, ok := r.(*resource.CertAuthority)
	if !ok || c.Spec.Type != resource.CATypeTLS || c.Spec.ClusterName != cluster {
		return nil, fmt.Errorf("stored tls CA of %s is malformed", cluster)
	}
	pool := x509.NewCertPool()
	n := 0
	for _, set := range []resource.CAKeySet{c.Spec.ActiveKeys, c.Spec.AdditionalTrustedKeys} {
		for _, k := range set.TLS {
			b, _ := pem.Decode([]byte(k.Cert))
			if b == nil {
				continue
			}
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil || !cert.IsCA {
				continue
			}
			pool.AddCert(cert)
			n++
		}
	}
	if n == 0 {
		return nil, nil
	}
	return pool, nil
}

// RemoteClusterNames lists the leaves that have a remote_cluster on this root.
func (s *Service) RemoteClusterNames(ctx context.Context) (map[string]bool, error) {
	items, err := s.cfg.Store.List(ctx, resourcesPrefix+resource.KindRemoteCluster+"/")
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(items))
	for _, it := range items {
		out[strings.TrimPrefix(it.Key, resourcesPrefix+resource.KindRemoteCluster+"/")] = true
	}
	return out, nil
}

// TrustedRoot is a trust as the leaf's tunnel agent needs it.
type TrustedRoot struct {
	Name       string
	Enabled    bool
	TunnelAddr string
	// Pool is the root's TLS CA stored at trust time; nil when the root sent none.
	Pool *x509.CertPool
	// CAFingerprint changes when the stored TLS CA changes (a new trust).
	CAFingerprint string
}

// TrustedRoots lists this leaf's trusted clusters with the roots' stored TLS CAs.
func (s *Service) TrustedRoots(ctx context.Context) ([]TrustedRoot, error) {
	rs, err := s.list(ctx, resourcesPrefix+resource.KindTrustedCluster+"/")
	if err != nil {
		return nil, err
	}
	var out []TrustedRoot
	for _, r := range rs {
		tc := r.(*resource.TrustedCluster)
		tr := TrustedRoot{Name: tc.Metadata.Name, Enabled: tc.Spec.Enabled, TunnelAddr: tc.Spec.TunnelAddr}
		it, err := s.cfg.Store.Get(ctx, caKey(tc.Metadata.Name, resource.CATypeTLS))
		switch {
		case errors.Is(err, state.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			tr.CAFingerprint = fmt.Sprintf("%d:%x", it.Revision, len(it.Value))
			if tr.Pool, err = s.tlsPool(ctx, tc.Metadata.Name); err != nil {
				return nil, err
			}
		}
		out = append(out, tr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// NodeRegistered reports whether name is a registered node resource of this cluster:
// the only targets a tunnel dial may reach (DESIGN §5.1).
func (s *Service) NodeRegistered(ctx context.Context, name string) (bool, error) {
	if name == "" || strings.ContainsAny(name, "/") {
		return false, nil
	}
	return s.exists(ctx, resourceKey(resource.KindNode, name))
}

// TunnelStatus is a leaf's tunnel to one root replica, for `tetherctl status`.
type TunnelStatus struct {
	Root      string `json:"root"`
	Endpoint  string `json:"endpoint"`
	Replica   string `json:"replica,omitempty"`
	State     string `json:"state"`
	Transport string `json:"transport,omitempty"`
	// SessionsOverSSH: user sessions ride an SSH tunnel opened beside the QUIC one
	// (proxy.tunnel_bulk_ssh) while the leaf carries sessions; SessionsIdle: that option
	// is on and the tunnel is closed for now (the next session opens it); SessionsError
	// is why its last attempt failed, if it did.
	SessionsOverSSH bool      `json:"sessions_over_ssh,omitempty"`
	SessionsIdle    bool      `json:"sessions_ssh_idle,omitempty"`
	SessionsError   string    `json:"sessions_ssh_error,omitempty"`
	Since           time.Time `json:"since"`
	LastError       string    `json:"last_error,omitempty"`
}

// SetTunnelStatus installs the function Status asks for the leaf's tunnels.
func (s *Service) SetTunnelStatus(f func() []TunnelStatus) { s.tunnelStatus.Store(&f) }

func (s *Service) tunnels() []TunnelStatus {
	f := s.tunnelStatus.Load()
	if f == nil || *f == nil {
		return nil
	}
	return (*f)()
}
