package auth

import (
	"context"

	"github.com/tetherproject/tether/gateway/audit"
)

// Audit event types.
const (
	// AuditTrustJoin: a leaf joined this root (fields: leaf, remote).
	AuditTrustJoin = "trust.join"
	// AuditTrustJoinRefused: a validate call with a valid token was refused (fields:
	// leaf, reason, remote).
	AuditTrustJoinRefused = "trust.join.refused"
	// AuditTrustFailures: the summary of failed handshake attempts of one period
	// (fields: period, failures, by_reason, by_address).
	AuditTrustFailures = "trust.validate.failures"
	// AuditAdminAuthFailed: a call to the admin API without a valid admin identity
	// (fields: peer, reason, suppressed).
	AuditAdminAuthFailed = "admin.auth.failed"
	// AuditCARotate: an admin moved one of the cluster's CAs to a rotation phase (fields:
	// type, from, phase, signing: the signing key's fingerprint).
	AuditCARotate = "ca.rotate"
	// AuditTrustCAUpdate: a trusted cluster's CA this cluster keeps a copy of changed, as
	// that cluster sent it over its tunnel (a rotation there; fields: cluster, side, type,
	// keys).
	AuditTrustCAUpdate = "trust.ca.update"
)

// AuditEvent is one security-relevant event (audit.Event).
type AuditEvent = audit.Event

// Auditor receives audit events (audit.Auditor).
type Auditor = audit.Auditor

// LogAuditor writes each event as one slog record with audit=true (audit.Log).
type LogAuditor = audit.Log

// Audit records ev with the service's Auditor.
func (s *Service) Audit(ctx context.Context, ev AuditEvent) {
	s.cfg.Auditor.Audit(ctx, ev)
}
