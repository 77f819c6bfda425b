package decisionlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func segmentEvents(n int) [][]byte {
	events := make([][]byte, n)
	for i := range events {
		events[i] = []byte(fmt.Sprintf(`{"decision_id":"d-%06d","input":{"n":%d}}`, i, i))
	}
	return events
}

func TestSegmentDecode(t *testing.T) {
	t.Parallel()
	events := segmentEvents(3)
	seg := encodeSegment(events)
	second := len(segmentMagic) + recordHeader + len(events[0]) // offset of record 1
	third := second + recordHeader + len(events[1])
	flip := func(at int) []byte {
		b := bytes.Clone(seg)
		b[at] ^= 0x40
		return b
	}
	validCRCNotJSON := append(encodeSegment(events[:1]), encodeSegment([][]byte{[]byte("{not json")})[len(segmentMagic):]...)
	tests := []struct {
		name    string
		data    []byte
		want    int // events recovered
		corrupt bool
	}{
		{name: "intact", data: seg, want: 3},
		{name: "empty_segment", data: encodeSegment(nil), want: 0},
		{name: "truncated_in_last_payload", data: seg[:len(seg)-1], want: 2, corrupt: true},
		{name: "truncated_in_a_header", data: seg[:third+3], want: 2, corrupt: true},
		{name: "truncated_at_a_record_boundary", data: seg[:third], want: 2},
		{name: "flipped_payload_byte", data: flip(second + recordHeader + 2), want: 1, corrupt: true},
		{name: "flipped_length", data: flip(second), want: 1, corrupt: true},
		{name: "zero_length_record", data: append(bytes.Clone(seg[:second]), 0, 0, 0, 0, 0, 0, 0, 0), want: 1, corrupt: true},
		{name: "valid_checksum_over_invalid_JSON", data: validCRCNotJSON, want: 1, corrupt: true},
		{name: "bad_magic", data: flip(0), want: 0, corrupt: true},
		{name: "empty_file", data: nil, want: 0, corrupt: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeSegment(tt.data)
			if tt.corrupt != (err != nil) || err != nil && !errors.Is(err, errCorruptSegment) {
				t.Errorf("error %v, want corrupt=%v", err, tt.corrupt)
			}
			if len(got) != tt.want {
				t.Fatalf("recovered %d events, want %d", len(got), tt.want)
			}
			for i := range got {
				if !bytes.Equal(got[i], events[i]) {
					t.Errorf("event %d = %s, want %s", i, got[i], events[i])
				}
			}
		})
	}
}

// FuzzSegmentDecode: arbitrary bytes never make the decoder panic, and a
// real segment damaged anywhere still yields every event that lies wholly
// before the damage.
func FuzzSegmentDecode(f *testing.F) {
	f.Add([]byte("a\nbb\nccc"), uint16(20), uint16(0), byte(0))
	f.Add([]byte("x"), uint16(0), uint16(12), byte(1))
	f.Add([]byte(segmentMagic+"\x00\x00\x00\x05\x00\x00\x00\x00hello"), uint16(999), uint16(999), byte(0))
	f.Add(encodeSegment(segmentEvents(2)), uint16(40), uint16(30), byte(0x80))
	f.Fuzz(func(t *testing.T, data []byte, cut, at uint16, xor byte) {
		// The raw bytes as a segment.
		if events, err := decodeSegment(data); err == nil {
			if !bytes.Equal(encodeSegment(events), data) && len(data) > len(segmentMagic) {
				t.Fatalf("accepted a segment that does not re-encode to itself")
			}
		}

		// The bytes as events of a real segment, then damaged.
		var events [][]byte
		for _, p := range bytes.Split(data, []byte("\n")) {
			e, _ := json.Marshal(string(p))
			events = append(events, e)
		}
		seg := encodeSegment(events)
		damage := len(seg) // first damaged byte
		if int(cut) < len(seg) {
			seg, damage = seg[:cut], int(cut)
		}
		if xor != 0 && int(at) < len(seg) {
			seg[at] ^= xor
			damage = min(damage, int(at))
		}
		got, err := decodeSegment(seg)
		if damage == len(encodeSegment(events)) && err != nil {
			t.Fatalf("intact segment reported corrupt: %v", err)
		}
		end, whole := len(segmentMagic), 0 // events wholly before the damage
		for _, e := range events {
			end += recordHeader + len(e)
			if end > damage {
				break
			}
			whole++
		}
		if len(got) < whole {
			t.Fatalf("recovered %d events, but %d lie before the damage at byte %d (err %v)", len(got), whole, damage, err)
		}
		for i, e := range got {
			if i >= len(events) || !bytes.Equal(e, events[i]) {
				t.Fatalf("event %d = %q, not the one written", i, e)
			}
		}
	})
}

// TestSpoolRestart: events that a Logger could not deliver before Close
// gave up are delivered by the next Logger on the same spool directory, once,
// in order.
func TestSpoolRestart(t *testing.T) {
	t.Parallel()
	const n = 300
	tests := []struct {
		name string
		// kill stops the first Logger without delivering.
		kill func(t *testing.T, l *Logger)
	}{
		{
			name: "spooled_while_failing",
			kill: func(t *testing.T, l *Logger) {
				s := sinkNamed(t, l, "http")
				waitFor(t, 10*time.Second, "all events spooled", func() bool { return s.Spooled() == n })
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				if err := l.Close(ctx); !errors.Is(err, context.Canceled) {
					t.Errorf("Close: %v, want context.Canceled", err)
				}
			},
		},
		{
			name: "persisted_by_Close",
			kill: func(t *testing.T, l *Logger) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				if err := l.Close(ctx); !errors.Is(err, context.Canceled) {
					t.Errorf("Close: %v, want context.Canceled", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			down := newCollector(t, func(int) int { return http.StatusBadGateway })
			cfg := uploadConfig(t, down)
			cfg.SpoolDir = dir
			l, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				l.Log(testEvent(i))
			}
			tt.kill(t, l)
			s := sinkNamed(t, l, "http")
			if s.Dropped() != 0 || s.Delivered() != 0 || s.Spooled() != n {
				t.Fatalf("first run: delivered %d, spooled %d, dropped %d; want 0, %d, 0", s.Delivered(), s.Spooled(), s.Dropped(), n)
			}
			checkSpoolFiles(t, filepath.Join(dir, "http"))

			up := newCollector(t, alwaysOK)
			cfg = uploadConfig(t, up)
			cfg.SpoolDir = dir
			l2, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			l2.Log(testEvent(n)) // logged after the restart, so delivered after the spool
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := l2.Close(ctx); err != nil {
				t.Fatalf("second run: Close: %v", err)
			}
			got := up.received()
			if missing := checkOrderedOnce(t, got, eventIDs(n+1)); missing != 0 {
				t.Fatalf("second run: %d of %d events missing", missing, n+1)
			}
			if entries, _ := os.ReadDir(filepath.Join(dir, "http")); len(entries) != 0 {
				t.Errorf("spool not emptied: %v", entries)
			}
		})
	}
}

// checkSpoolFiles checks that the spool holds only 0600 segment files.
func checkSpoolFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("spool is empty")
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(e.Name(), segmentExt) || info.Mode().Perm() != 0o600 {
			t.Errorf("spool file %s mode %v, want *.seg 0600", e.Name(), info.Mode().Perm())
		}
	}
}

// TestSpoolBound: with the sink down and both the memory buffer and the
// spool full, new events are dropped, and Dropped counts exactly the events
// that are never delivered.
func TestSpoolBound(t *testing.T) {
	t.Parallel()
	const n = 400
	var healthy atomic.Bool
	c := newCollector(t, func(int) int {
		if healthy.Load() {
			return http.StatusOK
		}
		return http.StatusInternalServerError
	})
	cfg := uploadConfig(t, c)
	cfg.SpoolDir = t.TempDir()
	cfg.MaxSpoolBytes = 8 << 10
	cfg.BufferSize = 8
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := sinkNamed(t, l, "http")
	l.Log(testEvent(0))
	waitFor(t, 5*time.Second, "the first event spooled after a failed upload", func() bool { return s.Spooled() == 1 })
	// One event at a time, so that events are dropped because memory and
	// the spool are full, not because the drainer is busy writing.
	i := 1
	for ; i < n && !s.stalled.Load(); i++ {
		l.Log(testEvent(i))
		waitFor(t, 5*time.Second, "the event taken from the queue", func() bool { return len(s.queue) == 0 || s.stalled.Load() })
	}
	if i == n {
		t.Fatalf("%d events did not fill a %d-byte spool", n, cfg.MaxSpoolBytes)
	}
	t.Logf("stalled after %d events: spooled %d, queue %d", i, s.Spooled(), len(s.queue))
	if b := dirBytes(t, filepath.Join(cfg.SpoolDir, "http")); b > cfg.MaxSpoolBytes || b < cfg.MaxSpoolBytes/2 {
		t.Errorf("spool holds %d bytes when full, bound %d", b, cfg.MaxSpoolBytes)
	}
	for ; i < n; i++ {
		l.Log(testEvent(i))
	}
	if s.Dropped() == 0 {
		t.Fatal("nothing dropped with memory and spool full")
	}
	healthy.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := c.received()
	missing := checkOrderedOnce(t, got, eventIDs(n))
	if missing == 0 || uint64(missing) != s.Dropped() {
		t.Errorf("%d events never delivered, Dropped() = %d; want them equal and above 0", missing, s.Dropped())
	}
	if s.Delivered() != uint64(len(got)) {
		t.Errorf("Delivered() = %d, server received %d", s.Delivered(), len(got))
	}
	t.Logf("delivered %d, spooled %d, dropped %d", s.Delivered(), s.Spooled(), s.Dropped())
}

// TestSpoolDamagedSegment: a damaged segment left by a previous run is
// reported and moved aside; its events before the damage, and the segments
// around it, are still delivered in order.
func TestSpoolDamagedSegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "file")
	if err := os.MkdirAll(spoolDir, 0o700); err != nil {
		t.Fatal(err)
	}
	events := segmentEvents(9)
	damaged := encodeSegment(events[3:7])
	damaged = damaged[:len(damaged)-5] // the last event (6) is cut short
	for name, data := range map[string][]byte{
		"00000000000000000001.seg": encodeSegment(events[:3]),
		"00000000000000000002.seg": damaged,
		"00000000000000000003.seg": encodeSegment(events[7:]),
		"segment-123.tmp":          []byte("an interrupted write"),
	} {
		if err := os.WriteFile(filepath.Join(spoolDir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var diag bytes.Buffer
	logPath := filepath.Join(dir, "decisions.log")
	l, err := New(Config{FilePath: logPath, SpoolDir: dir, Logger: slogTo(&diag)})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ev := range readEvents(t, data) {
		ids = append(ids, ev.DecisionID)
	}
	want := []string{"d-000000", "d-000001", "d-000002", "d-000003", "d-000004", "d-000005", "d-000007", "d-000008"}
	if !slices.Equal(ids, want) {
		t.Errorf("delivered %v, want %v", ids, want)
	}
	if !strings.Contains(diag.String(), "spool segment is damaged") {
		t.Errorf("damage not reported; log:\n%s", diag.String())
	}
	entries, _ := os.ReadDir(spoolDir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"00000000000000000002.corrupt"}) {
		t.Errorf("spool holds %v, want only the damaged segment moved aside", names)
	}
}

func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			n += info.Size()
		}
	}
	return n
}
