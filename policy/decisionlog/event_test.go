package decisionlog

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"testing"
	"time"
)

func TestEventJSON(t *testing.T) {
	t.Parallel()
	berlin := time.FixedZone("CET", 3600)
	full := Event{
		DecisionID:  "4ca636c1-55e4-417a-b1d8-4aceb67960d1",
		Path:        "tether/authz/decision",
		Input:       map[string]any{"login": "visitor"},
		Result:      map[string]any{"allow": true},
		Bundles:     map[string]BundleInfo{"tether": {Revision: "r42"}},
		Labels:      map[string]string{"id": "gw-1", "version": "v1.2.3", "cluster": "leaf.example.com"},
		Timestamp:   time.Date(2026, 11, 23, 20, 45, 35, 123456789, berlin),
		Metrics:     map[string]any{"timer_rego_query_eval_ns": 1234},
		RequestedBy: "10.1.2.3:5555",
		Erased:      []string{"/input/token"},
		Masked:      []string{"/input/password"},
	}
	tests := []struct {
		name     string
		ev       Event
		wantKeys []string
		check    func(t *testing.T, m map[string]json.RawMessage)
	}{
		{
			name: "field_names_are_OPA's",
			ev:   full,
			wantKeys: []string{"bundles", "decision_id", "erased", "input", "labels", "masked", "metrics",
				"path", "requested_by", "result", "timestamp"},
			check: func(t *testing.T, m map[string]json.RawMessage) {
				want := map[string]string{
					"bundles":   `{"tether":{"revision":"r42"}}`,
					"labels":    `{"cluster":"leaf.example.com","id":"gw-1","version":"v1.2.3"}`,
					"erased":    `["/input/token"]`,
					"masked":    `["/input/password"]`,
					"metrics":   `{"timer_rego_query_eval_ns":1234}`,
					"timestamp": `"2026-11-23T19:45:35.123456789Z"`,
				}
				for k, v := range want {
					if string(m[k]) != v {
						t.Errorf("%s = %s, want %s", k, m[k], v)
					}
				}
			},
		},
		{
			name:     "timestamp_is_UTC_RFC3339Nano",
			ev:       Event{DecisionID: "x", Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 600, berlin)},
			wantKeys: []string{"decision_id", "labels", "timestamp"},
			check: func(t *testing.T, m map[string]json.RawMessage) {
				var s string
				if err := json.Unmarshal(m["timestamp"], &s); err != nil {
					t.Fatal(err)
				}
				ts, err := time.Parse(time.RFC3339Nano, s)
				if err != nil || ts.Location() != time.UTC || !ts.Equal(time.Date(2026, 1, 2, 2, 4, 5, 600, time.UTC)) {
					t.Errorf("timestamp %s (%v), want 2026-01-02T02:04:05.0000006Z", s, err)
				}
			},
		},
		{
			name:     "absent_fields_are_omitted_as_OPA_does",
			ev:       Event{DecisionID: "x"},
			wantKeys: []string{"decision_id", "labels", "timestamp"},
		},
		{
			name:     "result_false_is_kept",
			ev:       Event{DecisionID: "x", Result: false},
			wantKeys: []string{"decision_id", "labels", "result", "timestamp"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.ev)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			var keys []string
			for k := range m {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, tt.wantKeys) {
				t.Errorf("keys %v, want %v\n%s", keys, tt.wantKeys, b)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
			var back Event
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("decoding %s: %v", b, err)
			}
			if !back.Timestamp.Equal(tt.ev.Timestamp) || back.DecisionID != tt.ev.DecisionID {
				t.Errorf("round trip: %+v, want %+v", back, tt.ev)
			}
		})
	}
}

// TestLoggerFillsEvent checks what the Logger adds to an event: labels,
// a decision ID, a timestamp, and the default masks.
func TestLoggerFillsEvent(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	l, err := New(Config{
		ID: "gw-7", Version: "v9.9.9", Cluster: "leaf.example.com",
		Labels:  map[string]string{"region": "eu", "id": "overridden"},
		Console: &out, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	in := map[string]any{"token": "abc", "login": "visitor"}
	l.Log(Event{Path: "tether/authz/decision", Input: in, Labels: map[string]string{"shard": "3", "version": "mine"}})
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var ev Event
	if err := json.Unmarshal(out.Bytes(), &ev); err != nil {
		t.Fatalf("%v: %s", err, out.Bytes())
	}
	wantLabels := map[string]string{"id": "gw-7", "version": "v9.9.9", "cluster": "leaf.example.com", "region": "eu", "shard": "3"}
	if !mapsEqual(ev.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", ev.Labels, wantLabels)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(ev.DecisionID) {
		t.Errorf("decision_id %q is not a random UUID", ev.DecisionID)
	}
	if ev.Timestamp.Before(before.Add(-time.Second)) || ev.Timestamp.After(time.Now()) {
		t.Errorf("timestamp %v is not the time of the Log call", ev.Timestamp)
	}
	if _, ok := ev.Input.(map[string]any)["token"]; ok || !slices.Equal(ev.Erased, []string{"/input/token"}) {
		t.Errorf("token not erased: input %v, erased %v", ev.Input, ev.Erased)
	}
	if in["token"] != "abc" {
		t.Errorf("the caller's input was modified: %v", in)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}
