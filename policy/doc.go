// Package policy is Tether's decision engine: it builds the input document, evaluates
// the Rego library of a loaded bundle in-process, caches decisions, and hands every
// decision to a logger.
//
// The public contract is one query, data.tether.authz.decision. Inside, Decide evaluates
// it in two stages: the identity of a certificate (trust, mapped roles, expanded role
// conditions) once per certificate and bundle revision, then the per-request access rules
// with that identity passed in as a value. Both stages call the same Rego functions the
// public query calls, and a differential test keeps the answers equal. A decision cache
// keyed by revision and the input without its time serves repeated requests until the
// decision's expires_at.
package policy
