// Package storetest is the contract every state.Store must keep: one suite
// that the embedded store, the Redis store and any wrapper run unchanged.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"

	"github.com/tetherproject/tether/state"
)

// Timeouts of the suite. Conditions are polled until these deadlines, never
// waited for with a fixed sleep.
const (
	eventTimeout  = 10 * time.Second
	expiryTimeout = 10 * time.Second
	shortTTL      = 300 * time.Millisecond
)

// Opener returns a new, empty store private to the calling test. Run closes
// it when the test ends.
type Opener func(t *testing.T) state.Store

// Run runs the contract suite, each case in parallel on its own store.
func Run(t *testing.T, open Opener) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s state.Store)
	}{
		{"crud", testCRUD},
		{"revisions_increase_with_every_write", testRevisions},
		{"compare_and_swap", testCompareAndSwap},
		{"create_refuses_existing", testCreate},
		{"list_prefix_sorted", testList},
		{"expiry", testExpiry},
		{"expired_item_can_be_recreated", testExpiredRecreate},
		{"watch_order", testWatchOrder},
		{"watch_prefix_filter", testWatchPrefix},
		{"watch_starts_when_watch_returns", testWatchStart},
		{"watch_ends_with_context", testWatchCancel},
		{"watch_close", testWatchClose},
		{"watch_large_and_odd", testWatchOdd},
		{"concurrent_cas_loses_no_update", testConcurrentCAS},
		{"namespaces_are_isolated", testNamespaces},
		{"large_value_1MiB", testLargeValue},
		{"odd_keys", testOddKeys},
		{"invalid_input", testInvalid},
		{"context_cancellation", testContext},
		{"values_are_copies", testCopies},
		{"closed_store", testClosed},
		{"heartbeats", testHeartbeats},
		{"tunnel_claims", testTunnels},
		{"tunnel_claim_race_has_one_winner", testTunnelRace},
		{"sessions", testSessions},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() { s.Close() })
			c.fn(t, s)
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// must(f())(t) returns f's value, failing t if f returned an error.
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func wantErr(t *testing.T, err error, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

// Snapshot lists everything a store holds as key=value@revision lines, in key order, for
// comparing a store before and after a fault.
func Snapshot(t *testing.T, s state.Store) []string {
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

func item(key, value string) state.Item { return state.Item{Key: key, Value: []byte(value)} }

// next returns the watcher's next event or fails the test.
func next(t *testing.T, w state.Watcher) state.Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatalf("watcher ended before the expected event: %v", w.Err())
		}
		return ev
	case <-time.After(eventTimeout):
		t.Fatalf("no event within %s", eventTimeout)
	}
	panic("unreachable")
}

// noEvent checks that nothing is pending after a write that a later event
// proves has been processed: it writes a marker and expects it first.
func expectOnly(t *testing.T, s state.Store, w state.Watcher, marker string) {
	t.Helper()
	ctx := ctxT(t)
	m := must(s.Put(ctx, item(marker, "marker")))(t)
	ev := next(t, w)
	if ev.Item.Key != marker || ev.Item.Revision != m.Revision {
		t.Fatalf("got event %v %q@%d, want only the marker %q@%d", ev.Type, ev.Item.Key, ev.Item.Revision, marker, m.Revision)
	}
}

func testCRUD(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	_, err := s.Get(ctx, "a")
	wantErr(t, err, state.ErrNotFound)

	p := must(s.Put(ctx, item("a", "one")))(t)
	if p.Revision <= 0 || p.Key != "a" || string(p.Value) != "one" {
		t.Fatalf("Put returned %+v", p)
	}
	g := must(s.Get(ctx, "a"))(t)
	if g.Revision != p.Revision || string(g.Value) != "one" || !g.Expires.IsZero() {
		t.Fatalf("Get returned %+v, want %+v", g, p)
	}
	p2 := must(s.Put(ctx, item("a", "two")))(t)
	if p2.Revision <= p.Revision {
		t.Fatalf("overwrite revision %d not above %d", p2.Revision, p.Revision)
	}
	if g := must(s.Get(ctx, "a"))(t); string(g.Value) != "two" || g.Revision != p2.Revision {
		t.Fatalf("after overwrite Get returned %+v", g)
	}
	// Put ignores the revision it is given.
	p3 := must(s.Put(ctx, state.Item{Key: "a", Value: []byte("three"), Revision: 1}))(t)
	if p3.Revision <= p2.Revision {
		t.Fatalf("Put used the caller's revision: %d", p3.Revision)
	}
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(ctx, "a")
	wantErr(t, err, state.ErrNotFound)
	wantErr(t, s.Delete(ctx, "a"), state.ErrNotFound)

	// An empty value is a value.
	e := must(s.Put(ctx, state.Item{Key: "empty"}))(t)
	g = must(s.Get(ctx, "empty"))(t)
	if g.Value == nil || len(g.Value) != 0 || g.Revision != e.Revision {
		t.Fatalf("empty value read back as %#v", g)
	}
}

func testRevisions(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	var last int64
	check := func(rev int64) {
		t.Helper()
		if rev <= last {
			t.Fatalf("revision %d after %d", rev, last)
		}
		last = rev
	}
	check(must(s.Put(ctx, item("x", "1")))(t).Revision)
	check(must(s.Create(ctx, item("y", "1")))(t).Revision)
	cur := must(s.Get(ctx, "x"))(t)
	check(must(s.CompareAndSwap(ctx, cur, item("x", "2")))(t).Revision)
	if err := s.Delete(ctx, "y"); err != nil {
		t.Fatal(err)
	}
	// The delete took a revision too: the next write is above it.
	next := must(s.Put(ctx, item("z", "1")))(t).Revision
	if next <= last+1 {
		t.Fatalf("revision after a delete is %d, want above %d", next, last+1)
	}
}

func testCompareAndSwap(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	v1 := must(s.Put(ctx, item("k", "v1")))(t)

	v2, err := s.CompareAndSwap(ctx, v1, item("k", "v2"))
	if err != nil {
		t.Fatalf("CAS at the current revision: %v", err)
	}
	if v2.Revision <= v1.Revision || string(v2.Value) != "v2" {
		t.Fatalf("CAS returned %+v", v2)
	}
	// The stale revision now conflicts.
	_, err = s.CompareAndSwap(ctx, v1, item("k", "v3"))
	wantErr(t, err, state.ErrConflict)
	if errors.Is(err, state.ErrNotFound) {
		t.Fatalf("conflict on an existing item also says not found: %v", err)
	}
	if g := must(s.Get(ctx, "k"))(t); string(g.Value) != "v2" {
		t.Fatalf("failed CAS changed the value to %q", g.Value)
	}
	// Values are not compared, only revisions.
	stale := v2
	stale.Value = []byte("something else")
	must(s.CompareAndSwap(ctx, stale, item("k", "v3")))(t)

	// Zero expected revision: create if absent.
	_, err = s.CompareAndSwap(ctx, state.Item{Key: "k"}, item("k", "x"))
	wantErr(t, err, state.ErrAlreadyExists)
	c := must(s.CompareAndSwap(ctx, state.Item{Key: "new"}, item("new", "n")))(t)
	if g := must(s.Get(ctx, "new"))(t); g.Revision != c.Revision {
		t.Fatalf("create-if-absent CAS: Get %+v, CAS %+v", g, c)
	}

	// A nonzero revision on a missing item conflicts and says it is gone.
	_, err = s.CompareAndSwap(ctx, state.Item{Key: "missing", Revision: 7}, item("missing", "m"))
	wantErr(t, err, state.ErrConflict)
	wantErr(t, err, state.ErrNotFound)
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("failed CAS created the item: %v", err)
	}

	// After a delete, the old revision conflicts.
	cur := must(s.Get(ctx, "new"))(t)
	if err := s.Delete(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	_, err = s.CompareAndSwap(ctx, cur, item("new", "again"))
	wantErr(t, err, state.ErrConflict)
	wantErr(t, err, state.ErrNotFound)

	// Keys must match.
	_, err = s.CompareAndSwap(ctx, v2, item("other", "x"))
	wantErr(t, err, state.ErrInvalid)
}

func testCreate(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	c := must(s.Create(ctx, item("c", "first")))(t)
	_, err := s.Create(ctx, item("c", "second"))
	wantErr(t, err, state.ErrAlreadyExists)
	if g := must(s.Get(ctx, "c"))(t); string(g.Value) != "first" || g.Revision != c.Revision {
		t.Fatalf("failed Create changed the item: %+v", g)
	}
	if err := s.Delete(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	must(s.Create(ctx, item("c", "third")))(t)
}

func keysOf(items []state.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Key
	}
	return out
}

func testList(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	if got := must(s.List(ctx, ""))(t); len(got) != 0 {
		t.Fatalf("empty store lists %v", keysOf(got))
	}
	keys := []string{"roles/b", "roles/a", "roles", "roles/a/x", "rolesX", "users/a", "roles/c", "a"}
	revs := map[string]int64{}
	for _, k := range keys {
		revs[k] = must(s.Put(ctx, item(k, "v:"+k)))(t).Revision
	}
	must(s.Put(ctx, item("roles/gone", "x")))(t)
	if err := s.Delete(ctx, "roles/gone"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"roles/", []string{"roles/a", "roles/a/x", "roles/b", "roles/c"}},
		{"roles", []string{"roles", "roles/a", "roles/a/x", "roles/b", "roles/c", "rolesX"}},
		{"", []string{"a", "roles", "roles/a", "roles/a/x", "roles/b", "roles/c", "rolesX", "users/a"}},
		{"users/a", []string{"users/a"}},
		{"nothing/", nil},
	} {
		got := must(s.List(ctx, tc.prefix))(t)
		if !slices.Equal(keysOf(got), tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, keysOf(got), tc.want)
		}
		for _, it := range got {
			if string(it.Value) != "v:"+it.Key || it.Revision != revs[it.Key] {
				t.Errorf("List(%q) item %+v, want value %q revision %d", tc.prefix, it, "v:"+it.Key, revs[it.Key])
			}
		}
	}
}

func testExpiry(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	exp := time.Now().Add(shortTTL)
	p := must(s.Put(ctx, state.Item{Key: "hb/1", Value: []byte("x"), Expires: exp}))(t)
	must(s.Put(ctx, item("hb/keep", "x")))(t)
	if !p.Expires.Equal(time.UnixMilli(exp.UnixMilli())) {
		t.Fatalf("Expires %v, want %v to the millisecond", p.Expires, exp)
	}
	g, err := s.Get(ctx, "hb/1")
	if err != nil && time.Now().Before(p.Expires) {
		t.Fatalf("item invisible before it expires: %v", err)
	}
	if err == nil && !g.Expires.Equal(p.Expires) {
		t.Fatalf("Get Expires %v, Put returned %v", g.Expires, p.Expires)
	}
	testenv.Eventually(t, expiryTimeout, func() error {
		if _, err := s.Get(ctx, "hb/1"); !errors.Is(err, state.ErrNotFound) {
			return fmt.Errorf("get after expiry: %v", err)
		}
		return nil
	})
	if time.Now().Before(p.Expires) {
		t.Fatalf("item vanished before its expiry %v", p.Expires)
	}
	if got := keysOf(must(s.List(ctx, "hb/"))(t)); !slices.Equal(got, []string{"hb/keep"}) {
		t.Fatalf("List after expiry = %q", got)
	}
	wantErr(t, s.Delete(ctx, "hb/1"), state.ErrNotFound)

	// Renewing pushes the expiry out; clearing it keeps the item for good.
	must(s.Put(ctx, state.Item{Key: "hb/2", Value: []byte("x"), Expires: time.Now().Add(shortTTL)}))(t)
	cur := must(s.Get(ctx, "hb/2"))(t)
	must(s.CompareAndSwap(ctx, cur, state.Item{Key: "hb/2", Value: []byte("y")}))(t)
	if g := must(s.Get(ctx, "hb/2"))(t); !g.Expires.IsZero() {
		t.Fatalf("cleared expiry reads back as %v", g.Expires)
	}

	// An expiry in the past is refused rather than written invisible.
	_, err = s.Put(ctx, state.Item{Key: "hb/3", Value: []byte("x"), Expires: time.Now().Add(-time.Second)})
	wantErr(t, err, state.ErrInvalid)
}

func testExpiredRecreate(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	must(s.Create(ctx, state.Item{Key: "lease", Value: []byte("a"), Expires: time.Now().Add(shortTTL)}))(t)
	must(s.Create(ctx, state.Item{Key: "lease2", Value: []byte("a"), Expires: time.Now().Add(shortTTL)}))(t)
	testenv.Eventually(t, expiryTimeout, func() error {
		_, err := s.Create(ctx, item("lease", "b"))
		return err
	})
	testenv.Eventually(t, expiryTimeout, func() error {
		_, err := s.CompareAndSwap(ctx, state.Item{Key: "lease2"}, item("lease2", "b"))
		return err
	})
	for _, k := range []string{"lease", "lease2"} {
		if g := must(s.Get(ctx, k))(t); string(g.Value) != "b" || !g.Expires.IsZero() {
			t.Fatalf("%s after re-create: %+v", k, g)
		}
	}
}

func testWatchOrder(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	w := must(s.Watch(ctx, "w/"))(t)
	defer w.Close()
	type want struct {
		typ   state.EventType
		key   string
		value string
		rev   int64
	}
	var wants []want
	put := func(it state.Item, err error) {
		t.Helper()
		it = must(it, err)(t)
		wants = append(wants, want{state.EventPut, it.Key, string(it.Value), it.Revision})
	}
	put(s.Put(ctx, item("w/a", "1")))
	put(s.Put(ctx, item("w/b", "1")))
	put(s.Put(ctx, item("w/a", "2")))
	if err := s.Delete(ctx, "w/b"); err != nil {
		t.Fatal(err)
	}
	wants = append(wants, want{typ: state.EventDelete, key: "w/b"})
	put(s.Create(ctx, item("w/c", "1")))
	cur := must(s.Get(ctx, "w/c"))(t)
	put(s.CompareAndSwap(ctx, cur, item("w/c", "2")))
	// Failed writes are not events.
	s.Create(ctx, item("w/c", "x"))
	s.CompareAndSwap(ctx, cur, item("w/c", "y"))
	s.Delete(ctx, "w/none")

	var last int64
	for i, wt := range wants {
		ev := next(t, w)
		if ev.Type != wt.typ || ev.Item.Key != wt.key || (wt.typ == state.EventPut && (string(ev.Item.Value) != wt.value || ev.Item.Revision != wt.rev)) {
			t.Fatalf("event %d: got %v %q=%q@%d, want %v %q=%q@%d", i, ev.Type, ev.Item.Key, ev.Item.Value, ev.Item.Revision, wt.typ, wt.key, wt.value, wt.rev)
		}
		if ev.Item.Revision <= last {
			t.Fatalf("event %d revision %d not above %d", i, ev.Item.Revision, last)
		}
		last = ev.Item.Revision
	}
	expectOnly(t, s, w, "w/marker")
}

func testWatchPrefix(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	w := must(s.Watch(ctx, "p/"))(t)
	defer w.Close()
	all := must(s.Watch(ctx, ""))(t)
	defer all.Close()
	for _, k := range []string{"p/1", "q/1", "p", "p2", "p/2"} {
		must(s.Put(ctx, item(k, "x")))(t)
	}
	if err := s.Delete(ctx, "q/1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "p/1"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"put p/1", "put p/2", "delete p/1"} {
		ev := next(t, w)
		if got := ev.Type.String() + " " + ev.Item.Key; got != want {
			t.Fatalf("prefix watcher got %q, want %q", got, want)
		}
	}
	expectOnly(t, s, w, "p/marker")
	for _, want := range []string{"put p/1", "put q/1", "put p", "put p2", "put p/2", "delete q/1", "delete p/1", "put p/marker"} {
		ev := next(t, all)
		if got := ev.Type.String() + " " + ev.Item.Key; got != want {
			t.Fatalf("watcher of everything got %q, want %q", got, want)
		}
	}
}

func testWatchStart(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	must(s.Put(ctx, item("s/before", "x")))(t)
	w := must(s.Watch(ctx, "s/"))(t)
	defer w.Close()
	after := must(s.Put(ctx, item("s/after", "x")))(t)
	ev := next(t, w)
	if ev.Item.Key != "s/after" || ev.Item.Revision != after.Revision {
		t.Fatalf("first event %q@%d, want s/after@%d", ev.Item.Key, ev.Item.Revision, after.Revision)
	}
}

func testWatchCancel(t *testing.T, s state.Store) {
	ctx, cancel := context.WithCancel(ctxT(t))
	w := must(s.Watch(ctx, ""))(t)
	if w.Err() != nil {
		t.Fatalf("running watcher has error %v", w.Err())
	}
	cancel()
	select {
	case <-w.Done():
	case <-time.After(eventTimeout):
		t.Fatal("watcher did not end when its context was cancelled")
	}
	wantErr(t, w.Err(), context.Canceled)
	for range w.Events() { // closed: the loop ends
	}
	// The store carries on.
	must(s.Put(context.Background(), item("after-cancel", "x")))(t)
}

func testWatchClose(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	w1 := must(s.Watch(ctx, ""))(t)
	w2 := must(s.Watch(ctx, ""))(t)
	defer w2.Close()
	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}
	<-w1.Done()
	wantErr(t, w1.Err(), state.ErrClosed)
	// The other watcher is unaffected.
	must(s.Put(ctx, item("k", "x")))(t)
	if ev := next(t, w2); ev.Item.Key != "k" {
		t.Fatalf("got %q", ev.Item.Key)
	}
}

func testWatchOdd(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	w := must(s.Watch(ctx, "odd "))(t)
	defer w.Close()
	big := randomBytes(t, 1<<20)
	keys := []string{"odd key\nwith newline", "odd ключ*[x]", "odd \x00nul"}
	for _, k := range keys {
		must(s.Put(ctx, state.Item{Key: k, Value: big}))(t)
	}
	for _, k := range keys {
		ev := next(t, w)
		if ev.Item.Key != k || !bytes.Equal(ev.Item.Value, big) {
			t.Fatalf("event for %q: key %q, %d-byte value", k, ev.Item.Key, len(ev.Item.Value))
		}
	}
}

func testConcurrentCAS(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	const workers, perWorker = 8, 25
	must(s.Put(ctx, item("counter", "0")))(t)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWorker {
				for {
					cur, err := s.Get(ctx, "counter")
					if err != nil {
						errs <- err
						return
					}
					n, _ := strconv.Atoi(string(cur.Value))
					_, err = s.CompareAndSwap(ctx, cur, item("counter", strconv.Itoa(n+1)))
					if err == nil {
						break
					}
					if !errors.Is(err, state.ErrConflict) {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if g := must(s.Get(ctx, "counter"))(t); string(g.Value) != strconv.Itoa(workers*perWorker) {
		t.Fatalf("counter = %s, want %d", g.Value, workers*perWorker)
	}
}

func testNamespaces(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	a := state.Namespaced(s, "alpha.example.com")
	b := state.Namespaced(s, "beta.example.com")
	wa := must(a.Watch(ctx, ""))(t)
	defer wa.Close()

	must(a.Put(ctx, item("roles/admin", "A")))(t)
	must(b.Put(ctx, item("roles/admin", "B")))(t)
	must(b.Put(ctx, item("only-b", "B")))(t)
	if g := must(a.Get(ctx, "roles/admin"))(t); string(g.Value) != "A" || g.Key != "roles/admin" {
		t.Fatalf("alpha reads %+v", g)
	}
	if g := must(b.Get(ctx, "roles/admin"))(t); string(g.Value) != "B" {
		t.Fatalf("beta reads %q", g.Value)
	}
	if got := keysOf(must(a.List(ctx, ""))(t)); !slices.Equal(got, []string{"roles/admin"}) {
		t.Fatalf("alpha lists %q", got)
	}
	_, err := a.Get(ctx, "only-b")
	wantErr(t, err, state.ErrNotFound)
	_, err = a.Create(ctx, item("only-b", "A"))
	if err != nil {
		t.Fatalf("alpha cannot create a key beta has: %v", err)
	}
	if err := a.Delete(ctx, "roles/admin"); err != nil {
		t.Fatal(err)
	}
	if g := must(b.Get(ctx, "roles/admin"))(t); string(g.Value) != "B" {
		t.Fatalf("alpha's delete reached beta: %q", g.Value)
	}
	for _, want := range []string{"put roles/admin", "put only-b", "delete roles/admin"} {
		ev := next(t, wa)
		if got := ev.Type.String() + " " + ev.Item.Key; got != want {
			t.Fatalf("alpha's watcher got %q, want %q", got, want)
		}
	}
	expectOnly(t, a, wa, "marker")
	// The underlying store sees both, under their namespaces.
	if got := keysOf(must(s.List(ctx, "beta.example.com/"))(t)); !slices.Equal(got, []string{"beta.example.com/only-b", "beta.example.com/roles/admin"}) {
		t.Fatalf("underlying store lists %q", got)
	}
	_, err = state.Namespaced(s, "bad/ns").Get(ctx, "k")
	wantErr(t, err, state.ErrInvalid)
	_, err = a.Get(ctx, "")
	wantErr(t, err, state.ErrInvalid)
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func testLargeValue(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	big := randomBytes(t, 1<<20)
	p := must(s.Put(ctx, state.Item{Key: "big", Value: big}))(t)
	if g := must(s.Get(ctx, "big"))(t); !bytes.Equal(g.Value, big) || g.Revision != p.Revision {
		t.Fatalf("1 MiB value read back as %d bytes", len(g.Value))
	}
	l := must(s.List(ctx, "big"))(t)
	if len(l) != 1 || !bytes.Equal(l[0].Value, big) {
		t.Fatalf("List of the 1 MiB value went wrong")
	}
	big[0] ^= 0xff
	must(s.CompareAndSwap(ctx, p, state.Item{Key: "big", Value: big}))(t)
	if g := must(s.Get(ctx, "big"))(t); !bytes.Equal(g.Value, big) {
		t.Fatalf("CAS of a 1 MiB value")
	}
	_, err := s.Put(ctx, state.Item{Key: "huge", Value: make([]byte, state.MaxValueSize+1)})
	wantErr(t, err, state.ErrInvalid)
}

// oddKeys covers what breaks naive key handling: glob characters (Redis
// SCAN MATCH), separators, whitespace and control characters, non-ASCII,
// Redis hash-tag braces, and the longest key allowed.
var oddKeys = []string{
	"with space", "tab\tkey", "new\nline", "cr\rlf", "nul\x00byte",
	"ünïcødé/ключ/鍵", "emoji😀", "glob*star", "glob?mark", "glob[x]", "globXstar",
	"back\\slash", "{hash}tag", "percent%2F", `quote"'`, "colon:semi;", "/leading", "trailing/",
	"dots/../..", "p 1 2 3 space-separated", strings.Repeat("k", state.MaxKeySize),
}

func testOddKeys(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	for _, k := range oddKeys {
		p := must(s.Put(ctx, state.Item{Key: k, Value: []byte("v:" + k)}))(t)
		if g := must(s.Get(ctx, k))(t); g.Key != k || string(g.Value) != "v:"+k || g.Revision != p.Revision {
			t.Fatalf("key %q read back as %+v", k, g)
		}
	}
	want := slices.Clone(oddKeys)
	slices.Sort(want)
	if got := keysOf(must(s.List(ctx, ""))(t)); !slices.Equal(got, want) {
		t.Fatalf("List = %q, want %q", got, want)
	}
	// Glob characters in a prefix are literal.
	for prefix, want := range map[string][]string{
		"glob*":   {"glob*star"},
		"glob?":   {"glob?mark"},
		"glob[":   {"glob[x]"},
		"back\\":  {"back\\slash"},
		"{hash}":  {"{hash}tag"},
		"nul\x00": {"nul\x00byte"},
	} {
		if got := keysOf(must(s.List(ctx, prefix))(t)); !slices.Equal(got, want) {
			t.Errorf("List(%q) = %q, want %q", prefix, got, want)
		}
	}
	for _, k := range oddKeys {
		if err := s.Delete(ctx, k); err != nil {
			t.Fatalf("deleting %q: %v", k, err)
		}
	}
}

func testInvalid(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	for name, key := range map[string]string{
		"empty":     "",
		"bad UTF-8": "bad\xff",
		"too long":  strings.Repeat("k", 1<<20),
	} {
		_, err := s.Put(ctx, item(key, "x"))
		if !errors.Is(err, state.ErrInvalid) {
			t.Errorf("Put with %s key: %v", name, err)
		}
		_, err = s.Get(ctx, key)
		if !errors.Is(err, state.ErrInvalid) {
			t.Errorf("Get with %s key: %v", name, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, state.ErrInvalid) {
			t.Errorf("Delete with %s key: %v", name, err)
		}
	}
	_, err := s.List(ctx, "bad\xff")
	wantErr(t, err, state.ErrInvalid)
	_, err = s.Watch(ctx, "bad\xff")
	wantErr(t, err, state.ErrInvalid)
	_, err = s.CompareAndSwap(ctx, state.Item{Key: "k", Revision: -1}, item("k", "x"))
	wantErr(t, err, state.ErrInvalid)
}

func testContext(t *testing.T, s state.Store) {
	must(s.Put(context.Background(), item("k", "v")))(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	for _, tc := range []struct {
		ctx  context.Context
		want error
	}{{cancelled, context.Canceled}, {expired, context.DeadlineExceeded}} {
		ctx := tc.ctx
		_, err := s.Get(ctx, "k")
		wantErr(t, err, tc.want)
		_, err = s.Put(ctx, item("k", "x"))
		wantErr(t, err, tc.want)
		_, err = s.Create(ctx, item("n", "x"))
		wantErr(t, err, tc.want)
		_, err = s.CompareAndSwap(ctx, state.Item{Key: "k"}, item("k", "x"))
		wantErr(t, err, tc.want)
		wantErr(t, s.Delete(ctx, "k"), tc.want)
		_, err = s.List(ctx, "")
		wantErr(t, err, tc.want)
		_, err = s.Watch(ctx, "")
		wantErr(t, err, tc.want)
	}
	if g := must(s.Get(context.Background(), "k"))(t); string(g.Value) != "v" {
		t.Fatalf("a cancelled write landed: %q", g.Value)
	}
}

func testCopies(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	in := []byte("original")
	p := must(s.Put(ctx, state.Item{Key: "k", Value: in}))(t)
	in[0] = 'X'
	p.Value[1] = 'X'
	g := must(s.Get(ctx, "k"))(t)
	g.Value[2] = 'X'
	l := must(s.List(ctx, ""))(t)
	l[0].Value[3] = 'X'
	if g := must(s.Get(ctx, "k"))(t); string(g.Value) != "original" {
		t.Fatalf("caller's slices alias the store: %q", g.Value)
	}
}

func testClosed(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	w := must(s.Watch(ctx, ""))(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.Done():
	case <-time.After(eventTimeout):
		t.Fatal("watcher outlived its store")
	}
	wantErr(t, w.Err(), state.ErrClosed)
	_, err := s.Get(ctx, "k")
	wantErr(t, err, state.ErrClosed)
	_, err = s.Put(ctx, item("k", "v"))
	wantErr(t, err, state.ErrClosed)
	wantErr(t, s.Delete(ctx, "k"), state.ErrClosed)
	_, err = s.List(ctx, "")
	wantErr(t, err, state.ErrClosed)
	_, err = s.Watch(ctx, "")
	wantErr(t, err, state.ErrClosed)
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func testHeartbeats(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	must(state.PutHeartbeat(ctx, s, state.HeartbeatNode, "n2", time.Minute, []byte(`{"addr":"10.0.0.2:3022"}`)))(t)
	hb := must(state.PutHeartbeat(ctx, s, state.HeartbeatNode, "n1", time.Minute, nil))(t)
	must(state.PutHeartbeat(ctx, s, state.HeartbeatCluster, "leaf.example.com", time.Minute, nil))(t)
	must(state.PutHeartbeat(ctx, s, state.HeartbeatNode, "short", shortTTL, nil))(t)
	if hb.Kind != state.HeartbeatNode || hb.Name != "n1" || hb.Revision == 0 || time.Since(hb.Time) > time.Minute || hb.Expires.Before(hb.Time) {
		t.Fatalf("PutHeartbeat returned %+v", hb)
	}
	names := func(kind string) []string {
		var out []string
		for _, h := range must(state.ListHeartbeats(ctx, s, kind))(t) {
			out = append(out, h.Name)
		}
		return out
	}
	if got := names(state.HeartbeatCluster); !slices.Equal(got, []string{"leaf.example.com"}) {
		t.Fatalf("cluster heartbeats %q", got)
	}
	nodes := must(state.ListHeartbeats(ctx, s, state.HeartbeatNode))(t)
	if len(nodes) < 2 || nodes[0].Name != "n1" || nodes[1].Name != "n2" || string(nodes[1].Data) != `{"addr":"10.0.0.2:3022"}` {
		t.Fatalf("node heartbeats %+v", nodes)
	}
	// Re-sending renews.
	again := must(state.PutHeartbeat(ctx, s, state.HeartbeatNode, "n1", 2*time.Minute, nil))(t)
	if again.Revision <= hb.Revision || !again.Expires.After(hb.Expires) {
		t.Fatalf("renewed heartbeat %+v after %+v", again, hb)
	}
	if g := must(state.GetHeartbeat(ctx, s, state.HeartbeatNode, "n1"))(t); g.Revision != again.Revision {
		t.Fatalf("GetHeartbeat %+v", g)
	}
	testenv.Eventually(t, expiryTimeout, func() error {
		if got := names(state.HeartbeatNode); !slices.Equal(got, []string{"n1", "n2"}) {
			return fmt.Errorf("node heartbeats %q", got)
		}
		return nil
	})
	_, err := state.PutHeartbeat(ctx, s, "bad/kind", "x", time.Minute, nil)
	wantErr(t, err, state.ErrInvalid)
	_, err = state.PutHeartbeat(ctx, s, state.HeartbeatNode, "x", 0, nil)
	wantErr(t, err, state.ErrInvalid)
}

func testTunnels(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	c1 := must(state.ClaimTunnel(ctx, s, "leaf1", "proxy-a", time.Minute))(t)
	if c1.ProxyID != "proxy-a" || c1.Leaf != "leaf1" {
		t.Fatalf("claim %+v", c1)
	}
	_, err := state.ClaimTunnel(ctx, s, "leaf1", "proxy-b", time.Minute)
	var held *state.TunnelClaimedError
	if !errors.As(err, &held) || held.Owner != "proxy-a" || held.Leaf != "leaf1" {
		t.Fatalf("second proxy's claim: %v", err)
	}
	renewed := must(state.ClaimTunnel(ctx, s, "leaf1", "proxy-a", 2*time.Minute))(t)
	if renewed.Revision <= c1.Revision || !renewed.Expires.After(c1.Expires) {
		t.Fatalf("renewal %+v after %+v", renewed, c1)
	}
	if o := must(state.TunnelOwner(ctx, s, "leaf1"))(t); o.ProxyID != "proxy-a" {
		t.Fatalf("owner %+v", o)
	}
	// Releasing someone else's claim does nothing; releasing one's own frees it.
	if err := state.ReleaseTunnel(ctx, s, "leaf1", "proxy-b"); err != nil {
		t.Fatal(err)
	}
	if o := must(state.TunnelOwner(ctx, s, "leaf1"))(t); o.ProxyID != "proxy-a" {
		t.Fatalf("owner after a stranger's release %+v", o)
	}
	if err := state.ReleaseTunnel(ctx, s, "leaf1", "proxy-a"); err != nil {
		t.Fatal(err)
	}
	_, err = state.TunnelOwner(ctx, s, "leaf1")
	wantErr(t, err, state.ErrNotFound)
	must(state.ClaimTunnel(ctx, s, "leaf1", "proxy-b", time.Minute))(t)

	// An unrenewed claim expires and another proxy takes over.
	must(state.ClaimTunnel(ctx, s, "leaf2", "proxy-a", shortTTL))(t)
	testenv.Eventually(t, expiryTimeout, func() error {
		_, err := state.ClaimTunnel(ctx, s, "leaf2", "proxy-c", time.Minute)
		return err
	})
	claims := must(state.ListTunnels(ctx, s))(t)
	var got []string
	for _, c := range claims {
		got = append(got, c.Leaf+"="+c.ProxyID)
	}
	if !slices.Equal(got, []string{"leaf1=proxy-b", "leaf2=proxy-c"}) {
		t.Fatalf("ListTunnels = %q", got)
	}
}

func testTunnelRace(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	const n = 8
	var wg sync.WaitGroup
	results := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = state.ClaimTunnel(ctx, s, "contested", "proxy-"+strconv.Itoa(i), time.Minute)
		}()
	}
	wg.Wait()
	winners := 0
	for i, err := range results {
		var held *state.TunnelClaimedError
		switch {
		case err == nil:
			winners++
		case errors.As(err, &held):
		default:
			t.Fatalf("claimant %d: %v", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d proxies hold the tunnel, want exactly 1", winners)
	}
}

func testSessions(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	started := time.Now().UTC().Truncate(time.Second)
	must(state.PutSession(ctx, s, state.Session{ID: "s2", User: "bob", Login: "root", Node: "n1", Cluster: "leaf", ProxyID: "p1", Started: started}, time.Minute))(t)
	s1 := must(state.PutSession(ctx, s, state.Session{ID: "s1", User: "alice", Started: started}, time.Minute))(t)
	must(state.PutSession(ctx, s, state.Session{ID: "s3", User: "carol"}, shortTTL))(t)
	if s1.Revision == 0 || s1.Expires.IsZero() || s1.User != "alice" {
		t.Fatalf("PutSession returned %+v", s1)
	}
	testenv.Eventually(t, expiryTimeout, func() error {
		var ids []string
		for _, x := range must(state.ListSessions(ctx, s))(t) {
			ids = append(ids, x.ID)
		}
		if !slices.Equal(ids, []string{"s1", "s2"}) {
			return fmt.Errorf("sessions %q", ids)
		}
		return nil
	})
	list := must(state.ListSessions(ctx, s))(t)
	if got := list[1]; got.User != "bob" || got.Login != "root" || got.Node != "n1" || got.Cluster != "leaf" || got.ProxyID != "p1" || !got.Started.Equal(started) {
		t.Fatalf("session read back as %+v", got)
	}
	if err := state.DeleteSession(ctx, s, "s1"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, state.DeleteSession(ctx, s, "s1"), state.ErrNotFound)
	if got := must(state.ListSessions(ctx, s))(t); len(got) != 1 || got[0].ID != "s2" {
		t.Fatalf("after delete: %+v", got)
	}
}
