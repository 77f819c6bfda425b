package decisionlog

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// uploadConfig returns a Config that uploads to c quickly, for tests.
func uploadConfig(t testing.TB, c *collector) Config {
	return Config{
		Upload: UploadConfig{
			URL: c.srv.URL + "/v1", Token: "s3cret",
			MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, Timeout: 5 * time.Second,
		},
		MinRetryDelay: 2 * time.Millisecond, MaxRetryDelay: 40 * time.Millisecond,
		FlushInterval: 10 * time.Millisecond,
		Logger:        testLogger(t),
	}
}

func TestHTTPSink(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		status      func(req int) int
		spool       bool
		events      int
		limit       int  // Upload.SizeLimitBytes
		wantSpooled bool // events must have gone through the spool
	}{
		{name: "every_event_once_in_order", status: alwaysOK, events: 1000},
		{name: "batches_respect_the_compressed_size_limit", status: alwaysOK, events: 600, limit: 1024},
		{
			name: "server_errors_then_recovers_nothing_lost_in_memory", events: 500,
			status: func(n int) int {
				if n < 6 {
					return http.StatusInternalServerError
				}
				return http.StatusOK
			},
		},
		{
			name: "server_errors_then_recovers_nothing_lost_through_spool", events: 500, spool: true, wantSpooled: true,
			status: func(n int) int {
				if n < 6 || n%3 == 0 {
					return http.StatusServiceUnavailable
				}
				return http.StatusOK
			},
		},
		{
			name: "uploads_failing_midway_through_a_batch_resume_after_the_delivered_part", events: 400, limit: 1024,
			spool: true, wantSpooled: true,
			status: func(n int) int {
				if n%4 == 2 {
					return http.StatusTooManyRequests
				}
				return http.StatusOK
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCollector(t, tt.status)
			cfg := uploadConfig(t, c)
			cfg.Upload.SizeLimitBytes = tt.limit
			if tt.spool {
				cfg.SpoolDir = t.TempDir()
			}
			l, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.events {
				l.Log(testEvent(i))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if err := l.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			got := c.received()
			if missing := checkOrderedOnce(t, got, eventIDs(tt.events)); missing != 0 {
				t.Fatalf("%d of %d events missing", missing, tt.events)
			}
			s := sinkNamed(t, l, "http")
			if s.Delivered() != uint64(tt.events) || s.Dropped() != 0 {
				t.Errorf("delivered %d, dropped %d; want %d, 0", s.Delivered(), s.Dropped(), tt.events)
			}
			if tt.wantSpooled && s.Spooled() == 0 {
				t.Errorf("nothing went through the spool")
			}
			if tt.limit > 0 {
				c.mu.Lock()
				bodies := append([]int(nil), c.bodies...)
				c.mu.Unlock()
				if len(bodies) < 2 {
					t.Errorf("%d requests; the limit should have split the events", len(bodies))
				}
				for i, n := range bodies {
					if n > tt.limit {
						t.Errorf("request %d has a %d-byte body, over the %d-byte limit", i, n, tt.limit)
					}
				}
			}
			for _, ev := range got {
				if ev.Labels["id"] == "" || ev.Labels["version"] == "" {
					t.Fatalf("event %s lacks the id and version labels: %v", ev.DecisionID, ev.Labels)
				}
			}
		})
	}
}

// TestLogNeverBlocks wedges the HTTP sink (the server accepts a request and
// never answers) and checks that Log still returns at once, that every event
// is either delivered after the server comes back or counted as dropped, and
// that Close gives up on a wedged request when its context ends.
func TestLogNeverBlocks(t *testing.T) {
	t.Parallel()
	const n = 10000
	tests := []struct {
		name  string
		spool bool
	}{
		{name: "memory_only"},
		{name: "with_spool", spool: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, unwedge := newWedgedCollector(t)
			cfg := uploadConfig(t, c)
			cfg.BufferSize = 64
			if tt.spool {
				cfg.SpoolDir = t.TempDir()
			}
			l, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			l.Log(testEvent(0))
			waitFor(t, 5*time.Second, "the sink to be wedged in a request", func() bool { return c.held.Load() > 0 })

			done := make(chan time.Duration)
			go func() {
				start := time.Now()
				for i := 1; i < n; i++ {
					l.Log(testEvent(i))
				}
				done <- time.Since(start)
			}()
			select {
			case d := <-done:
				t.Logf("%d Log calls with the sink wedged took %v (%v per call)", n-1, d, d/(n-1))
			case <-time.After(10 * time.Second):
				t.Fatal("Log blocked while the sink was wedged")
			}
			s := sinkNamed(t, l, "http")
			if s.Delivered() != 0 {
				t.Fatalf("delivered %d events through a wedged server", s.Delivered())
			}

			unwedge()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if err := l.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			got := c.received()
			missing := checkOrderedOnce(t, got, eventIDs(n))
			if uint64(missing) != s.Dropped() || uint64(len(got)) != s.Delivered() {
				t.Errorf("received %d, missing %d; sink says delivered %d, dropped %d", len(got), missing, s.Delivered(), s.Dropped())
			}
			t.Logf("delivered %d, spooled %d, dropped %d", s.Delivered(), s.Spooled(), s.Dropped())
		})
	}
}

// TestCloseGivesUpOnWedgedServer: Close returns when its context ends even if
// the server never answers, and keeps the events in the spool.
func TestCloseGivesUpOnWedgedServer(t *testing.T) {
	t.Parallel()
	c, _ := newWedgedCollector(t)
	cfg := uploadConfig(t, c)
	cfg.SpoolDir = t.TempDir()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		l.Log(testEvent(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = l.Close(ctx)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close took %v with a 300ms context", took)
	}
	if err == nil || !strings.Contains(err.Error(), "left in the spool") {
		t.Errorf("Close: %v, want an error saying what is left in the spool", err)
	}
	s := sinkNamed(t, l, "http")
	if s.Dropped() != 0 || s.Spooled() != 10 {
		t.Errorf("dropped %d, spooled %d; want 0, 10", s.Dropped(), s.Spooled())
	}
}

// TestHTTPChunk: every request body fits the size limit, except that an
// event too large to fit alone is sent alone rather than dropped.
func TestHTTPChunk(t *testing.T) {
	t.Parallel()
	random := func(i, size int) []byte {
		// Hex of a hash chain: JSON that barely compresses.
		b := []byte(fmt.Sprintf(`{"decision_id":"d-%06d","input":"`, i))
		h := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		for len(b) < size {
			b = hex.AppendEncode(b, h[:])
			h = sha256.Sum256(h[:])
		}
		return append(b, `"}`...)
	}
	tests := []struct {
		name   string
		events [][]byte
		limit  int
	}{
		{name: "many_small_events", events: segmentEvents(3000), limit: 2048},
		{name: "one_event_over_the_limit_goes_alone", events: [][]byte{random(0, 100), random(1, 5000), random(2, 100)}, limit: 1024},
		{name: "incompressible_events", events: func() (ev [][]byte) {
			for i := range 200 {
				ev = append(ev, random(i, 300))
			}
			return ev
		}(), limit: 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newHTTPSink(Config{Upload: UploadConfig{URL: "http://127.0.0.1:1", Resource: "/logs", SizeLimitBytes: tt.limit}})
			var got [][]byte
			for len(got) < len(tt.events) {
				n, body := s.chunk(tt.events[len(got):])
				if len(body) > tt.limit && n != 1 {
					t.Fatalf("a %d-event body of %d bytes exceeds the %d-byte limit", n, len(body), tt.limit)
				}
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				var arr []json.RawMessage
				if err := json.NewDecoder(zr).Decode(&arr); err != nil || len(arr) != n {
					t.Fatalf("body holds %d events (%v), chunk says %d", len(arr), err, n)
				}
				for _, e := range arr {
					got = append(got, e)
				}
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.events[i]) {
					t.Fatalf("event %d changed on the way", i)
				}
			}
		})
	}
}
