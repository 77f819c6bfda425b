package ca

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/tetherproject/tether/resource"
)

// Cluster is a cluster's three certificate authorities.
type Cluster struct {
	Name string
	User *Authority // signs user certificates
	Host *Authority // signs host certificates for gateways and nodes
	TLS  *Authority // signs X.509 certificates for the tunnel's mutual TLS
}

// NewCluster generates the three authorities of cluster name with keys of algorithm alg
// ("" means Ed25519).
func NewCluster(name string, alg Algorithm) (*Cluster, error) {
	c := &Cluster{Name: name}
	for _, p := range []struct {
		typ Type
		a   **Authority
	}{{UserCA, &c.User}, {HostCA, &c.Host}, {TLSCA, &c.TLS}} {
		a, err := NewAuthority(name, p.typ, alg)
		if err != nil {
			return nil, err
		}
		*p.a = a
	}
	return c, nil
}

// Authorities lists the user, host and TLS authorities, in that order.
func (c *Cluster) Authorities() []*Authority { return []*Authority{c.User, c.Host, c.TLS} }

// Save writes each authority to a subdirectory of dir named after its type (user, host,
// tls); dir is created with mode 0700.
func (c *Cluster) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("saving the certificate authorities of %s: %w", c.Name, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("saving the certificate authorities of %s: %w", c.Name, err)
	}
	for _, a := range c.Authorities() {
		if err := a.Save(filepath.Join(dir, string(a.Type()))); err != nil {
			return err
		}
	}
	return nil
}

// LoadCluster reads the authorities Cluster.Save wrote to dir. All three must be there
// and belong to the same cluster.
func LoadCluster(dir string) (*Cluster, error) {
	c := &Cluster{}
	for _, p := range []struct {
		typ Type
		a   **Authority
	}{{UserCA, &c.User}, {HostCA, &c.Host}, {TLSCA, &c.TLS}} {
		a, err := LoadAuthority(filepath.Join(dir, string(p.typ)))
		if err != nil {
			return nil, err
		}
		if a.Type() != p.typ {
			return nil, fmt.Errorf("loading the certificate authorities in %s: %s/ holds a %s CA", dir, p.typ, a.Type())
		}
		if c.Name == "" {
			c.Name = a.Cluster()
		}
		if a.Cluster() != c.Name {
			return nil, fmt.Errorf("loading the certificate authorities in %s: the %s CA belongs to %s, the user CA to %s", dir, p.typ, a.Cluster(), c.Name)
		}
		*p.a = a
	}
	return c, nil
}

// LoadOrCreateCluster loads the authorities in dir, or, when dir holds none yet (first
// start), creates them for cluster name with algorithm alg and saves them there. Loaded
// authorities must belong to name.
func LoadOrCreateCluster(dir, name string, alg Algorithm) (c *Cluster, created bool, err error) {
	c, err = LoadCluster(dir)
	switch {
	case err == nil:
		if c.Name != name {
			return nil, false, fmt.Errorf("the certificate authorities in %s belong to cluster %s, not %s; use another data directory or the right cluster name", dir, c.Name, name)
		}
		return c, false, nil
	case !isNotExist(err):
		return nil, false, err
	}
	for _, t := range []Type{UserCA, HostCA, TLSCA} {
		// Only a wholly empty store may be created; a partial one is an operator's to fix.
		if _, statErr := os.Stat(filepath.Join(dir, string(t), metaFile)); statErr == nil {
			return nil, false, err
		}
	}
	if c, err = NewCluster(name, alg); err != nil {
		return nil, false, err
	}
	if err := c.Save(dir); err != nil {
		return nil, false, err
	}
	return c, true, nil
}

// Resources exports the three authorities as cert_authority resources (see
// Authority.Resource).
func (c *Cluster) Resources(withSecrets bool) ([]*resource.CertAuthority, error) {
	var out []*resource.CertAuthority
	for _, a := range c.Authorities() {
		r, err := a.Resource(withSecrets)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
