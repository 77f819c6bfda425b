package decisionlog

import (
	"encoding/json"
	"strings"
	"time"
)

// AuditEvent is one security event (a login, a certificate issued, a session, a trust
// or resource change) written to the same sinks as the decisions, in the same order
// and with the same delivery guarantees and drop counter. It is told apart from a
// decision by its "type" field (decisions have "decision_id" and "path" and no "type").
// docs/AUDIT.md documents the types and their fields.
type AuditEvent struct {
	// EventID identifies the event; the Logger fills in a random UUID when it is empty.
	EventID string `json:"event_id"`
	// Type is the event type, "user.login", "session.end", ...
	Type string `json:"type"`
	// Time is when it happened; the Logger uses the time of the LogAudit call when it is
	// zero. It is written in UTC, RFC 3339 with nanoseconds.
	Time time.Time `json:"time"`
	// Cluster is the cluster the event happened in.
	Cluster string `json:"cluster,omitempty"`
	// User is who did it or whom it concerns: a user name, "admin" for the admin
	// identity, empty when nobody is known (a failed handshake).
	User string `json:"user,omitempty"`
	// Fields say what happened. Values are JSON-compatible; secrets never belong here,
	// and a field whose name says it holds one is erased (see SecretFieldName).
	Fields map[string]any `json:"fields,omitempty"`
	// Labels identify the gateway, as on decisions (id, version, cluster).
	Labels map[string]string `json:"labels"`
	// Erased lists the fields removed because their names say they hold a secret.
	Erased []string `json:"erased,omitempty"`
}

// SecretFieldName reports whether an audit field named name may hold a secret, by its
// name: password, secret, otp, private key, and a token's value (token_name and
// token_prefix are the displayable forms and pass). Such fields are erased before an
// event leaves the process, whatever their value.
func SecretFieldName(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "token_name", "token_prefix", "token_type":
		return false
	}
	for _, s := range []string{"password", "passwd", "secret", "otp", "private", "token", "credential"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// LogAudit queues ev for every sink, as Log does for a decision: it never waits and
// never does I/O, and a sink whose queue is full drops it and counts it in
// Sink.Dropped. The caller must not modify ev.Fields after the call.
func (l *Logger) LogAudit(ev AuditEvent) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	l.enqueue(&record{audit: &ev})
}

// encodeAudit is encode for an audit event.
func (l *Logger) encodeAudit(ev AuditEvent) (string, []byte, error) {
	if ev.EventID == "" {
		ev.EventID = newUUID()
	}
	ev.Labels = l.labels
	if ev.Cluster == "" {
		ev.Cluster = l.labels["cluster"]
	}
	var fields map[string]any
	for k, v := range ev.Fields {
		if SecretFieldName(k) {
			ev.Erased = append(ev.Erased, "/fields/"+k)
			continue
		}
		if fields == nil {
			fields = make(map[string]any, len(ev.Fields))
		}
		fields[k] = v
	}
	ev.Fields = fields
	ev.Time = ev.Time.UTC()
	line, err := json.Marshal(ev)
	return ev.EventID, line, err
}
