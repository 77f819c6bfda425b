package resource

// CertAuthority is one cluster's certificate authority of one type. On a leaf it also records
// the trusted root's CAs.
type CertAuthority struct {
	Kind     string            `yaml:"kind"`
	Version  string            `yaml:"version"`
	Metadata Metadata          `yaml:"metadata"`
	Spec     CertAuthoritySpec `yaml:"spec"`
}

// CertAuthoritySpec holds a CA's keys.
type CertAuthoritySpec struct {
	// Type is CATypeUser, CATypeHost, CATypeTLS or CATypeOpenSSH.
	Type string `yaml:"type"`
	// ClusterName is the cluster the CA belongs to.
	ClusterName string `yaml:"cluster_name"`
	// ActiveKeys sign new certificates (when the private keys are present) and verify.
	ActiveKeys CAKeySet `yaml:"active_keys,omitempty"`
	// AdditionalTrustedKeys only verify, for example during a rotation.
	AdditionalTrustedKeys CAKeySet `yaml:"additional_trusted_keys,omitempty"`
}

// CA types.
const (
	CATypeUser = "user"
	CATypeHost = "host"
	CATypeTLS  = "tls"
	// CATypeOpenSSH signs only the certificates a cluster's enforcement point issues for
	// one connection to a node; nodes trust it instead of the user CA. It is local to its
	// cluster: a cert_authority of this type is never another cluster's.
	CATypeOpenSSH = "openssh"
)

// CAKeySet is a CA's SSH and TLS keys.
type CAKeySet struct {
	SSH []SSHKeyPair `yaml:"ssh,omitempty"`
	TLS []TLSKeyPair `yaml:"tls,omitempty"`
}

// SSHKeyPair is an SSH CA key: the public key in authorized_keys format and, on the cluster
// that owns it, the private key in PEM.
type SSHKeyPair struct {
	PublicKey  string `yaml:"public_key"`
	PrivateKey string `yaml:"private_key,omitempty"`
}

// TLSKeyPair is an X.509 CA: the certificate in PEM and, on the owning cluster, the key.
type TLSKeyPair struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key,omitempty"`
}

// GetKind returns "cert_authority".
func (c *CertAuthority) GetKind() string { return KindCertAuthority }

// GetVersion returns the document's version.
func (c *CertAuthority) GetVersion() string { return c.Version }

// GetMetadata returns the CA's metadata.
func (c *CertAuthority) GetMetadata() *Metadata { return &c.Metadata }

// Validate checks the type and cluster name (a DNS name, normalised in place) and that every key pair has its public half.
// It does not parse the keys.
func (c *CertAuthority) Validate() error {
	if err := checkHeader(KindCertAuthority, c.Kind, c.Version, &c.Metadata); err != nil {
		return err
	}
	res := describe(KindCertAuthority, c.Metadata.Name)
	switch c.Spec.Type {
	case CATypeUser, CATypeHost, CATypeTLS, CATypeOpenSSH:
	default:
		return fieldErr(res, path{"spec", "type"}, "must be user, host, tls or openssh, got %q", c.Spec.Type)
	}
	if isBlank(c.Spec.ClusterName) {
		return fieldErr(res, path{"spec", "cluster_name"}, "required")
	}
	if err := CheckClusterName(c.Spec.ClusterName); err != nil {
		return wrapFieldErr(res, path{"spec", "cluster_name"}, err)
	}
	c.Spec.ClusterName = NormalizeClusterName(c.Spec.ClusterName)
	if err := checkClusterMetadataName(res, &c.Metadata); err != nil {
		return err
	}
	for _, set := range []struct {
		name string
		keys *CAKeySet
	}{{"active_keys", &c.Spec.ActiveKeys}, {"additional_trusted_keys", &c.Spec.AdditionalTrustedKeys}} {
		for i, k := range set.keys.SSH {
			if isBlank(k.PublicKey) {
				return fieldErr(res, path{"spec", set.name, "ssh", i, "public_key"}, "required")
			}
		}
		for i, k := range set.keys.TLS {
			if isBlank(k.Cert) {
				return fieldErr(res, path{"spec", set.name, "tls", i, "cert"}, "required")
			}
		}
	}
	return nil
}
