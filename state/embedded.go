package state

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults of EmbeddedConfig.
const (
	DefaultCompactMinSize = 8 << 20
	DefaultSweepInterval  = time.Second
)

const (
	logFileName     = "state.log"
	compactFileName = "state.log.compact"
)

// EmbeddedConfig configures OpenEmbedded. Only Dir is required.
type EmbeddedConfig struct {
	// Dir holds the log (state.log) and the lock file (LOCK). It is created
	// with mode 0700 if missing.
	Dir string
	// Logger receives recovery and compaction messages; nil means slog.Default().
	Logger *slog.Logger
	// CompactMinSize is the log size below which the log is never
	// compacted; above it, the log is rewritten once it is more than twice
	// the size of the live data. Default DefaultCompactMinSize.
	CompactMinSize int64
	// SweepInterval is how often expired items are dropped from memory.
	// (They are invisible from the moment they expire either way.) Default
	// DefaultSweepInterval.
	SweepInterval time.Duration
	// WatchBuffer is each watcher's event buffer. Default DefaultWatchBuffer.
	WatchBuffer int
}

// Embedded is the single-process Store: all items in memory, every write
// appended to a log file and synced before it returns. See the package
// documentation for the file format and recovery rules.
type Embedded struct {
	cfg     EmbeddedConfig
	log     *slog.Logger
	path    string
	lock    *os.File
	fan     *fanout
	stop    chan struct{}
	stopped chan struct{}

	mu        sync.Mutex
	items     map[string]*Item
	rev       int64
	file      *os.File // opened O_APPEND
	size      int64    // bytes in the log
	liveBytes int64    // bytes the live items would take in a compacted log
	compactAt int64    // do not try compacting again below this size
	buf       []byte
	failed    error // set after a failed write; no writes after it
	closed    bool
}

var _ Store = (*Embedded)(nil)

// OpenEmbedded opens (or creates) the store in cfg.Dir: it locks the
// directory, replays the log, drops a torn last record left by a crash (and
// logs it), and refuses to open a log damaged anywhere else (*CorruptError).
func OpenEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("%w: EmbeddedConfig.Dir is empty", ErrInvalid)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CompactMinSize <= 0 {
		cfg.CompactMinSize = DefaultCompactMinSize
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = DefaultSweepInterval
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("state: creating data directory: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	s := &Embedded{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "state", "dir", cfg.Dir),
		path:    filepath.Join(cfg.Dir, logFileName),
		lock:    lock,
		fan:     newFanout(cfg.WatchBuffer),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
		items:   make(map[string]*Item),
	}
	if err := s.load(); err != nil {
		unlockDir(lock)
		return nil, err
	}
	go s.sweep()
	return s, nil
}

// load replays the log into memory and opens it for appending.
func (s *Embedded) load() error {
	// A leftover from a compaction that crashed before its rename; the log
	// it was meant to replace is still complete.
	if err := os.Remove(filepath.Join(s.cfg.Dir, compactFileName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state: removing unfinished compaction: %w", err)
	}
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return s.rewriteLocked()
	}
	if err != nil {
		return fmt.Errorf("state: opening log: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("state: opening log: %w", err)
	}
	good, torn, err := readLog(bufio.NewReaderSize(f, 1<<16), s.path, info.Size(), s.replay)
	if err != nil {
		return err
	}
	if torn != nil {
		s.log.Warn("state: dropped an incomplete last record left by a crash mid-write",
			"log", s.path, "offset", torn.Offset, "bytes", torn.Bytes, "reason", torn.Reason)
		if err := f.Truncate(good); err != nil {
			return fmt.Errorf("state: truncating torn record at offset %d of %s: %w", good, s.path, err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("state: syncing %s after truncation: %w", s.path, err)
		}
	}
	now := time.Now()
	for k, it := range s.items {
		if it.expired(now) {
			delete(s.items, k)
		}
	}
	s.liveBytes = 0
	for _, it := range s.items {
		s.liveBytes += int64(itemRecord(*it).encodedSize())
	}
	app, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("state: opening log for writing: %w", err)
	}
	s.file, s.size = app, good
	s.maybeCompactLocked()
	return nil
}

// replay applies one record read at open.
func (s *Embedded) replay(rec record, off int64) error {
	if rec.revision < s.rev || (rec.revision == s.rev && rec.op != opRevision) {
		return &CorruptError{Path: s.path, Offset: off, Reason: fmt.Sprintf("revision %d does not follow revision %d", rec.revision, s.rev)}
	}
	s.rev = rec.revision
	switch rec.op {
	case opPut:
		s.items[rec.key] = &Item{Key: rec.key, Value: rec.value, Revision: rec.revision, Expires: millisExpires(rec.expires)}
	case opDelete:
		delete(s.items, rec.key)
	}
	return nil
}

func itemRecord(it Item) record {
	return record{op: opPut, revision: it.Revision, expires: expiresMillis(it.Expires), key: it.Key, value: it.Value}
}

// Get implements Store.
func (s *Embedded) Get(ctx context.Context, key string) (Item, error) {
	if err := ctx.Err(); err != nil {
		return Item{}, err
	}
	if err := checkKey(key); err != nil {
		return Item{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Item{}, ErrClosed
	}
	it := s.liveLocked(key, time.Now())
	if it == nil {
		return Item{}, fmt.Errorf("getting %q: %w", key, ErrNotFound)
	}
	return cloneItem(*it), nil
}

// Put implements Store.
func (s *Embedded) Put(ctx context.Context, item Item) (Item, error) {
	return s.write(ctx, item, func(*Item) error { return nil })
}

// Create implements Store.
func (s *Embedded) Create(ctx context.Context, item Item) (Item, error) {
	return s.write(ctx, item, func(cur *Item) error {
		if cur != nil {
			return fmt.Errorf("creating %q: %w", item.Key, ErrAlreadyExists)
		}
		return nil
	})
}

// CompareAndSwap implements Store.
func (s *Embedded) CompareAndSwap(ctx context.Context, expected, replacement Item) (Item, error) {
	if err := checkPair(expected, replacement); err != nil {
		return Item{}, err
	}
	return s.write(ctx, replacement, func(cur *Item) error {
		return casCheck(expected, cur)
	})
}

// casCheck applies CompareAndSwap's rule to the current item (nil if none).
func casCheck(expected Item, cur *Item) error {
	switch {
	case expected.Revision == 0 && cur != nil:
		return fmt.Errorf("compare-and-swap of %q expecting no item: %w", expected.Key, ErrAlreadyExists)
	case expected.Revision == 0:
		return nil
	case cur == nil:
		return fmt.Errorf("compare-and-swap of %q at revision %d: item is gone: %w: %w", expected.Key, expected.Revision, ErrConflict, ErrNotFound)
	case cur.Revision != expected.Revision:
		return fmt.Errorf("compare-and-swap of %q: expected revision %d, found %d: %w", expected.Key, expected.Revision, cur.Revision, ErrConflict)
	}
	return nil
}

// write validates item, runs check on the current item under the lock, and
// appends the put.
func (s *Embedded) write(ctx context.Context, item Item, check func(cur *Item) error) (Item, error) {
	if err := ctx.Err(); err != nil {
		return Item{}, err
	}
	now := time.Now()
	it, err := checkItem(item, now)
	if err != nil {
		return Item{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writableLocked(); err != nil {
		return Item{}, err
	}
	cur := s.liveLocked(it.Key, now)
	if err := check(cur); err != nil {
		return Item{}, err
	}
	it.Revision = s.rev + 1
	if err := s.appendLocked(itemRecord(it)); err != nil {
		return Item{}, err
	}
	s.rev = it.Revision
	if cur != nil {
		s.liveBytes -= int64(itemRecord(*cur).encodedSize())
	}
	s.liveBytes += int64(itemRecord(it).encodedSize())
	s.items[it.Key] = &it
	s.fan.publish(Event{Type: EventPut, Item: it})
	s.maybeCompactLocked()
	return cloneItem(it), nil
}

// Delete implements Store.
func (s *Embedded) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writableLocked(); err != nil {
		return err
	}
	cur := s.liveLocked(key, time.Now())
	if cur == nil {
		return fmt.Errorf("deleting %q: %w", key, ErrNotFound)
	}
	rec := record{op: opDelete, revision: s.rev + 1, key: key}
	if err := s.appendLocked(rec); err != nil {
		return err
	}
	s.rev = rec.revision
	s.liveBytes -= int64(itemRecord(*cur).encodedSize())
	delete(s.items, key)
	s.fan.publish(Event{Type: EventDelete, Item: Item{Key: key, Revision: rec.revision}})
	s.maybeCompactLocked()
	return nil
}

// List implements Store.
func (s *Embedded) List(ctx context.Context, prefix string) ([]Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	now := time.Now()
	var out []Item
	for k, it := range s.items {
		if strings.HasPrefix(k, prefix) && !it.expired(now) {
			out = append(out, cloneItem(*it))
		}
	}
	slices.SortFunc(out, func(a, b Item) int { return cmp.Compare(a.Key, b.Key) })
	return out, nil
}

// Watch implements Store. Watchers are served in-process, in the order the
// writes were applied.
func (s *Embedded) Watch(ctx context.Context, prefix string) (Watcher, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	return s.fan.add(ctx, prefix, false)
}

// Close implements Store: it ends the watchers, closes the log and releases
// the directory lock.
func (s *Embedded) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.stopped
	s.fan.close()
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.file.Close()
	if uerr := unlockDir(s.lock); err == nil {
		err = uerr
	}
	return err
}

// liveLocked returns the live item under key, dropping it if expired.
func (s *Embedded) liveLocked(key string, now time.Time) *Item {
	it, ok := s.items[key]
	if !ok {
		return nil
	}
	if it.expired(now) {
		s.dropLocked(it)
		return nil
	}
	return it
}

func (s *Embedded) dropLocked(it *Item) {
	s.liveBytes -= int64(itemRecord(*it).encodedSize())
	delete(s.items, it.Key)
}

func (s *Embedded) writableLocked() error {
	if s.closed {
		return ErrClosed
	}
	return s.failed
}

// appendLocked writes rec to the log and syncs it. A failure leaves the
// store refusing writes: after a failed fsync the kernel may have dropped
// the data, so nothing later can be trusted to follow it on disk.
func (s *Embedded) appendLocked(rec record) error {
	s.buf = appendRecord(s.buf[:0], rec)
	if _, err := s.file.Write(s.buf); err != nil {
		return s.failLocked("writing", err)
	}
	if err := s.file.Sync(); err != nil {
		return s.failLocked("syncing", err)
	}
	s.size += int64(len(s.buf))
	if cap(s.buf) > 1<<20 {
		s.buf = nil
	}
	return nil
}

func (s *Embedded) failLocked(doing string, err error) error {
	// Best effort: cut what may have been half-written, so a restart does
	// not find damage in the middle of the log.
	if terr := s.file.Truncate(s.size); terr == nil {
		_ = s.file.Sync()
	}
	s.failed = fmt.Errorf("state: %s log %s failed (%w); the store accepts no more writes: fix the disk and restart", doing, s.path, err)
	s.log.Error("state: log write failed", "log", s.path, "err", err)
	return s.failed
}

// maybeCompactLocked rewrites the log when dead records dominate it.
func (s *Embedded) maybeCompactLocked() {
	if s.size < s.cfg.CompactMinSize || s.size < 2*s.liveBytes || s.size < s.compactAt {
		return
	}
	before := s.size
	if err := s.rewriteLocked(); err != nil {
		s.compactAt = s.size + s.cfg.CompactMinSize
		s.log.Error("state: compacting the log failed; will retry after it grows", "log", s.path, "err", err)
		return
	}
	s.log.Debug("state: compacted the log", "log", s.path, "before", before, "after", s.size)
}

// rewriteLocked writes the live items to a new log, syncs it, and renames it
// over the old one, then appends to it.
func (s *Embedded) rewriteLocked() error {
	now := time.Now()
	live := make([]*Item, 0, len(s.items))
	for _, it := range s.items {
		if it.expired(now) {
			s.dropLocked(it)
			continue
		}
		live = append(live, it)
	}
	slices.SortFunc(live, func(a, b *Item) int { return cmp.Compare(a.Revision, b.Revision) })

	tmp := filepath.Join(s.cfg.Dir, compactFileName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("state: creating %s: %w", tmp, err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return err
	}
	w := bufio.NewWriterSize(f, 1<<16)
	size := int64(len(logMagic))
	w.WriteString(logMagic)
	var buf []byte
	for _, it := range live {
		buf = appendRecord(buf[:0], itemRecord(*it))
		w.Write(buf)
		size += int64(len(buf))
	}
	if s.rev > 0 {
		buf = appendRecord(buf[:0], record{op: opRevision, revision: s.rev})
		w.Write(buf)
		size += int64(len(buf))
	}
	if err := w.Flush(); err != nil {
		return fail(fmt.Errorf("state: writing %s: %w", tmp, err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("state: syncing %s: %w", tmp, err))
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fail(fmt.Errorf("state: renaming %s: %w", tmp, err))
	}
	if err := syncDir(s.cfg.Dir); err != nil {
		// The rename happened; only its durability is in doubt. Either log
		// holds every record, so carry on with the new one.
		s.log.Warn("state: syncing the data directory after compaction failed", "err", err)
	}
	if s.file != nil {
		s.file.Close()
	}
	s.file, s.size = f, size
	s.liveBytes = size - int64(len(logMagic))
	s.compactAt = 0
	return nil
}

// sweep drops expired items from memory until Close.
func (s *Embedded) sweep() {
	defer close(s.stopped)
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		s.mu.Lock()
		for _, it := range s.items {
			if it.expired(now) {
				s.dropLocked(it)
			}
		}
		s.mu.Unlock()
	}
}
