package state

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Limits on what a Store accepts. They bound the size of a log record in the
// embedded store and keep a corrupt length field from allocating gigabytes.
const (
	// MaxKeySize is the longest key every Store accepts, in bytes. Stores
	// take up to MaxNamespaceSize+1 bytes more, so that a Namespaced view
	// still accepts keys of MaxKeySize.
	MaxKeySize = 4096
	// MaxNamespaceSize is the longest namespace Namespaced accepts.
	MaxNamespaceSize = 255
	maxStoredKey     = MaxKeySize + MaxNamespaceSize + 1
	// MaxValueSize is the largest value, in bytes.
	MaxValueSize = 16 << 20
)

// Errors callers branch on. Implementations wrap them with context, so test
// with errors.Is.
var (
	// ErrNotFound: no item under the key (or it has expired).
	ErrNotFound = errors.New("state: not found")
	// ErrAlreadyExists: Create, or CompareAndSwap with a zero expected
	// revision, found a live item under the key.
	ErrAlreadyExists = errors.New("state: already exists")
	// ErrConflict: CompareAndSwap found a different revision than expected.
	// When the item is gone the error is also ErrNotFound.
	ErrConflict = errors.New("state: revision conflict")
	// ErrInvalid: a key, prefix, value or expiry the store does not accept.
	ErrInvalid = errors.New("state: invalid argument")
	// ErrClosed: the store (or the watcher) has been closed.
	ErrClosed = errors.New("state: closed")
	// ErrUnavailable: the backing service could not be reached. The
	// operation may or may not have been applied; re-read before retrying a
	// write that is not idempotent.
	ErrUnavailable = errors.New("state: storage unavailable")
	// ErrNotReplicated: a Redis write was applied on the primary but fewer
	// than MinReplicas replicas acknowledged it within ReplicaTimeout.
	ErrNotReplicated = errors.New("state: write not acknowledged by enough replicas")
	// ErrWatcherOverflow: a watcher's consumer fell behind and events were
	// about to be dropped; List again and start a new Watch.
	ErrWatcherOverflow = errors.New("state: watcher fell behind; re-list and watch again")
	// ErrLocked: another process holds the embedded store's directory.
	ErrLocked = errors.New("state: directory locked by another process")
)

// Store is a small consistent key-value store with revisions, expiry and
// watches. Both implementations (Embedded and Redis) pass the same contract
// suite in package storetest.
type Store interface {
	// Get returns the live item under key, or ErrNotFound.
	Get(ctx context.Context, key string) (Item, error)
	// Put writes item unconditionally (item.Revision is ignored) and returns
	// it with its new Revision.
	Put(ctx context.Context, item Item) (Item, error)
	// CompareAndSwap writes replacement only if the item under its key has
	// revision expected.Revision (values are not compared). A zero expected
	// revision means "only if absent" and fails with ErrAlreadyExists when an
	// item is present. Otherwise a mismatch fails with ErrConflict (which is
	// also ErrNotFound when the item is gone). Both items must have the same Key.
	CompareAndSwap(ctx context.Context, expected, replacement Item) (Item, error)
	// Create writes item only if no live item has its key, else ErrAlreadyExists.
	Create(ctx context.Context, item Item) (Item, error)
	// Delete removes the item under key, or returns ErrNotFound.
	Delete(ctx context.Context, key string) error
	// List returns the live items whose keys start with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]Item, error)
	// Watch reports, in write order, every Put and Delete of a key under
	// prefix made after Watch returns. The watcher ends when ctx ends, when it
	// is closed, when the store closes, or when its consumer falls behind
	// (ErrWatcherOverflow). Expiry is not reported as an event.
	Watch(ctx context.Context, prefix string) (Watcher, error)
	// Close releases the store. Operations after Close return ErrClosed.
	Close() error
}

// Item is one stored value.
type Item struct {
	// Key is a non-empty UTF-8 string of at most MaxKeySize bytes. Any
	// characters are allowed; "/" is the conventional separator for prefixes.
	Key string
	// Value is opaque, at most MaxValueSize bytes. Reads never return nil for
	// an existing item; an empty value reads back as an empty slice.
	Value []byte
	// Revision is assigned by the store on every write: it increases with
	// each write (including deletes) to the store, across restarts.
	Revision int64
	// Expires is when the item stops being visible; zero means never. It is
	// kept with millisecond precision. Expired items are invisible at once and
	// removed in the background. Writing an item that has already expired is
	// an ErrInvalid error.
	Expires time.Time
}

// expired reports whether the item is past its expiry at now.
func (it Item) expired(now time.Time) bool {
	return !it.Expires.IsZero() && !now.Before(it.Expires)
}

// EventType says what happened to a key.
type EventType int

// The event types.
const (
	// EventPut: the key was written (Put, Create or CompareAndSwap).
	EventPut EventType = iota + 1
	// EventDelete: the key was deleted. The event's Item has only Key and Revision.
	EventDelete
)

// String returns "put" or "delete".
func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change seen by a Watcher.
type Event struct {
	Type EventType
	Item Item
}

// Watcher delivers the events of one Watch call.
type Watcher interface {
	// Events delivers events in write order. It is closed when the watcher
	// ends; events already buffered can still be read.
	Events() <-chan Event
	// Done is closed when the watcher ends.
	Done() <-chan struct{}
	// Err says why the watcher ended: the context's error, ErrClosed, or
	// ErrWatcherOverflow. It is nil while the watcher runs.
	Err() error
	// Close ends the watcher; Err then returns ErrClosed.
	Close() error
}

// checkKey reports whether key is acceptable.
func checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty key", ErrInvalid)
	case len(key) > maxStoredKey:
		return fmt.Errorf("%w: key of %d bytes is longer than %d", ErrInvalid, len(key), MaxKeySize)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: key %q is not valid UTF-8", ErrInvalid, key)
	}
	return nil
}

// checkPrefix reports whether prefix is acceptable for List and Watch.
func checkPrefix(prefix string) error {
	if len(prefix) > maxStoredKey || !utf8.ValidString(prefix) {
		return fmt.Errorf("%w: prefix %q", ErrInvalid, prefix)
	}
	return nil
}

// checkItem validates an item about to be written at now and returns it
// normalised: a private copy of the value (never nil) and Expires cut to
// whole milliseconds.
func checkItem(it Item, now time.Time) (Item, error) {
	if err := checkKey(it.Key); err != nil {
		return Item{}, err
	}
	if len(it.Value) > MaxValueSize {
		return Item{}, fmt.Errorf("%w: value of %d bytes under %q is larger than %d", ErrInvalid, len(it.Value), it.Key, MaxValueSize)
	}
	out := Item{Key: it.Key, Value: cloneBytes(it.Value)}
	if !it.Expires.IsZero() {
		out.Expires = time.UnixMilli(it.Expires.UnixMilli())
		if out.expired(now) {
			return Item{}, fmt.Errorf("%w: item %q expires at %s, which has passed", ErrInvalid, it.Key, it.Expires.Format(time.RFC3339Nano))
		}
	}
	return out, nil
}

// checkPair validates the two items of a CompareAndSwap.
func checkPair(expected, replacement Item) error {
	if expected.Key != replacement.Key {
		return fmt.Errorf("%w: compare-and-swap of %q with a replacement for %q", ErrInvalid, expected.Key, replacement.Key)
	}
	if expected.Revision < 0 {
		return fmt.Errorf("%w: negative expected revision %d", ErrInvalid, expected.Revision)
	}
	return nil
}

// expiresMillis converts an expiry to Unix milliseconds, 0 meaning never.
func expiresMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// millisExpires is the inverse of expiresMillis.
func millisExpires(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func cloneBytes(b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	return out
}

func cloneItem(it Item) Item {
	it.Value = cloneBytes(it.Value)
	return it
}
