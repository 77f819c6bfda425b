package decisionlog

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

// testLogger sends the Logger's diagnostics to the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testEvent returns event number i of a test, with a decision ID that sorts
// by i and an input holding a secret that the default masks erase.
func testEvent(i int) Event {
	return Event{
		DecisionID: fmt.Sprintf("d-%06d", i),
		Path:       "tether/authz/decision",
		Input: map[string]any{
			"action": "ssh.session",
			"login":  "visitor",
			"token":  "secret-join-token",
			"cert": map[string]any{
				"username": "alice",
				"traits":   map[string]any{"logins": []any{"visitor"}, "password": "hunter2"},
			},
		},
		Result:  map[string]any{"allow": i%2 == 0, "reasons": []any{}},
		Bundles: map[string]BundleInfo{"tether": {Revision: "rev-1"}},
	}
}

func eventIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("d-%06d", i)
	}
	return ids
}

// collector is an OPA decision-log service: it checks every upload the way
// OPA's protocol defines it and records the events it accepts.
type collector struct {
	t      testing.TB
	srv    *httptest.Server
	status func(req int) int // the answer to request number req (from 0)
	hold   chan struct{}     // when set, requests wait until it is closed
	held   atomic.Int64      // requests that started waiting on hold

	requests atomic.Int64
	mu       sync.Mutex
	events   []Event
	bodies   []int // compressed size of each accepted body
}

func newCollector(t testing.TB, status func(req int) int) *collector {
	return startCollector(&collector{t: t, status: status})
}

// newWedgedCollector returns a collector whose requests hang until release
// is called (or their client gives up).
func newWedgedCollector(t testing.TB) (c *collector, release func()) {
	c = &collector{t: t, status: alwaysOK, hold: make(chan struct{})}
	var once sync.Once
	release = func() { once.Do(func() { close(c.hold) }) }
	startCollector(c)
	t.Cleanup(release) // runs before the server's Close, which waits for handlers
	return c, release
}

func startCollector(c *collector) *collector {
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	c.t.Cleanup(c.srv.Close)
	return c
}

func (c *collector) serve(w http.ResponseWriter, r *http.Request) {
	if c.hold != nil {
		c.held.Add(1)
		select {
		case <-c.hold:
		case <-r.Context().Done():
			return
		}
	}
	n := int(c.requests.Add(1) - 1)
	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/v1/logs":
		c.t.Errorf("request %s %s, want POST /v1/logs", r.Method, r.URL.Path)
	case r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Content-Encoding") != "gzip":
		c.t.Errorf("request headers %v, want JSON and gzip", r.Header)
	case r.Header.Get("Authorization") != "Bearer s3cret":
		c.t.Errorf("Authorization %q, want the bearer token", r.Header.Get("Authorization"))
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if st := c.status(n); st != http.StatusOK {
		http.Error(w, "not now", st)
		return
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		c.t.Errorf("body is not gzip: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var events []Event
	if err := json.NewDecoder(zr).Decode(&events); err != nil {
		c.t.Errorf("body is not a JSON array of events: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.events = append(c.events, events...)
	c.bodies = append(c.bodies, len(body))
	c.mu.Unlock()
}

func (c *collector) received() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.events...)
}

func alwaysOK(int) int { return http.StatusOK }

// checkOrderedOnce fails unless got's decision IDs appear in want's order,
// each at most once; it returns how many of want are missing.
func checkOrderedOnce(t testing.TB, got []Event, want []string) (missing int) {
	t.Helper()
	j := 0
	for i, ev := range got {
		for j < len(want) && want[j] != ev.DecisionID {
			j++
		}
		if j == len(want) {
			t.Fatalf("event %d (%s) is out of order or delivered twice", i, ev.DecisionID)
		}
		j++
	}
	return len(want) - len(got)
}

func sinkNamed(t testing.TB, l *Logger, name string) *Sink {
	t.Helper()
	for _, s := range l.Sinks() {
		if s.Name() == name {
			return s
		}
	}
	t.Fatalf("no sink %q", name)
	return nil
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
