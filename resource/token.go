package resource

import "strings"

// Token is a join token. Its metadata.name is the token's value, a secret; metadata.expires
// is its TTL.
type Token struct {
	Kind     string    `yaml:"kind"`
	Version  string    `yaml:"version"`
	Metadata Metadata  `yaml:"metadata"`
	Spec     TokenSpec `yaml:"spec"`
}

// TokenSpec says what a token may be used for.
type TokenSpec struct {
	// Roles are what the token lets its holder join as: TokenRoleTrustedCluster, TokenRoleNode.
	Roles []string `yaml:"roles"`
	// JoinMethod is "token" or empty (the same thing); other Teleport join methods are not
	// supported.
	JoinMethod string `yaml:"join_method,omitempty"`
}

// Token roles.
const (
	TokenRoleTrustedCluster = "trusted_cluster"
	TokenRoleNode           = "node"
)

// JoinMethodToken is the only join method Tether supports.
const JoinMethodToken = "token"

// GetKind returns "token".
func (t *Token) GetKind() string { return KindToken }

// GetVersion returns the document's version.
func (t *Token) GetVersion() string { return t.Version }

// GetMetadata returns the token's metadata.
func (t *Token) GetMetadata() *Metadata { return &t.Metadata }

// Validate checks that the token has at least one role and that each is trusted_cluster or
// node, in any case as Teleport accepts ("Trusted_cluster"); it lowercases them in place.
func (t *Token) Validate() error {
	if err := checkHeader(KindToken, t.Kind, t.Version, &t.Metadata); err != nil {
		return err
	}
	res := describe(KindToken, t.Metadata.Name)
	if len(t.Spec.Roles) == 0 {
		return fieldErr(res, path{"spec", "roles"}, "required: trusted_cluster or node")
	}
	for i, r := range t.Spec.Roles {
		switch lr := strings.ToLower(r); lr {
		case TokenRoleTrustedCluster, TokenRoleNode:
			t.Spec.Roles[i] = lr
		default:
			return fieldErr(res, path{"spec", "roles", i}, "unsupported token role %q: use trusted_cluster or node", r)
		}
	}
	switch t.Spec.JoinMethod {
	case "", JoinMethodToken:
		return nil
	}
	return fieldErr(res, path{"spec", "join_method"}, "unsupported join method %q: Tether only supports token", t.Spec.JoinMethod)
}
