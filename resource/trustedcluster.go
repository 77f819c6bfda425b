package resource

// TrustedCluster is created on a leaf cluster to trust a root cluster; its name is the root
// cluster's name.
type TrustedCluster struct {
	Kind     string             `yaml:"kind"`
	Version  string             `yaml:"version"`
	Metadata Metadata           `yaml:"metadata"`
	Spec     TrustedClusterSpec `yaml:"spec"`
}

// TrustedClusterSpec says how to reach the root cluster and how its roles map to local ones.
type TrustedClusterSpec struct {
	// Enabled turns the trust on; when false the root's CAs are set aside and the tunnel stops.
	Enabled bool `yaml:"enabled"`
	// Token is the invitation token issued by the root cluster. It is a secret.
	Token string `yaml:"token"`
	// TunnelAddr is the root's reverse tunnel address, host:port.
	TunnelAddr string `yaml:"tunnel_addr"`
	// WebProxyAddr is the root's web proxy address, host:port.
	WebProxyAddr string `yaml:"web_proxy_addr"`
	// RoleMap maps the root's roles onto this cluster's roles.
	RoleMap []RoleMapping `yaml:"role_map,omitempty"`
}

// GetKind returns "trusted_cluster".
func (t *TrustedCluster) GetKind() string { return KindTrustedCluster }

// GetVersion returns the document's version.
func (t *TrustedCluster) GetVersion() string { return t.Version }

// GetMetadata returns the trusted cluster's metadata.
func (t *TrustedCluster) GetMetadata() *Metadata { return &t.Metadata }

// Validate checks that the name is a cluster name (CheckClusterName; it is normalised in
// place), that both addresses are set and that the role_map passes ValidateRoleMap. Whether the mapped local roles exist is checked where roles are stored.
func (t *TrustedCluster) Validate() error {
	if err := checkHeader(KindTrustedCluster, t.Kind, t.Version, &t.Metadata); err != nil {
		return err
	}
	res := describe(KindTrustedCluster, t.Metadata.Name)
	if err := checkClusterMetadataName(res, &t.Metadata); err != nil {
		return err
	}
	// The token may be empty: a leaf drops it once the handshake succeeded. The auth
	// service requires one where a handshake has to run.
	if t.Spec.Token != "" && isBlank(t.Spec.Token) {
		return fieldErr(res, path{"spec", "token"}, "is blank: put the invitation token from the root cluster (tetherctl tokens add --type=trusted_cluster) here")
	}
	if err := checkHostPort(t.Spec.TunnelAddr); err != nil {
		return wrapFieldErr(res, path{"spec", "tunnel_addr"}, err)
	}
	if err := checkHostPort(t.Spec.WebProxyAddr); err != nil {
		return wrapFieldErr(res, path{"spec", "web_proxy_addr"}, err)
	}
	if err := ValidateRoleMap(t.Spec.RoleMap); err != nil {
		// The RoleMapError names role_map[i] itself; the path points the line at the rule.
		fe := wrapFieldErr(res, path{"spec"}, err)
		if rme, ok := err.(*RoleMapError); ok {
			fe.path = path{"spec", "role_map", rme.Index}
		}
		return fe
	}
	return nil
}
