package decisionlog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// The drainer is the one goroutine that owns a sink's state. It moves events
// from the queue into batches and batches to the delivery goroutine, the
// spool, or (when everything is full) nowhere, in which case they are counted.
//
// Every batch gets a sequence number when it is started; a spool segment is
// named by its batch's number, and the next batch to deliver is always the
// lowest-numbered one in memory or in the spool. So events are delivered in
// the order Log queued them wherever their batch waited, and a restart
// continues numbering after the highest segment it finds.
//
// States of a batch:
//
//	forming ──seal──▶ pending ──dispatch──▶ inflight ──2xx/written──▶ delivered
//	                    │  ▲                  │  ▲
//	               spill│  │dispatch   failure│  │retry after backoff
//	                    ▼  │                  ▼  │
//	                   spool ◀────────────── (copy spilled while failing)
//
// Batches are spilled to the spool while the sink is failing, or when the
// events in memory reach BufferSize. When the spool is full too, the drainer
// stops taking events from the queue; the queue fills, and Log drops new
// events and counts them.
type drainer struct {
	s *Sink

	nextSeq   uint64
	forming   *batch   // started, not yet full or due
	pending   []*batch // sealed, in memory, by seq
	memEvents int      // events in forming and pending
	inflight  *batch   // the batch being delivered or waiting to be retried

	busy    bool // the delivery goroutine has a job
	failing bool // the last delivery attempt failed
	attempt int  // consecutive failed attempts
	dirty   bool // delivered since the last sync
	syncDue bool
	closing bool // the queue is closed and empty

	sealC  <-chan time.Time // when the forming batch is due
	retryC <-chan time.Time // when the inflight batch may be retried

	spoolWarned   bool
	reportedDrops uint64
}

type batch struct {
	seq    uint64
	events [][]byte
	bytes  int
	onDisk bool // the spool segment seq holds exactly these events
}

// run is the drainer goroutine.
func (s *Sink) run() {
	defer close(s.done)
	go s.work()
	d := &drainer{s: s, nextSeq: 1}
	if s.spool != nil {
		d.nextSeq = s.spool.lastSeq() + 1
		if n := len(s.spool.segs); n > 0 {
			s.log.Info("decision log: delivering spooled batches", "sink", s.name, "segments", n, "bytes", s.spool.bytes)
		}
	}
	tick := time.NewTicker(s.flushEvery)
	defer tick.Stop()
	for {
		d.dispatch()
		if d.closing && d.empty() {
			s.err = d.finish()
			return
		}
		var in <-chan *record
		if !d.closing && d.memEvents < s.bufferSize {
			in = s.queue
		}
		if full := in == nil && !d.closing; full != s.stalled.Load() {
			s.stalled.Store(full)
			if full {
				s.log.Warn("decision log: sink is behind and its memory buffer is full (and its spool, if any); new events are dropped once its queue is full too", "sink", s.name, "buffer_size", s.bufferSize)
			}
		}
		select {
		case r, ok := <-in:
			if !ok {
				d.closing = true
				d.seal()
				continue
			}
			d.add(r)
		case res := <-s.results:
			d.handle(res)
		case <-d.sealC:
			d.seal()
		case <-d.retryC:
			d.retryC = nil
		case <-tick.C:
			d.syncDue = true
			d.reportDrops()
		case <-s.abort:
			s.err = d.abort()
			return
		}
	}
}

// add puts one event in the forming batch.
func (d *drainer) add(r *record) {
	s := d.s
	line, err := s.encode(r)
	if err != nil {
		s.dropped.Add(1)
		s.log.Error("decision log: dropping an event that cannot be encoded as JSON", "sink", s.name, "decision_id", r.id, "error", err)
		return
	}
	if d.forming == nil {
		d.forming = &batch{seq: d.nextSeq}
		d.nextSeq++
		if s.maxDelay > 0 {
			d.sealC = time.After(s.minDelay + rand.N(s.maxDelay-s.minDelay+1))
		}
	}
	b := d.forming
	b.events = append(b.events, line)
	b.bytes += len(line)
	d.memEvents++
	if len(b.events) >= s.maxBatchEvents || b.bytes >= s.maxBatchBytes {
		d.seal()
	}
}

// seal moves the forming batch to pending.
func (d *drainer) seal() {
	d.sealC = nil
	if d.forming == nil {
		return
	}
	d.pending = append(d.pending, d.forming)
	d.forming = nil
	d.rebalance()
}

// rebalance moves batches from memory to the spool: while the sink is
// failing (so that a crash loses as little as possible), or when memory holds
// BufferSize events. All pending batches go into one segment, numbered as the
// first of them, so that one fsync covers them. That keeps the order: pending
// batches are always numbered above every segment, because batches are
// numbered as they start and the spool only ever takes all of pending, or the
// inflight batch, which is below all of pending.
func (d *drainer) rebalance() {
	if d.s.spool == nil {
		return
	}
	if d.failing && d.inflight != nil && !d.inflight.onDisk && d.spill(d.inflight) {
		d.inflight.onDisk = true
	}
	if len(d.pending) == 0 || !d.failing && d.memEvents < d.s.bufferSize {
		return
	}
	all := mergeBatches(d.pending)
	if d.spill(all) {
		d.pending = nil
		d.memEvents -= len(all.events)
	}
}

// mergeBatches returns one batch holding the events of bs, numbered as bs[0].
func mergeBatches(bs []*batch) *batch {
	if len(bs) == 1 {
		return bs[0]
	}
	m := &batch{seq: bs[0].seq}
	for _, b := range bs {
		m.events = append(m.events, b.events...)
		m.bytes += b.bytes
	}
	return m
}

func (d *drainer) spill(b *batch) bool {
	s := d.s
	if err := s.spool.write(b.seq, b.events); err != nil {
		if !d.spoolWarned {
			d.spoolWarned = true
			s.log.Warn("decision log: cannot spool events; holding them in memory, and dropping new ones once memory is full", "sink", s.name, "spool_bytes", s.spool.bytes, "max_spool_bytes", s.spool.max, "error", err)
		}
		return false
	}
	d.spoolWarned = false
	s.spooled.Add(uint64(len(b.events)))
	return true
}

// dispatch gives the idle delivery goroutine its next job.
func (d *drainer) dispatch() {
	s := d.s
	if d.busy {
		return
	}
	if d.inflight == nil {
		d.next()
	}
	switch {
	case d.syncDue && d.dirty:
		// Before the next batch: under constant load there always is
		// one, and the file must still be synced every FlushInterval.
		s.jobs <- job{sync: true}
		d.busy = true
		d.syncDue, d.dirty = false, false
	case d.inflight != nil && d.retryC == nil:
		s.jobs <- job{events: d.inflight.events}
		d.busy = true
	}
}

// next makes the lowest-numbered batch in memory or in the spool inflight.
func (d *drainer) next() {
	s := d.s
	for {
		var spoolSeq uint64
		var inSpool bool
		if s.spool != nil {
			spoolSeq, inSpool = s.spool.head()
		}
		if len(d.pending) == 0 && !inSpool {
			if d.forming == nil || s.maxDelay > 0 {
				return
			}
			// The writer is idle: rather than wait for a batch to
			// fill, give it what there is.
			d.seal()
			continue
		}
		if len(d.pending) > 0 && (!inSpool || d.pending[0].seq < spoolSeq) {
			b := d.pending[0]
			d.pending = d.pending[1:]
			d.memEvents -= len(b.events)
			d.inflight = b
			return
		}
		events, err := s.spool.read(spoolSeq)
		b := &batch{seq: spoolSeq, events: events, onDisk: err == nil}
		for _, e := range events {
			b.bytes += len(e)
		}
		if err != nil {
			// Deliver what is readable, and keep the file for an
			// operator, out of the spool: a segment that cannot be read
			// now will not be readable on the next attempt either.
			moved, qerr := s.spool.quarantine(spoolSeq)
			s.log.Error("decision log: spool segment is damaged; delivering the events before the damage and moving it aside",
				"sink", s.name, "segment", s.spool.path(spoolSeq), "moved_to", moved, "events_recovered", len(events), "error", errors.Join(err, qerr))
			if len(events) == 0 {
				continue
			}
		}
		d.inflight = b
		return
	}
}

// handle takes the result of the delivery goroutine's job.
func (d *drainer) handle(res jobResult) {
	s := d.s
	d.busy = false
	if res.sync {
		if res.err != nil {
			s.log.Error("decision log: sync failed; events written since the last sync may not survive a power loss", "sink", s.name, "error", res.err)
		}
		return
	}
	b := d.inflight
	if res.n > 0 {
		s.delivered.Add(uint64(res.n))
		d.dirty = true
	}
	if res.err == nil {
		if b.onDisk {
			if err := s.spool.remove(b.seq); err != nil {
				s.log.Error("decision log: cannot remove a delivered spool segment; it will be delivered again after a restart", "sink", s.name, "error", err)
			}
		}
		d.inflight = nil
		if d.failing {
			s.log.Info("decision log: sink recovered", "sink", s.name, "failed_attempts", d.attempt)
		}
		d.failing, d.attempt = false, 0
		return
	}

	for _, e := range b.events[:res.n] {
		b.bytes -= len(e)
	}
	b.events = b.events[res.n:]
	if res.n > 0 && b.onDisk {
		if err := s.spool.write(b.seq, b.events); err != nil {
			s.log.Error("decision log: cannot rewrite a partly delivered spool segment; its delivered events will be delivered again after a restart", "sink", s.name, "error", err)
		}
	}
	d.attempt++
	delay := backoff(d.attempt, s.minRetry, s.maxRetry)
	if s.workCtx.Err() == nil && (!d.failing || d.attempt&(d.attempt-1) == 0) {
		// Logged on the first failure and then at attempts 2, 4, 8, ...
		s.log.Warn("decision log: delivery failed; retrying", "sink", s.name, "attempt", d.attempt, "retry_in", delay, "error", res.err)
	}
	d.failing = true
	d.retryC = time.After(delay)
	d.rebalance()
}

// backoff returns the wait before retry number attempt: exponential from lo,
// capped at hi, with "equal jitter" (a random point in the upper half) so that
// gateways that failed together do not retry together.
func backoff(attempt int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

func (d *drainer) empty() bool {
	return d.forming == nil && len(d.pending) == 0 && d.inflight == nil && !d.busy &&
		(d.s.spool == nil || len(d.s.spool.segs) == 0)
}

func (d *drainer) reportDrops() {
	s := d.s
	if n := s.dropped.Load(); n != d.reportedDrops {
		s.log.Warn("decision log: events dropped because the buffer and the spool are full", "sink", s.name, "dropped", n-d.reportedDrops, "dropped_total", n)
		d.reportedDrops = n
	}
}

// finish ends a sink that has delivered everything.
func (d *drainer) finish() error {
	s := d.s
	close(s.jobs)
	<-s.workDone
	s.workCancel()
	d.reportDrops()
	if err := s.w.close(); err != nil {
		return fmt.Errorf("decision log sink %q: %w", s.name, err)
	}
	return nil
}

// abort ends a sink when Close's context is done: it stops the delivery in
// flight and puts every event still in memory in the spool, or counts it as
// dropped when there is no room or no spool.
func (d *drainer) abort() error {
	s := d.s
	s.workCancel()
	if d.busy {
		d.handle(<-s.results)
	}
	d.closing = true
	for r := range s.queue { // closed by Close before abort
		d.add(r)
	}
	d.seal()
	var left []*batch
	if d.inflight != nil && !d.inflight.onDisk {
		left = append(left, d.inflight)
	}
	if len(d.pending) > 0 {
		left = append(left, mergeBatches(d.pending))
	}
	var dropped int
	for _, b := range left {
		if s.spool == nil || !d.spill(b) {
			dropped += len(b.events)
		}
	}
	d.inflight, d.pending, d.memEvents = nil, nil, 0
	s.dropped.Add(uint64(dropped))
	close(s.jobs)
	<-s.workDone
	d.reportDrops()

	errs := []error{s.abortCause}
	if err := s.w.close(); err != nil {
		errs = append(errs, err)
	}
	var segs int
	var bytes int64
	if s.spool != nil {
		segs, bytes = len(s.spool.segs), s.spool.bytes
	}
	if segs == 0 && dropped == 0 && len(errs) == 1 {
		return nil
	}
	return fmt.Errorf("decision log sink %q: closing before everything was delivered: %d batches (%d bytes) left in the spool for the next start, %d events dropped: %w",
		s.name, segs, bytes, dropped, errors.Join(errs...))
}
