package audit

import (
	"context"
	"log/slog"
	"sort"
	"time"

	"github.com/tetherproject/tether/policy/decisionlog"
)

// Event types beyond those gateway/auth declares next to their sources (user.login,
// user.login.failed, cert.issued, trust.join, node.join, ...). docs/AUDIT.md lists all.
const (
	// SessionStart: an SSH session began (fields: component, login, node, cluster,
	// remote, session_id).
	SessionStart = "session.start"
	// SessionEnd: an SSH session ended (fields: as SessionStart plus bytes_in,
	// bytes_out, duration_ms).
	SessionEnd = "session.end"
	// TrustDisable, TrustEnable: a leaf's trust in a root was turned off or on (fields:
	// root).
	TrustDisable = "trust.disable"
	TrustEnable  = "trust.enable"
	// TrustRemove: a trust was removed: a trusted_cluster on a leaf (fields: root) or a
	// remote_cluster on a root (fields: leaf).
	TrustRemove = "trust.remove"
	// ResourceCreate, ResourceUpdate, ResourceDelete: an admin changed a resource
	// (fields: kind, name).
	ResourceCreate = "resource.create"
	ResourceUpdate = "resource.update"
	ResourceDelete = "resource.delete"
	// TokenUse: a join token was accepted (fields: token_type, token_prefix, for).
	TokenUse = "token.use"
)

// Components of SessionStart/SessionEnd.
const (
	ComponentProxy   = "proxy"   // the root proxy's SSH entry, routing to a cluster
	ComponentForward = "forward" // a cluster's enforcement point, to one of its nodes
	ComponentNode    = "node"    // the Tether node agent running the session
)

// Event is one security-relevant event.
type Event struct {
	// Type is one of the documented types.
	Type string
	// Time is when it happened; zero means now.
	Time time.Time
	// User is who did it or whom it concerns. Empty: Fields["user"] when it is a string,
	// else the user the context carries (WithUser).
	User string
	// Fields say what happened. Values are JSON-friendly; no secrets.
	Fields map[string]any
}

// Auditor receives audit events. Implementations must not block: they are called on
// request paths.
type Auditor interface {
	Audit(ctx context.Context, ev Event)
}

type userKey struct{}

// WithUser returns ctx carrying the user on whose behalf the work runs (the admin
// identity for an admin API call), for events whose source does not know it.
func WithUser(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, userKey{}, user)
}

// UserFrom returns the user WithUser put in ctx, or "".
func UserFrom(ctx context.Context) string {
	u, _ := ctx.Value(userKey{}).(string)
	return u
}

// normalize fills Time and User and takes "user" out of Fields.
func normalize(ctx context.Context, ev Event) Event {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if u, ok := ev.Fields["user"].(string); ok {
		if ev.User == "" {
			ev.User = u
		}
		if ev.User == u {
			f := make(map[string]any, len(ev.Fields))
			for k, v := range ev.Fields {
				if k != "user" {
					f[k] = v
				}
			}
			ev.Fields = f
		}
	}
	if ev.User == "" {
		ev.User = UserFrom(ctx)
	}
	return ev
}

// Log writes each event as one structured log record with audit=true, the event type as
// event and the fields as attributes: with a JSON handler, one JSON line per event that
// a log shipper can select on "audit":true.
type Log struct {
	Logger *slog.Logger
	// Level is the records' level (default info).
	Level slog.Level
}

// Audit writes ev.
func (a Log) Audit(ctx context.Context, ev Event) {
	l := a.Logger
	if l == nil {
		l = slog.Default()
	}
	if !l.Enabled(ctx, a.Level) {
		return
	}
	ev = normalize(ctx, ev)
	attrs := []slog.Attr{slog.Bool("audit", true), slog.String("event", ev.Type), slog.Time("event_time", ev.Time.UTC())}
	if ev.User != "" {
		attrs = append(attrs, slog.String("user", ev.User))
	}
	keys := make([]string, 0, len(ev.Fields))
	for k := range ev.Fields {
		if !decisionlog.SecretFieldName(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, ev.Fields[k]))
	}
	l.LogAttrs(ctx, a.Level, "audit event", attrs...)
}

// Pipeline writes events into a decision log: the same sinks, order and drop counter as
// the decisions.
type Pipeline struct {
	Log     *decisionlog.Logger
	Cluster string
}

// Audit queues ev; it never blocks.
func (p Pipeline) Audit(ctx context.Context, ev Event) {
	ev = normalize(ctx, ev)
	p.Log.LogAudit(decisionlog.AuditEvent{Type: ev.Type, Time: ev.Time, Cluster: p.Cluster, User: ev.User, Fields: ev.Fields})
}

// Multi sends every event to each auditor in turn.
type Multi []Auditor

// Audit sends ev to every auditor.
func (m Multi) Audit(ctx context.Context, ev Event) {
	for _, a := range m {
		if a != nil {
			a.Audit(ctx, ev)
		}
	}
}

// Func adapts a function to Auditor.
type Func func(ctx context.Context, ev Event)

// Audit calls f.
func (f Func) Audit(ctx context.Context, ev Event) { f(ctx, ev) }

// Discard drops every event.
var Discard Auditor = Func(func(context.Context, Event) {})
