package decisionlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// readEvents reads a JSON-lines file, failing on any line that is not one
// complete event.
func readEvents(t testing.TB, data []byte) []Event {
	t.Helper()
	var events []Event
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %d is not a JSON event: %v: %q", len(events)+1, err, sc.Bytes())
		}
		events = append(events, ev)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("the last line is not terminated: %q", data[max(0, len(data)-40):])
	}
	return events
}

func TestFileSink(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		existing string // content before the Logger opens the file
		events   int
	}{
		{name: "writes_valid_JSON_lines_in_order", events: 500},
		{name: "appends_to_an_existing_file", existing: `{"decision_id":"old"}` + "\n", events: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "decisions.log")
			if tt.existing != "" {
				if err := os.WriteFile(path, []byte(tt.existing), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			l, err := New(Config{FilePath: path, FlushInterval: 5 * time.Millisecond, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.events {
				l.Log(testEvent(i))
			}
			s := sinkNamed(t, l, "file")
			waitFor(t, 5*time.Second, "events written", func() bool { return s.Delivered() == uint64(tt.events) })
			if err := l.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", info.Mode().Perm())
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(data, []byte(tt.existing)) {
				t.Fatalf("existing content lost: %q", data[:min(len(data), 80)])
			}
			got := readEvents(t, data[len(tt.existing):])
			var ids []string
			for _, ev := range got {
				ids = append(ids, ev.DecisionID)
				if _, ok := ev.Input.(map[string]any)["token"]; ok {
					t.Fatalf("event %s kept its token", ev.DecisionID)
				}
			}
			if !slices.Equal(ids, eventIDs(tt.events)) {
				t.Errorf("file holds %d events %v..., want %d in order", len(ids), ids[:min(3, len(ids))], tt.events)
			}
			if s.Dropped() != 0 || s.Spooled() != 0 {
				t.Errorf("dropped %d, spooled %d, want 0", s.Dropped(), s.Spooled())
			}
		})
	}
}

func TestFileSinkOpenError(t *testing.T) {
	t.Parallel()
	_, err := New(Config{FilePath: filepath.Join(t.TempDir(), "missing-dir", "d.log")})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("New with a file in a missing directory: %v, want ErrNotExist", err)
	}
}

// TestConsoleSink: the console sink writes the same JSON lines to any
// io.Writer, and is the default when no sink is configured.
func TestConsoleSink(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	l, err := New(Config{Console: &out, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		l.Log(testEvent(i))
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ev := range readEvents(t, out.Bytes()) {
		ids = append(ids, ev.DecisionID)
	}
	if !slices.Equal(ids, eventIDs(50)) {
		t.Errorf("console got %v, want 50 events in order", ids)
	}

	l.Log(testEvent(50))
	if d := sinkNamed(t, l, "console").Dropped(); d != 1 {
		t.Errorf("Log after Close: Dropped() = %d, want 1", d)
	}

	def, err := New(Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if sinks := def.Sinks(); len(sinks) != 1 || sinks[0].Name() != "console" {
		t.Errorf("zero Config sinks %v, want the console", sinks)
	}
	if err := def.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// flakyWriter fails every third write after writing half of it.
type flakyWriter struct {
	bytes.Buffer
	calls int
}

func (w *flakyWriter) Write(p []byte) (int, error) {
	w.calls++
	if w.calls%3 == 1 {
		n, _ := w.Buffer.Write(p[:len(p)/2])
		return n, errors.New("device busy")
	}
	return w.Buffer.Write(p)
}

// TestConsoleSinkPartialWrites: a writer that fails half way through a write
// still ends up with every line exactly once, whole, in order.
func TestConsoleSinkPartialWrites(t *testing.T) {
	t.Parallel()
	w := &flakyWriter{}
	l, err := New(Config{Console: w, MinRetryDelay: time.Millisecond, MaxRetryDelay: 2 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		l.Log(testEvent(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ev := range readEvents(t, w.Bytes()) {
		ids = append(ids, ev.DecisionID)
	}
	if !slices.Equal(ids, eventIDs(200)) || w.calls < 3 {
		t.Errorf("got %d events in %d writes, want 200 in order", len(ids), w.calls)
	}
}

// TestUnencodableEvent: an event that cannot be encoded as JSON is dropped,
// counted and reported, and the events around it are delivered.
func TestUnencodableEvent(t *testing.T) {
	t.Parallel()
	var out, diag bytes.Buffer
	l, err := New(Config{Console: &out, Logger: slogTo(&diag)})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(testEvent(0))
	l.Log(Event{DecisionID: "bad", Input: map[string]any{"c": make(chan int)}})
	l.Log(testEvent(1))
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ev := range readEvents(t, out.Bytes()) {
		ids = append(ids, ev.DecisionID)
	}
	s := sinkNamed(t, l, "console")
	if !slices.Equal(ids, eventIDs(2)) || s.Dropped() != 1 || s.Delivered() != 2 {
		t.Errorf("got %v, dropped %d, delivered %d; want 2 events and 1 dropped", ids, s.Dropped(), s.Delivered())
	}
	if !bytes.Contains(diag.Bytes(), []byte("decision_id=bad")) {
		t.Errorf("the drop was not reported with its decision ID:\n%s", diag.String())
	}
}
