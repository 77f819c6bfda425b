package resource

// OIDCConnector is a root cluster's OpenID Connect single sign-on connector (kind oidc).
type OIDCConnector struct {
	Kind     string   `yaml:"kind"`
	Version  string   `yaml:"version"`
	Metadata Metadata `yaml:"metadata"`
	Spec     OIDCSpec `yaml:"spec"`
}

// OIDCSpec is how to talk to the identity provider and which roles its claims give.
type OIDCSpec struct {
	// IssuerURL is the provider's https issuer URL.
	IssuerURL string `yaml:"issuer_url"`
	ClientID  string `yaml:"client_id"`
	// ClientSecret is a secret.
	ClientSecret string `yaml:"client_secret,omitempty"`
	// RedirectURL is this cluster's callback URL registered with the provider.
	RedirectURL   string         `yaml:"redirect_url"`
	ClaimsToRoles []ClaimMapping `yaml:"claims_to_roles,omitempty"`
}

// ClaimMapping grants Roles to users whose claim Claim has the value Value.
type ClaimMapping struct {
	Claim string   `yaml:"claim"`
	Value string   `yaml:"value"`
	Roles []string `yaml:"roles"`
}

// GetKind returns "oidc".
func (o *OIDCConnector) GetKind() string { return KindOIDC }

// GetVersion returns the document's version.
func (o *OIDCConnector) GetVersion() string { return o.Version }

// GetMetadata returns the connector's metadata.
func (o *OIDCConnector) GetMetadata() *Metadata { return &o.Metadata }

// Validate checks the URLs and client ID, and that every claim mapping names a claim and
// grants at least one non-empty role.
func (o *OIDCConnector) Validate() error {
	if err := checkHeader(KindOIDC, o.Kind, o.Version, &o.Metadata); err != nil {
		return err
	}
	res := describe(KindOIDC, o.Metadata.Name)
	if err := checkURL(o.Spec.IssuerURL, "https"); err != nil {
		return wrapFieldErr(res, path{"spec", "issuer_url"}, err)
	}
	if isBlank(o.Spec.ClientID) {
		return fieldErr(res, path{"spec", "client_id"}, "required")
	}
	if err := checkURL(o.Spec.RedirectURL, "https", "http"); err != nil {
		return wrapFieldErr(res, path{"spec", "redirect_url"}, err)
	}
	for i, m := range o.Spec.ClaimsToRoles {
		p := path{"spec", "claims_to_roles", i}
		if isBlank(m.Claim) {
			return fieldErr(res, p.with("claim"), "required")
		}
		if len(m.Roles) == 0 {
			return fieldErr(res, p.with("roles"), "required: the roles this claim grants")
		}
		for j, r := range m.Roles {
			if isBlank(r) {
				return fieldErr(res, p.with("roles", j), "role names must not be empty")
			}
		}
	}
	return nil
}
