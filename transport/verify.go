package transport

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// PinnedClusters verifies a leaf's client certificate chain against the X.509 CA stored
// for the very cluster name the certificate claims: a certificate for leaf B issued by
// leaf A's CA fails, as does one from an unknown CA, an expired one, or one without
// client authentication in its key usage. Its Verify method fits
// ServerConfig.VerifyLeaf.
type PinnedClusters struct {
	// Pool returns the CA pool stored for a cluster at trust time, or nil for a name
	// with no trust (refused).
	Pool func(cluster string) *x509.CertPool
	// Name reads the cluster a certificate claims (default ClusterName).
	Name func(*x509.Certificate) (string, error)
	// Now is the verification time (default time.Now).
	Now func() time.Time
}

// Verify returns the cluster the chain proves.
func (p PinnedClusters) Verify(chain []*x509.Certificate) (string, error) {
	if len(chain) == 0 {
		return "", errors.New("no client certificate")
	}
	name := p.Name
	if name == nil {
		name = ClusterName
	}
	cluster, err := name(chain[0])
	if err != nil {
		return "", err
	}
	pool := p.Pool(cluster)
	if pool == nil {
		return "", fmt.Errorf("no trusted cluster %q", cluster)
	}
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "", fmt.Errorf("certificate for cluster %q: %w", cluster, err)
	}
	return cluster, nil
}

// ClusterName reads the cluster a certificate names: exactly one URI SAN of the form
// tether://cluster/NAME (the form ca.ClusterURI writes).
func ClusterName(c *x509.Certificate) (string, error) {
	var name string
	for _, u := range c.URIs {
		if u.Scheme != "tether" || u.Host != "cluster" {
			continue
		}
		if name != "" {
			return "", errors.New("certificate names more than one cluster")
		}
		if len(u.Path) < 2 || u.Path[0] != '/' || u.RawQuery != "" || u.Fragment != "" {
			return "", fmt.Errorf("malformed cluster URI %q", u.String())
		}
		name = u.Path[1:]
	}
	if name == "" {
		return "", errors.New("certificate names no cluster (no tether://cluster/NAME URI)")
	}
	return name, nil
}
