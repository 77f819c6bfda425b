package state

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// Namespaced returns a view of s that keeps its keys under "<namespace>/",
// so several clusters can share one store without seeing each other's keys.
// Keys and events seen through the view have the prefix removed. Closing
// the view ends its watchers but leaves s open: its owner closes it.
//
// The Redis store also takes a namespace of its own (RedisConfig.Namespace),
// which additionally gives each cluster its own revision counter and event
// channel; Namespaced works with any Store.
func Namespaced(s Store, namespace string) Store {
	return &namespaced{s: s, prefix: namespace + "/", ns: namespace}
}

type namespaced struct {
	s      Store
	ns     string
	prefix string

	mu       sync.Mutex
	closed   bool
	watchers map[*nsWatcher]struct{}
}

func (n *namespaced) check() error {
	if n.ns == "" || len(n.ns) > MaxNamespaceSize || strings.Contains(n.ns, "/") || !utf8.ValidString(n.ns) {
		return fmt.Errorf("%w: namespace %q must be 1-%d bytes of UTF-8 without '/'", ErrInvalid, n.ns, MaxNamespaceSize)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	return nil
}

func (n *namespaced) in(it Item) Item {
	it.Key = n.prefix + it.Key
	return it
}

func (n *namespaced) out(it Item) Item {
	it.Key = strings.TrimPrefix(it.Key, n.prefix)
	return it
}

// inKey checks the caller's key before prefixing it, so the empty key stays
// invalid inside a namespace too.
func (n *namespaced) inKey(key string) (string, error) {
	if err := n.check(); err != nil {
		return "", err
	}
	if err := checkKey(key); err != nil {
		return "", err
	}
	if len(key) > MaxKeySize {
		return "", fmt.Errorf("%w: key of %d bytes is longer than %d", ErrInvalid, len(key), MaxKeySize)
	}
	return n.prefix + key, nil
}

func (n *namespaced) Get(ctx context.Context, key string) (Item, error) {
	k, err := n.inKey(key)
	if err != nil {
		return Item{}, err
	}
	it, err := n.s.Get(ctx, k)
	return n.out(it), err
}

func (n *namespaced) Put(ctx context.Context, item Item) (Item, error) {
	if _, err := n.inKey(item.Key); err != nil {
		return Item{}, err
	}
	it, err := n.s.Put(ctx, n.in(item))
	return n.out(it), err
}

func (n *namespaced) Create(ctx context.Context, item Item) (Item, error) {
	if _, err := n.inKey(item.Key); err != nil {
		return Item{}, err
	}
	it, err := n.s.Create(ctx, n.in(item))
	return n.out(it), err
}

func (n *namespaced) CompareAndSwap(ctx context.Context, expected, replacement Item) (Item, error) {
	if _, err := n.inKey(replacement.Key); err != nil {
		return Item{}, err
	}
	it, err := n.s.CompareAndSwap(ctx, n.in(expected), n.in(replacement))
	return n.out(it), err
}

func (n *namespaced) Delete(ctx context.Context, key string) error {
	k, err := n.inKey(key)
	if err != nil {
		return err
	}
	return n.s.Delete(ctx, k)
}

func (n *namespaced) List(ctx context.Context, prefix string) ([]Item, error) {
	if err := n.check(); err != nil {
		return nil, err
	}
	items, err := n.s.List(ctx, n.prefix+prefix)
	for i := range items {
		items[i] = n.out(items[i])
	}
	return items, err
}

func (n *namespaced) Watch(ctx context.Context, prefix string) (Watcher, error) {
	if err := n.check(); err != nil {
		return nil, err
	}
	inner, err := n.s.Watch(ctx, n.prefix+prefix)
	if err != nil {
		return nil, err
	}
	w := &nsWatcher{
		n:      n,
		inner:  inner,
		events: make(chan Event),
		done:   make(chan struct{}),
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		inner.Close()
		return nil, ErrClosed
	}
	if n.watchers == nil {
		n.watchers = make(map[*nsWatcher]struct{})
	}
	n.watchers[w] = struct{}{}
	n.mu.Unlock()
	go w.run()
	return w, nil
}

// Close ends the view's watchers; the underlying store stays open.
func (n *namespaced) Close() error {
	n.mu.Lock()
	n.closed = true
	ws := n.watchers
	n.watchers = nil
	n.mu.Unlock()
	for w := range ws {
		w.Close()
	}
	return nil
}

// nsWatcher relays an inner watcher's events with the namespace removed.
// Its goroutine ends when the inner watcher ends.
type nsWatcher struct {
	n      *namespaced
	inner  Watcher
	events chan Event
	done   chan struct{}
	err    error // set before done is closed
}

func (w *nsWatcher) run() {
	defer func() {
		w.err = w.inner.Err()
		close(w.events)
		close(w.done)
		w.n.mu.Lock()
		delete(w.n.watchers, w)
		w.n.mu.Unlock()
	}()
	for ev := range w.inner.Events() {
		ev.Item = w.n.out(ev.Item)
		select {
		case w.events <- ev:
		case <-w.inner.Done():
			// Closed while the consumer was not reading; what is left is
			// not wanted.
			return
		}
	}
}

func (w *nsWatcher) Events() <-chan Event  { return w.events }
func (w *nsWatcher) Done() <-chan struct{} { return w.done }
func (w *nsWatcher) Close() error          { return w.inner.Close() }

func (w *nsWatcher) Err() error {
	select {
	case <-w.done:
		return w.err
	default:
		return nil
	}
}
