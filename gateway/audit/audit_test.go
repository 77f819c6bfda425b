package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/tetherproject/tether/policy/decisionlog"
)

// TestPipelineEvents: the pipeline names the user from the event, its "user" field or
// the context (an admin API call), and sessions get one id for start and end with the
// bytes and duration on the end.
func TestPipelineEvents(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	l, err := decisionlog.New(decisionlog.Config{Console: &out, Cluster: "root.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	p := Pipeline{Log: l, Cluster: "root.example.com"}
	ctx := WithUser(context.Background(), "admin")
	p.Audit(ctx, Event{Type: ResourceCreate, Fields: map[string]any{"kind": "role", "name": "ops"}})
	p.Audit(ctx, Event{Type: "user.login", Fields: map[string]any{"user": "alice", "remote": "x"}})
	s := StartSession(ctx, p, ComponentForward, "bob", map[string]any{"login": "visitor", "node": "n1"})
	s.End(ctx, 7, 11)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var evs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, m)
	}
	if len(evs) != 4 {
		t.Fatalf("%d events", len(evs))
	}
	if evs[0]["user"] != "admin" || evs[1]["user"] != "alice" || evs[2]["user"] != "bob" {
		t.Errorf("users: %v %v %v", evs[0]["user"], evs[1]["user"], evs[2]["user"])
	}
	if f := evs[1]["fields"].(map[string]any); f["user"] != nil || f["remote"] != "x" {
		t.Errorf("user.login fields %v", f)
	}
	start, end := evs[2]["fields"].(map[string]any), evs[3]["fields"].(map[string]any)
	if evs[2]["type"] != SessionStart || evs[3]["type"] != SessionEnd || start["session_id"] == "" || start["session_id"] != end["session_id"] ||
		start["component"] != ComponentForward || end["bytes_in"] != 7.0 || end["bytes_out"] != 11.0 || end["duration_ms"] == nil || start["bytes_in"] != nil {
		t.Errorf("session events:\n%v\n%v", start, end)
	}
}

// TestLogAuditorLeavesSecretsOut: the slog auditor drops fields named like secrets and
// honours its level.
func TestLogAuditorLeavesSecretsOut(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	Log{Logger: log}.Audit(context.Background(), Event{Type: "user.login", Fields: map[string]any{"user": "alice", "password": "hunter2"}})
	Log{Logger: log, Level: slog.LevelDebug}.Audit(context.Background(), Event{Type: "hidden.at.info"})
	if s := buf.String(); !strings.Contains(s, "event=user.login") || !strings.Contains(s, "user=alice") || strings.Contains(s, "hunter2") || strings.Contains(s, "hidden") {
		t.Errorf("log:\n%s", s)
	}
}
