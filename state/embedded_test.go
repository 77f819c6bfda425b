package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
)

func openTest(t *testing.T, cfg EmbeddedConfig) (*Embedded, *testenv.Buffer) {
	t.Helper()
	logs := &testenv.Buffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := OpenEmbedded(cfg)
	if err != nil {
		t.Fatalf("opening %s: %v", cfg.Dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s, logs
}

func put(t *testing.T, s Store, key, value string) Item {
	t.Helper()
	it, err := s.Put(context.Background(), Item{Key: key, Value: []byte(value)})
	if err != nil {
		t.Fatal(err)
	}
	return it
}

// snapshot is everything a store holds, for comparing before and after.
func snapshot(t *testing.T, s Store) []string {
	t.Helper()
	items, err := s.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		out = append(out, fmt.Sprintf("%s=%s@%d", it.Key, it.Value, it.Revision))
	}
	return out
}

// recordOffsets returns where each record of the log at path starts.
func recordOffsets(t *testing.T, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	off := len(logMagic)
	for off < len(b) {
		_, n, err := decodeRecord(b[off:])
		if err != nil {
			t.Fatalf("test log unreadable at %d: %v", off, err)
		}
		offs = append(offs, int64(off))
		off += n
	}
	return offs
}

// fillStore writes n items and returns the snapshot after each write.
func fillStore(t *testing.T, dir string, n int) [][]string {
	t.Helper()
	s, _ := openTest(t, EmbeddedConfig{Dir: dir})
	var snaps [][]string
	for i := range n {
		put(t, s, fmt.Sprintf("item/%02d", i), strings.Repeat("v", 50+i))
		snaps = append(snaps, snapshot(t, s))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return snaps
}

func TestEmbeddedReopenKeepsDataAndRevisions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	s, _ := openTest(t, EmbeddedConfig{Dir: dir})
	put(t, s, "roles/a", "1")
	b := put(t, s, "roles/b", "1")
	if _, err := s.CompareAndSwap(ctx, b, Item{Key: "roles/b", Value: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	put(t, s, "tmp", "x")
	if _, err := s.Put(ctx, Item{Key: "lease", Value: []byte("x"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "tmp"); err != nil { // the newest write is a delete
		t.Fatal(err)
	}
	before := snapshot(t, s)
	lease, _ := s.Get(ctx, "lease")
	lastRev := s.rev
	s.Close()

	s2, logs := openTest(t, EmbeddedConfig{Dir: dir})
	if got := snapshot(t, s2); !slices.Equal(got, before) {
		t.Fatalf("after reopen %q, want %q", got, before)
	}
	if got, _ := s2.Get(ctx, "lease"); !got.Expires.Equal(lease.Expires) {
		t.Fatalf("expiry after reopen %v, want %v", got.Expires, lease.Expires)
	}
	if it := put(t, s2, "new", "x"); it.Revision != lastRev+1 {
		t.Fatalf("first revision after reopen %d, want %d", it.Revision, lastRev+1)
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("clean reopen logged a warning: %s", logs)
	}
}

func TestEmbeddedRecoversTornTail(t *testing.T) {
	t.Parallel()
	const n = 5
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string, last int64, size int64)
	}{
		{"cut_one_byte", func(t *testing.T, path string, last, size int64) { truncate(t, path, size-1) }},
		{"cut_mid_payload", func(t *testing.T, path string, last, size int64) { truncate(t, path, last+recordHeaderSize+5) }},
		{"cut_mid_header", func(t *testing.T, path string, last, size int64) { truncate(t, path, last+5) }},
		{"cut_after_header", func(t *testing.T, path string, last, size int64) { truncate(t, path, last+recordHeaderSize) }},
		{"last_record_garbled", func(t *testing.T, path string, last, size int64) { flip(t, path, size-3) }},
		{"zero_filled_tail_after_partial_header", func(t *testing.T, path string, last, size int64) {
			truncate(t, path, last+7)
			appendBytes(t, path, make([]byte, 4096))
		}},
		{"zero_filled_tail_after_partial_payload", func(t *testing.T, path string, last, size int64) {
			truncate(t, path, last+recordHeaderSize+3)
			appendBytes(t, path, make([]byte, 4096))
		}},
		{"zero_filled_record", func(t *testing.T, path string, last, size int64) {
			writeAt(t, path, last, make([]byte, size-last))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			snaps := fillStore(t, dir, n)
			path := filepath.Join(dir, logFileName)
			offs := recordOffsets(t, path)
			info, _ := os.Stat(path)
			tc.damage(t, path, offs[len(offs)-1], info.Size())

			s, logs := openTest(t, EmbeddedConfig{Dir: dir})
			if got := snapshot(t, s); !slices.Equal(got, snaps[n-2]) {
				t.Fatalf("recovered %q, want everything before the last write %q", got, snaps[n-2])
			}
			if !strings.Contains(logs.String(), "incomplete last record") || !strings.Contains(logs.String(), fmt.Sprintf("offset=%d", offs[len(offs)-1])) {
				t.Fatalf("recovery not logged with its offset: %s", logs)
			}
			// The log is usable again: write, reopen, nothing lost, no warning.
			put(t, s, "after", "x")
			want := snapshot(t, s)
			s.Close()
			s2, logs2 := openTest(t, EmbeddedConfig{Dir: dir})
			if got := snapshot(t, s2); !slices.Equal(got, want) {
				t.Fatalf("after recovery and a write, reopen gives %q, want %q", got, want)
			}
			if strings.Contains(logs2.String(), "level=WARN") {
				t.Fatalf("second reopen warned: %s", logs2)
			}
		})
	}
}

func TestEmbeddedRefusesCorruptLog(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		record int // which record to damage
		damage func(t *testing.T, path string, off int64, offs []int64)
		reason string
		at     func(offs []int64) int64 // where the damage is found; default offs[record]
		kept   int                      // records before it; default record
	}{
		{"payload_byte_flipped", 2, func(t *testing.T, path string, off int64, _ []int64) { flip(t, path, off+recordHeaderSize+25) }, "record checksum mismatch", nil, 0},
		{"length_field_flipped", 2, func(t *testing.T, path string, off int64, _ []int64) { flip(t, path, off+1) }, "header checksum mismatch", nil, 0},
		{"length_field_zeroed", 1, func(t *testing.T, path string, off int64, _ []int64) {
			writeAt(t, path, off, make([]byte, recordHeaderSize))
		}, "header checksum mismatch", nil, 0},
		{"first_record", 0, func(t *testing.T, path string, off int64, _ []int64) { flip(t, path, off+recordHeaderSize) }, "record checksum mismatch", nil, 0},
		{"records_out_of_order", 1, func(t *testing.T, path string, off int64, offs []int64) {
			// Two intact records swapped: every checksum holds, the
			// revisions do not.
			b, _ := os.ReadFile(path)
			r1, r2 := slices.Clone(b[offs[1]:offs[2]]), slices.Clone(b[offs[2]:offs[3]])
			writeAt(t, path, offs[1], append(r2, r1...))
		}, "does not follow revision", func(offs []int64) int64 { return offs[1] + offs[3] - offs[2] }, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			fillStore(t, dir, 5)
			path := filepath.Join(dir, logFileName)
			offs := recordOffsets(t, path)
			tc.damage(t, path, offs[tc.record], offs)
			damaged, _ := os.ReadFile(path)

			_, err := OpenEmbedded(EmbeddedConfig{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("open of a damaged log: %v, want a *CorruptError", err)
			}
			wantOff, kept := offs[tc.record], tc.record
			if tc.at != nil {
				wantOff, kept = tc.at(offs), tc.kept
			}
			if ce.Offset != wantOff || ce.Path != path || !strings.Contains(ce.Reason, tc.reason) {
				t.Fatalf("got %+v, want offset %d, path %s, reason %q", ce, wantOff, path, tc.reason)
			}
			if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("offset %d", ce.Offset)) || !strings.Contains(msg, path) {
				t.Fatalf("message does not name the file and offset: %s", msg)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, damaged) {
				t.Fatal("a refused open changed the log")
			}
			// The lock was released: once repaired, it opens.
			truncate(t, path, ce.Offset)
			s, _ := openTest(t, EmbeddedConfig{Dir: dir})
			if got := len(snapshot(t, s)); got != kept {
				t.Fatalf("after truncating at the damage %d items, want %d", got, kept)
			}
		})
	}
	t.Run("not_a_log", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, logFileName), []byte("hello, world\n"), 0o600)
		_, err := OpenEmbedded(EmbeddedConfig{Dir: dir})
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Offset != 0 {
			t.Fatalf("got %v", err)
		}
	})
}

func TestEmbeddedLocksDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := openTest(t, EmbeddedConfig{Dir: dir})
	_, err := OpenEmbedded(EmbeddedConfig{Dir: dir})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second open in the same process: %v", err)
	}

	// Another process is refused too.
	cmd := exec.Command(os.Args[0], "-test.run=^TestEmbeddedLockHelperProcess$")
	cmd.Env = append(os.Environ(), "TETHER_STATE_LOCK_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "LOCKED") {
		t.Fatalf("helper process: %v\n%s", err, out)
	}

	s.Close()
	s2, _ := openTest(t, EmbeddedConfig{Dir: dir})
	put(t, s2, "k", "v")
}

// TestEmbeddedLockHelperProcess is the other process of
// TestEmbeddedLocksDirectory; on its own it does nothing.
func TestEmbeddedLockHelperProcess(t *testing.T) {
	dir := os.Getenv("TETHER_STATE_LOCK_DIR")
	if dir == "" {
		return
	}
	_, err := OpenEmbedded(EmbeddedConfig{Dir: dir})
	if errors.Is(err, ErrLocked) {
		fmt.Println("LOCKED")
		return
	}
	t.Fatalf("open in a second process: %v", err)
}

func TestEmbeddedCompaction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	const minSize = 64 << 10
	s, logs := openTest(t, EmbeddedConfig{Dir: dir, CompactMinSize: minSize})
	val := strings.Repeat("x", 200)
	for i := range 2000 {
		put(t, s, fmt.Sprintf("hot/%d", i%5), fmt.Sprintf("%d:%s", i, val))
	}
	put(t, s, "cold", "kept")
	put(t, s, "last", "deleted")
	if err := s.Delete(ctx, "last"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, logFileName)
	info, _ := os.Stat(path)
	if info.Size() > 3*minSize {
		t.Fatalf("log is %d bytes after 2000 overwrites of 5 keys; compaction did not run", info.Size())
	}
	if !strings.Contains(logs.String(), "compacted the log") {
		t.Fatalf("no compaction logged: %s", logs)
	}
	before := snapshot(t, s)
	lastRev := s.rev
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, compactFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("compaction left its temporary file: %v", err)
	}

	// A compaction interrupted before its rename leaves a temporary file;
	// the next open discards it.
	os.WriteFile(filepath.Join(dir, compactFileName), []byte("half-written"), 0o600)
	s2, _ := openTest(t, EmbeddedConfig{Dir: dir, CompactMinSize: minSize})
	if got := snapshot(t, s2); !slices.Equal(got, before) {
		t.Fatalf("after compaction and reopen %q, want %q", got, before)
	}
	// Compaction dropped the delete record; the revision mark kept its number.
	if it := put(t, s2, "next", "x"); it.Revision != lastRev+1 {
		t.Fatalf("revision after compacted reopen %d, want %d", it.Revision, lastRev+1)
	}
}

func TestEmbeddedDropsExpiredOnReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := openTest(t, EmbeddedConfig{Dir: dir})
	exp := time.Now().Add(100 * time.Millisecond)
	if _, err := s.Put(context.Background(), Item{Key: "hb", Value: []byte("x"), Expires: exp}); err != nil {
		t.Fatal(err)
	}
	put(t, s, "keep", "x")
	s.Close()
	for time.Now().Before(exp.Add(time.Millisecond)) {
		time.Sleep(10 * time.Millisecond) // the clock has to pass exp
	}
	s2, _ := openTest(t, EmbeddedConfig{Dir: dir})
	if got := snapshot(t, s2); len(got) != 1 || !strings.HasPrefix(got[0], "keep=") {
		t.Fatalf("after reopen past the expiry: %q", got)
	}
	if len(s2.items) != 1 {
		t.Fatalf("expired item still held in memory")
	}
}

func TestEmbeddedSweepsExpired(t *testing.T) {
	t.Parallel()
	s, _ := openTest(t, EmbeddedConfig{Dir: t.TempDir(), SweepInterval: 10 * time.Millisecond})
	for i := range 10 {
		if _, err := s.Put(context.Background(), Item{Key: fmt.Sprint(i), Value: []byte("x"), Expires: time.Now().Add(50 * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		n, live := len(s.items), s.liveBytes
		s.mu.Unlock()
		if n == 0 && live == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d expired items (%d bytes) still in memory", n, live)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEmbeddedRefusesWritesAfterFailedWrite(t *testing.T) {
	t.Parallel()
	s, _ := openTest(t, EmbeddedConfig{Dir: t.TempDir()})
	put(t, s, "a", "1")
	s.mu.Lock()
	s.file.Close() // the next write fails as a full or failing disk would
	s.mu.Unlock()
	if _, err := s.Put(context.Background(), Item{Key: "b", Value: []byte("2")}); err == nil || !strings.Contains(err.Error(), "accepts no more writes") {
		t.Fatalf("write on a broken log: %v", err)
	}
	if _, err := s.Put(context.Background(), Item{Key: "c", Value: []byte("3")}); err == nil {
		t.Fatal("a later write succeeded")
	}
	if got := snapshot(t, s); len(got) != 1 {
		t.Fatalf("reads after the failure: %q", got)
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeAt(t, path, off, []byte{b[off] ^ 0x40})
}

func writeAt(t *testing.T, path string, off int64, p []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
}

func appendBytes(t *testing.T, path string, p []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(p)
}
