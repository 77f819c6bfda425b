package decisionlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Logger masks decision events and ships them to its sinks. Its methods are
// safe for concurrent use.
type Logger struct {
	labels map[string]string
	masks  []mask
	sinks  []*Sink

	mu     sync.RWMutex // Log holds it shared to send; Close exclusively to close the queues
	closed bool

	closeOnce sync.Once
	closeErr  error
}

// record is one logged event, shared by the sinks: the first sink to need
// its JSON masks and encodes it, the others reuse the result.
type record struct {
	ev    Event
	audit *AuditEvent // set for an audit event, which ev then is not
	once  sync.Once
	id    string
	line  []byte
	err   error
}

// New returns a Logger that delivers to the sinks cfg configures, and
// starts delivering what a previous Logger left in cfg.SpoolDir.
func New(cfg Config) (*Logger, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("configuring decision log: %w", err)
	}
	rules := cfg.Masks
	if !cfg.NoDefaultMasks {
		rules = append(DefaultMasks(), cfg.Masks...)
	}
	masks, err := compileMasks(rules)
	if err != nil {
		return nil, fmt.Errorf("configuring decision log masks: %w", err)
	}
	l := &Logger{labels: cfg.labels(), masks: masks}

	type dest struct {
		name               string
		w                  sinkWriter
		batchBytes         int
		minDelay, maxDelay time.Duration
	}
	var dests []dest
	closeAll := func() {
		for _, d := range dests {
			_ = d.w.close()
		}
	}
	if cfg.FilePath != "" {
		w, err := openFileSink(cfg.FilePath)
		if err != nil {
			return nil, err
		}
		dests = append(dests, dest{name: "file", w: w, batchBytes: 1 << 20})
	}
	if cfg.Console != nil {
		dests = append(dests, dest{name: "console", w: &consoleSink{w: cfg.Console}, batchBytes: 1 << 20})
	}
	if cfg.Upload.URL != "" {
		if cfg.Upload.Token != "" && strings.HasPrefix(cfg.Upload.URL, "http:") {
			cfg.Logger.Warn("decision log: the upload token is sent over plain http; use https", "url", redactURL(cfg.Upload.URL))
		}
		// Batches are cut by uncompressed size; JSON events compress
		// several times over, and the sink splits a batch whose body
		// would exceed the limit.
		dests = append(dests, dest{name: "http", w: newHTTPSink(cfg), batchBytes: 4 * cfg.Upload.SizeLimitBytes,
			minDelay: cfg.Upload.MinDelay, maxDelay: cfg.Upload.MaxDelay})
	}

	for _, d := range dests {
		s := &Sink{
			name:           d.name,
			w:              d.w,
			log:            cfg.Logger,
			encode:         l.encode,
			queue:          make(chan *record, cfg.BufferSize),
			bufferSize:     cfg.BufferSize,
			maxBatchEvents: max(1, cfg.BufferSize/4),
			maxBatchBytes:  d.batchBytes,
			minDelay:       d.minDelay,
			maxDelay:       d.maxDelay,
			flushEvery:     cfg.FlushInterval,
			minRetry:       cfg.MinRetryDelay,
			maxRetry:       cfg.MaxRetryDelay,
			jobs:           make(chan job, 1),
			results:        make(chan jobResult, 1),
			workDone:       make(chan struct{}),
			abort:          make(chan struct{}),
			done:           make(chan struct{}),
		}
		if cfg.SpoolDir != "" {
			sp, err := openSpool(filepath.Join(cfg.SpoolDir, d.name), cfg.MaxSpoolBytes)
			if err != nil {
				closeAll()
				return nil, fmt.Errorf("opening decision log spool for sink %q: %w", d.name, err)
			}
			s.spool = sp
		}
		l.sinks = append(l.sinks, s)
	}
	for _, s := range l.sinks {
		s.workCtx, s.workCancel = context.WithCancel(context.Background())
		go s.run()
	}
	return l, nil
}

// Log queues ev for every sink and returns at once: it never waits and never
// does I/O. A sink whose queue is full drops ev and counts it (see
// Sink.Dropped); so does every sink once the Logger is closed.
//
// Log takes over ev's Input, Result, Metrics and Bundles: it never modifies
// them, but the caller must not modify them after the call. A zero
// Timestamp becomes the time of the call.
func (l *Logger) Log(ev Event) {
	if ev.Timestamp.IsZero() {
		ev.Timestamp = time.Now()
	}
	l.enqueue(&record{ev: ev})
}

// enqueue hands r to every sink's queue, or counts it dropped.
func (l *Logger) enqueue(r *record) {
	l.mu.RLock()
	for _, s := range l.sinks {
		if l.closed {
			s.dropped.Add(1)
			continue
		}
		select {
		case s.queue <- r:
		default:
			s.dropped.Add(1)
		}
	}
	l.mu.RUnlock()
}

// encode masks and encodes r once, on the goroutine of the first sink that
// needs it.
func (l *Logger) encode(r *record) ([]byte, error) {
	r.once.Do(func() {
		if r.audit != nil {
			ev := *r.audit
			r.audit = nil
			r.id, r.line, r.err = l.encodeAudit(ev)
			return
		}
		ev := r.ev
		r.ev = Event{} // let the caller's values go once encoded
		if ev.DecisionID == "" {
			ev.DecisionID = newUUID()
		}
		r.id = ev.DecisionID
		if len(ev.Labels) == 0 {
			ev.Labels = l.labels
		} else {
			merged := maps.Clone(ev.Labels)
			maps.Copy(merged, l.labels)
			ev.Labels = merged
		}
		ev = applyMasks(ev, l.masks)
		ev.Timestamp = ev.Timestamp.UTC()
		r.line, r.err = json.Marshal(eventJSON(ev))
	})
	return r.line, r.err
}

// Dropped returns how many events (decisions and audit events) all sinks together
// dropped: the one number to alert on.
func (l *Logger) Dropped() uint64 {
	var n uint64
	for _, s := range l.sinks {
		n += s.Dropped()
	}
	return n
}

// Sinks returns the Logger's sinks, in the order file, console, http, for
// their counters.
func (l *Logger) Sinks() []*Sink {
	return append([]*Sink(nil), l.sinks...)
}

// Close stops taking events and delivers the ones it has, the spooled ones
// included, until ctx is done. Then it stops any delivery in flight and
// writes the events still in memory to the spool, for the next Logger on the
// same SpoolDir; without a spool they are dropped and counted. It returns nil
// when everything was delivered, and otherwise an error, wrapping ctx.Err(),
// that says how much was left in the spool and how much was dropped. Close
// may be called more than once; later calls return the first call's result.
func (l *Logger) Close(ctx context.Context) error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		for _, s := range l.sinks {
			close(s.queue)
		}
		l.mu.Unlock()

		stop := context.AfterFunc(ctx, func() {
			for _, s := range l.sinks {
				s.abortCause = ctx.Err()
				close(s.abort)
			}
		})
		var errs []error
		for _, s := range l.sinks {
			<-s.done
			if s.err != nil {
				errs = append(errs, s.err)
			}
		}
		stop()
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}
