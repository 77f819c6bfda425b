package resource

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Resource kinds, as written in a document's kind field.
const (
	KindRole           = "role"
	KindUser           = "user"
	KindTrustedCluster = "trusted_cluster"
	KindRemoteCluster  = "remote_cluster"
	KindToken          = "token"
	KindCertAuthority  = "cert_authority"
	KindNode           = "node"
	KindLock           = "lock"
	KindOIDC           = "oidc"
)

// Resource is one decoded document of any kind. The concrete types are pointers: *Role,
// *User, *TrustedCluster, *RemoteCluster, *Token, *CertAuthority, *Node, *Lock and
// *OIDCConnector.
type Resource interface {
	// GetKind returns the document's kind, for example "role".
	GetKind() string
	// GetVersion returns the document's version, for example "v5".
	GetVersion() string
	// GetMetadata returns the document's metadata; changes through it change the resource.
	GetMetadata() *Metadata
	// Validate checks the resource's rules and returns a *FieldError naming the first
	// field that breaks one. An empty Kind or Version is taken to be this type's kind and
	// default version. Token.Validate also lowercases the token's roles.
	Validate() error
}

// Metadata is the metadata block every resource has.
type Metadata struct {
	// Name identifies the resource within its kind. For a token it is the token's value.
	Name string `yaml:"name"`
	// Description is free text for humans.
	Description string `yaml:"description,omitempty"`
	// Labels are the resource's own labels, matched by role label selectors
	// (node labels, remote cluster labels).
	Labels map[string]string `yaml:"labels,omitempty"`
	// Expires, when set, is the instant after which the resource no longer applies.
	Expires *time.Time `yaml:"expires,omitempty"`
}

// Duration is a time.Duration written in YAML as a Go duration string ("8h", "30h0m0s",
// "90m"). A bare 0 is accepted; other bare numbers are rejected because it is not clear
// whether they mean seconds or, as in Teleport, nanoseconds.
type Duration time.Duration

// String returns the duration in Go's notation, for example "8h0m0s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes the duration as a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// kindInfo describes one resource kind: the versions Parse accepts and how to make an empty
// value of its Go type.
type kindInfo struct {
	kind     string
	versions []string // versions[0] is the default
	new      func() Resource
}

var kinds = []kindInfo{
	{KindRole, []string{"v5", "v6", "v7"}, func() Resource { return new(Role) }},
	{KindUser, []string{"v2"}, func() Resource { return new(User) }},
	{KindTrustedCluster, []string{"v2"}, func() Resource { return new(TrustedCluster) }},
	{KindRemoteCluster, []string{"v3"}, func() Resource { return new(RemoteCluster) }},
	{KindToken, []string{"v2"}, func() Resource { return new(Token) }},
	{KindCertAuthority, []string{"v2"}, func() Resource { return new(CertAuthority) }},
	{KindNode, []string{"v2"}, func() Resource { return new(Node) }},
	{KindLock, []string{"v2"}, func() Resource { return new(Lock) }},
	{KindOIDC, []string{"v2"}, func() Resource { return new(OIDCConnector) }},
}

func lookupKind(kind string) (kindInfo, bool) {
	for _, k := range kinds {
		if k.kind == kind {
			return k, true
		}
	}
	return kindInfo{}, false
}

func kindNames() string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.kind
	}
	return strings.Join(names, ", ")
}

// kindOfType maps a concrete Go type (a pointer) to its kind.
func kindOfType(r Resource) (kindInfo, bool) {
	t := reflect.TypeOf(r)
	for _, k := range kinds {
		if reflect.TypeOf(k.new()) == t {
			return k, true
		}
	}
	return kindInfo{}, false
}

// describe names a resource in messages: `role "visitor"`. Tokens are named by kind only
// because a token's name is its secret value.
func describe(kind, name string) string {
	if kind == KindToken || name == "" {
		return kind
	}
	return fmt.Sprintf("%s %q", kind, name)
}

// checkHeader validates the kind, version and metadata shared by every resource.
func checkHeader(want, kind, version string, md *Metadata) error {
	info, _ := lookupKind(want)
	res := describe(want, md.Name)
	if kind != "" && kind != want {
		return fieldErr(res, path{"kind"}, "is %q, want %q", kind, want)
	}
	if version != "" && !slices.Contains(info.versions, version) {
		return fieldErr(res, path{"version"}, "unsupported version %q for %s (supported: %s)",
			version, want, strings.Join(info.versions, ", "))
	}
	return validateMetadata(res, md)
}
