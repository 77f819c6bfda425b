package decisionlog

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Sink is one destination of a Logger's events: "file", "console" or
// "http". Its counters only grow; they are safe to read at any time, for
// example by a Prometheus collector.
type Sink struct {
	name string
	w    sinkWriter
	log  *slog.Logger

	encode func(*record) ([]byte, error)
	queue  chan *record // the bounded buffer Log fills; closed by Close
	spool  *spool       // nil without Config.SpoolDir

	bufferSize         int
	maxBatchEvents     int
	maxBatchBytes      int
	minDelay, maxDelay time.Duration // 0: send a partial batch as soon as the writer is idle
	flushEvery         time.Duration
	minRetry, maxRetry time.Duration

	delivered, spooled, dropped atomic.Uint64
	stalled                     atomic.Bool // memory is full and cannot spill: the drainer stopped reading the queue

	// The drainer hands the delivery goroutine one job at a time.
	jobs       chan job       // capacity 1, so a send to an idle worker never blocks
	results    chan jobResult // capacity 1
	workCtx    context.Context
	workCancel context.CancelFunc
	workDone   chan struct{}

	abort      chan struct{} // closed when Close's context is done
	abortCause error         // set before abort is closed
	done       chan struct{} // closed when the drainer has stopped
	err        error         // set before done is closed
}

// sinkWriter is what a Sink delivers to. Only the sink's delivery goroutine
// calls it, one call at a time.
type sinkWriter interface {
	// deliver writes events, each one JSON document, in order, and returns
	// how many of them were delivered before an error.
	deliver(ctx context.Context, events [][]byte) (int, error)
	// sync makes delivered events durable (fsync for a file).
	sync() error
	// close releases the writer after a last sync.
	close() error
}

type job struct {
	sync   bool
	events [][]byte
}

type jobResult struct {
	sync bool
	n    int
	err  error
}

// Name returns the sink's name: "file", "console" or "http".
func (s *Sink) Name() string { return s.name }

// Delivered returns how many events the destination has acknowledged: written
// to the file or the console writer, or accepted with a 2xx answer.
func (s *Sink) Delivered() uint64 { return s.delivered.Load() }

// Spooled returns how many events were written to the on-disk spool because
// the destination could not take them yet.
func (s *Sink) Spooled() uint64 { return s.spooled.Load() }

// Dropped returns how many events this sink lost: logged while both the
// memory buffer and the spool were full, logged after Close, left over by a
// Close whose context ended with no spool to keep them, or impossible to
// encode as JSON. Every other event is delivered, or waits in the spool.
func (s *Sink) Dropped() uint64 { return s.dropped.Load() }

// work is the delivery goroutine: it runs jobs until jobs is closed.
func (s *Sink) work() {
	defer close(s.workDone)
	for j := range s.jobs {
		if j.sync {
			s.results <- jobResult{sync: true, err: s.w.sync()}
			continue
		}
		n, err := s.w.deliver(s.workCtx, j.events)
		s.results <- jobResult{n: n, err: err}
	}
}
