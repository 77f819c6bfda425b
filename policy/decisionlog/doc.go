// Package decisionlog records every access decision in OPA's decision-log
// event shape and ships it to the operator's audit pipeline without ever
// slowing a decision down.
//
// # Events
//
// An [Event] carries the fields OPA's decision-log plugin writes
// (decision_id, path, input, result, bundles, labels, timestamp, metrics,
// erased, masked), so the same collectors, dashboards and jq lines work for
// Tether and for OPA. Every event gets the labels id, version and cluster from
// [Config].
//
// # Masking
//
// Before an event leaves the process, [MaskRule]s in OPA's mask syntax erase
// or replace secrets: "/input/token" removes the field and adds the path to
// the event's erased list; {Op: "upsert", Path: "/input/password", Value:
// "***"} replaces it and adds the path to masked. [DefaultMasks] are always
// applied unless [Config].NoDefaultMasks is set. Masking copies only the maps
// and arrays along a path it changes; the caller's objects are never written.
//
// # Delivery model
//
// [Logger.Log] only puts the event in a bounded in-memory queue, one per sink,
// and returns; it never waits and never does I/O. Each sink (a JSON-lines
// file, a console [io.Writer], or an HTTP endpoint speaking OPA's upload
// protocol) has one goroutine that drains its queue, masks and encodes each
// event once, groups events into batches, and hands one batch at a time to a
// delivery goroutine. A batch is delivered when the sink acknowledges it (a
// completed write, or a 2xx answer), otherwise it is retried with exponential
// backoff and jitter, keeping its events and its place in the order.
//
// While a sink is failing, or holds BufferSize events in memory because it
// is slower than the decisions, its batches go to an on-disk spool (a
// directory per sink of segment files, 0600, each synced before it counts)
// bounded by [Config].MaxSpoolBytes, and are delivered in order once the sink
// recovers, also after a restart: [New] picks up what a previous process left
// in the spool. An event is dropped only when its sink's queue is full, that
// is when memory and spool are both full, or when decisions arrive faster
// than the sink's goroutine can encode and spool them for longer than the
// queue can absorb. Log then drops the new event and counts it in
// [Sink.Dropped], and the sink reports the count in its log: nothing is lost
// without being counted.
//
// [Logger.Close] stops intake and delivers what is left until its context is
// done; whatever is still undelivered then goes to the spool for the next
// start.
//
// Delivery is exactly once and in order while the process lives and across a
// Close and a New. A crash (no Close) loses what was only in memory: the queue
// and the batches not yet spooled, which while a sink is failing is at most
// the batch being filled; and it may deliver again a batch whose delivery
// completed just before the crash, whose segment was not yet removed.
package decisionlog
