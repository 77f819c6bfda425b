package decisionlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestAuditEventsShareTheDecisionPipeline: audit events reach the file and the console
// in order with the decisions, carry the documented fields and the gateway's labels,
// and a field whose name says secret never leaves the process.
func TestAuditEventsShareTheDecisionPipeline(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	file := filepath.Join(t.TempDir(), "decisions.jsonl")
	l, err := New(Config{Console: &out, FilePath: file, Cluster: "root.example.com", ID: "gw-1", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 19, 45, 35, 0, time.FixedZone("x", 3600))
	l.Log(testEvent(0))
	l.LogAudit(AuditEvent{Type: "user.login", Time: at, User: "alice", Fields: map[string]any{
		"remote": "127.0.0.1:5000", "password": "hunter2", "otp": "123456", "join_token": "abc", "token_prefix": "abcd",
	}})
	l.Log(testEvent(1))
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	fileBytes, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"console": out.Bytes(), "file": fileBytes} {
		var lines []map[string]any
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("%s: %q is not JSON: %v", name, sc.Text(), err)
			}
			lines = append(lines, m)
		}
		if len(lines) != 3 {
			t.Fatalf("%s: %d lines, want 3", name, len(lines))
		}
		if lines[0]["decision_id"] != "d-000000" || lines[2]["decision_id"] != "d-000001" {
			t.Errorf("%s: decisions out of order around the audit event: %v", name, lines)
		}
		a := lines[1]
		if _, ok := a["decision_id"]; ok {
			t.Errorf("%s: an audit event has a decision_id", name)
		}
		if a["type"] != "user.login" || a["user"] != "alice" || a["cluster"] != "root.example.com" || a["time"] != "2026-11-23T18:45:35Z" {
			t.Errorf("%s: audit event %v", name, a)
		}
		if id, _ := a["event_id"].(string); len(id) != 36 {
			t.Errorf("%s: event_id %q, want a UUID", name, id)
		}
		if labels, _ := a["labels"].(map[string]any); labels["id"] != "gw-1" || labels["cluster"] != "root.example.com" {
			t.Errorf("%s: labels %v", name, a["labels"])
		}
		fields, _ := a["fields"].(map[string]any)
		if fields["remote"] != "127.0.0.1:5000" || fields["token_prefix"] != "abcd" {
			t.Errorf("%s: fields %v", name, fields)
		}
		for _, secret := range []string{"password", "otp", "join_token"} {
			if _, ok := fields[secret]; ok {
				t.Errorf("%s: secret field %q was written", name, secret)
			}
		}
		erased := []string{}
		for _, e := range a["erased"].([]any) {
			erased = append(erased, e.(string))
		}
		slices.Sort(erased)
		if want := []string{"/fields/join_token", "/fields/otp", "/fields/password"}; !slices.Equal(erased, want) {
			t.Errorf("%s: erased %v, want %v", name, erased, want)
		}
		if bytes.Contains(data, []byte("hunter2")) {
			t.Errorf("%s: the password reached the sink", name)
		}
	}
}

// TestAuditDropsAreCounted: an audit event logged after Close is dropped and counted in
// the same total as decisions.
func TestAuditDropsAreCounted(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	l, err := New(Config{Console: &out, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.LogAudit(AuditEvent{Type: "session.start"})
	l.Log(testEvent(0))
	if d := l.Dropped(); d != 2 {
		t.Errorf("Dropped() = %d, want 2", d)
	}
}
