// Package resource owns Tether's resource kinds and their YAML form: the Go types for role,
// user, trusted_cluster, remote_cluster, token, cert_authority, node, lock and oidc in
// Teleport's document shape, strict decoding with file/line/field errors, validation, role
// templates and the role_map rules of DESIGN §3a.
//
// Every document is {kind, version, metadata, spec | status}. Parse decodes a file of one or
// more such documents strictly: an unknown kind or version, an unknown field at any depth, a
// value of the wrong type, a duplicated key, input that is not UTF-8 or larger than MaxInputSize
// is an error that names the file, line, column, resource and field, for example
//
//	roles.yaml:7:3: role "visitor": unknown field "allwo" in spec (did you mean "allow"?)
//
// Parse is all or nothing: it returns every resource of the file, each already validated,
// or an error and no resources.
//
// Decoding normalises what YAML can spell several ways, so that Marshal followed by Parse gives
// back an equal value: an empty list or mapping is the same as an absent one (nil), a zero
// time is the same as no time (nil), times are kept in UTC, a label with one value is written
// as a plain string, and token roles are lowercased.
//
// The package knows nothing of storage, bundles or Rego. It parses templates and role_map
// patterns into the shapes the bundle builder needs (Template, CompileRoleMapRemote,
// ExpandLiteralLocal); expanding them against a user's traits and roles is the policy's job.
//
// Secrets are never put into error messages: a token's name is its value, so errors name
// tokens by line only, and the values of trusted_cluster tokens and OIDC client secrets are
// never echoed.
package resource
