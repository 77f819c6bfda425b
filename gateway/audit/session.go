package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Session records one SSH session for the audit log: Start emits session.start, End
// session.end with the bytes and the duration. Every component that carries sessions
// (proxy, forward, node) uses it, so their events have one shape.
type Session struct {
	a      Auditor
	user   string
	fields map[string]any
	start  time.Time
}

// StartSession emits session.start for user with the component and the fields that
// identify the session (login, node, cluster, remote, ...), and returns the session
// whose End emits session.end. A nil Auditor records nothing.
func StartSession(ctx context.Context, a Auditor, component, user string, fields map[string]any) *Session {
	if a == nil {
		a = Discard
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	f := make(map[string]any, len(fields)+2)
	for k, v := range fields {
		f[k] = v
	}
	f["component"] = component
	f["session_id"] = hex.EncodeToString(id[:])
	s := &Session{a: a, user: user, fields: f, start: time.Now()}
	a.Audit(ctx, Event{Type: SessionStart, Time: s.start, User: user, Fields: clone(f)})
	return s
}

// End emits session.end with bytesIn (from the user) and bytesOut (to the user).
func (s *Session) End(ctx context.Context, bytesIn, bytesOut int64) {
	f := clone(s.fields)
	now := time.Now()
	f["bytes_in"] = bytesIn
	f["bytes_out"] = bytesOut
	f["duration_ms"] = now.Sub(s.start).Milliseconds()
	s.a.Audit(context.WithoutCancel(ctx), Event{Type: SessionEnd, Time: now, User: s.user, Fields: f})
}

func clone(m map[string]any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
