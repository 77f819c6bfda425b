package state

import (
	"context"
	"strings"
	"sync"
)

// DefaultWatchBuffer is how many events a watcher buffers before it is ended
// with ErrWatcherOverflow.
const DefaultWatchBuffer = 1024

// fanout hands events to in-process watchers. Writers never block on a slow
// watcher: a watcher whose buffer is full is ended with ErrWatcherOverflow.
type fanout struct {
	mu       sync.Mutex
	watchers map[*watcher]struct{}
	closed   bool
	buffer   int
}

func newFanout(buffer int) *fanout {
	if buffer <= 0 {
		buffer = DefaultWatchBuffer
	}
	return &fanout{watchers: make(map[*watcher]struct{}), buffer: buffer}
}

// add registers a watcher for prefix. While hold is true the watcher keeps
// events aside until release says which revisions it must skip.
func (f *fanout) add(ctx context.Context, prefix string, hold bool) (*watcher, error) {
	w := &watcher{
		f:      f,
		prefix: prefix,
		events: make(chan Event, f.buffer),
		done:   make(chan struct{}),
		hold:   hold,
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, ErrClosed
	}
	f.watchers[w] = struct{}{}
	// Set under the lock: the callback runs at once if ctx is already done,
	// and it must find w.stop assigned.
	w.stop = context.AfterFunc(ctx, func() { f.end(w, ctx.Err()) })
	f.mu.Unlock()
	return w, nil
}

// release ends a hold: events kept aside with a revision above minRev are
// delivered, the rest dropped, and later events at or below minRev are
// dropped too.
func (f *fanout) release(w *watcher, minRev int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	held := w.held
	w.hold, w.held, w.minRev = false, nil, minRev
	for _, ev := range held {
		if !f.deliverLocked(w, ev) {
			return
		}
	}
}

// publish delivers ev to every watcher whose prefix matches its key. Callers
// publish in write order.
func (f *fanout) publish(ev Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for w := range f.watchers {
		if strings.HasPrefix(ev.Item.Key, w.prefix) {
			f.deliverLocked(w, ev)
		}
	}
}

// deliverLocked sends ev to w, ending w if its buffer is full. It reports
// whether w is still running.
func (f *fanout) deliverLocked(w *watcher, ev Event) bool {
	if w.hold {
		w.held = append(w.held, ev)
		return true
	}
	if ev.Item.Revision <= w.minRev {
		return true
	}
	ev.Item = cloneItem(ev.Item)
	select {
	case w.events <- ev:
		return true
	default:
		f.endLocked(w, ErrWatcherOverflow)
		return false
	}
}

// end stops w with err (unless it already stopped).
func (f *fanout) end(w *watcher, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.endLocked(w, err)
}

func (f *fanout) endLocked(w *watcher, err error) {
	if _, ok := f.watchers[w]; !ok {
		return
	}
	delete(f.watchers, w)
	w.err = err
	close(w.events)
	close(w.done)
	if w.stop != nil {
		w.stop()
	}
}

// close ends every watcher with ErrClosed and refuses new ones.
func (f *fanout) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for w := range f.watchers {
		f.endLocked(w, ErrClosed)
	}
}

// watcher is the Watcher of both stores. Its mutable fields are guarded by
// its fanout's mutex.
type watcher struct {
	f      *fanout
	prefix string
	events chan Event
	done   chan struct{}
	stop   func() bool

	hold   bool
	held   []Event
	minRev int64
	err    error
}

func (w *watcher) Events() <-chan Event  { return w.events }
func (w *watcher) Done() <-chan struct{} { return w.done }

func (w *watcher) Err() error {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	return w.err
}

func (w *watcher) Close() error {
	w.f.end(w, ErrClosed)
	return nil
}
