package auth

import (
	"context"
	"log/slog"
	"sort"
	"time"
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
)

// AuditEvent is one security-relevant event.
type AuditEvent struct {
	// Type is one of the Audit* constants.
	Type string
	// Time is when it happened; zero means now.
	Time time.Time
	// Fields say what happened. Values are JSON-friendly; no secrets.
	Fields map[string]any
}

// Auditor receives audit events. Implementations must not block for long: they are called
// on request paths.
type Auditor interface {
	Audit(ctx context.Context, ev AuditEvent)
}

// LogAuditor writes each event as one structured log record with audit=true, the event
// type as event and the fields as attributes: with a JSON handler, one JSON line per event
// that a log shipper can select on "audit":true.
type LogAuditor struct {
	Logger *slog.Logger
}

// Audit writes ev.
func (a LogAuditor) Audit(ctx context.Context, ev AuditEvent) {
	l := a.Logger
	if l == nil {
		l = slog.Default()
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	attrs := []slog.Attr{slog.Bool("audit", true), slog.String("event", ev.Type), slog.Time("event_time", ev.Time.UTC())}
	keys := make([]string, 0, len(ev.Fields))
	for k := range ev.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, ev.Fields[k]))
	}
	l.LogAttrs(ctx, slog.LevelInfo, "audit event", attrs...)
}

// Audit records ev with the service's Auditor.
func (s *Service) Audit(ctx context.Context, ev AuditEvent) {
	s.cfg.Auditor.Audit(ctx, ev)
}
