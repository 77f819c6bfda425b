package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/state"
)

// Status is the cluster as `tetherctl status` shows it.
type Status struct {
	ClusterName string     `json:"cluster_name"`
	CAs         []CAStatus `json:"cas"`
	// Storage is the store's kind: embedded or redis.
	Storage        string              `json:"storage"`
	RemoteClusters RemoteClusterCounts `json:"remote_clusters"`
	// Tunnels are this cluster's tunnels to its roots, one per root replica (a leaf).
	Tunnels []TunnelStatus `json:"tunnels,omitempty"`
}

// CAStatus is one of the cluster's certificate authorities.
type CAStatus struct {
	// Type is user, host, tls or openssh.
	Type string `json:"type"`
	// Phase is the rotation phase (standby when no rotation is under way).
	Phase string `json:"phase"`
	// Fingerprints name the trusted keys, the signing key first: SSH fingerprints
	// (SHA256:...) for the SSH CAs; for the TLS CA, Teleport's CA pin form, sha256: and
	// the hex SHA-256 of the certificate's public key info.
	Fingerprints []string `json:"fingerprints"`
}

// RemoteClusterCounts counts the leaves joined to this cluster by connection state.
type RemoteClusterCounts struct {
	Online  int `json:"online"`
	Offline int `json:"offline"`
}

// Status reports the cluster's name, CAs, storage and remote clusters.
func (s *Service) Status(ctx context.Context) (Status, error) {
	st := Status{ClusterName: s.cfg.ClusterName, Storage: storageKind(s.cfg.Store)}
	for _, a := range s.cfg.CA.Authorities() {
		st.CAs = append(st.CAs, caStatus(a))
	}
	rcs, err := s.remoteClusters(ctx)
	if err != nil {
		return Status{}, err
	}
	st.Tunnels = s.tunnels()
	for _, r := range rcs {
		if r.(*resource.RemoteCluster).Status.Connection == resource.ConnectionOnline {
			st.RemoteClusters.Online++
		} else {
			st.RemoteClusters.Offline++
		}
	}
	return st, nil
}

func caStatus(a *ca.Authority) CAStatus {
	c := CAStatus{Type: string(a.Type()), Phase: string(a.Phase())}
	if c.Phase == "" {
		c.Phase = string(ca.Standby)
	}
	for _, k := range a.TrustedKeys() {
		c.Fingerprints = append(c.Fingerprints, k.Fingerprint())
	}
	for _, cert := range a.CACerts() {
		c.Fingerprints = append(c.Fingerprints, TLSCAPin(cert.RawSubjectPublicKeyInfo))
	}
	return c
}

// TLSCAPin is a TLS CA's pin as Teleport writes it: "sha256:" and the hex SHA-256 of the
// certificate's DER SubjectPublicKeyInfo.
func TLSCAPin(spki []byte) string {
	sum := sha256.Sum256(spki)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func storageKind(st state.Store) string {
	switch st.(type) {
	case *state.Redis:
		return "redis"
	case *state.Embedded:
		return "embedded"
	}
	return "other"
}
