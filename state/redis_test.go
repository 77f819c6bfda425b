package state_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"

	"github.com/redis/go-redis/v9"

	"github.com/tetherproject/tether/state"
	"github.com/tetherproject/tether/state/redistest"
	"github.com/tetherproject/tether/state/storetest"
)

func rawClient(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// collect reads events until have reports it has what it needs.
func collect(t *testing.T, w state.Watcher, timeout time.Duration, have func([]state.Event) bool) []state.Event {
	t.Helper()
	var evs []state.Event
	deadline := time.After(timeout)
	for !have(evs) {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("watcher ended: %v (events so far %v)", w.Err(), evs)
			}
			evs = append(evs, ev)
		case <-deadline:
			t.Fatalf("events not seen within %s; got %v", timeout, evs)
		}
	}
	return evs
}

func seen(evs []state.Event, typ state.EventType, key string) bool {
	return slices.ContainsFunc(evs, func(e state.Event) bool { return e.Type == typ && e.Item.Key == key })
}

// TestRedisRestartLosesNothing writes resources, SIGKILLs the server (with
// appendfsync always every acknowledged write is on disk), checks that
// operations fail promptly and clearly while it is down, restarts it on the
// same directory and port, and checks that the same Store recovers with
// nothing lost, revisions still increasing, and its watcher caught up.
func TestRedisRestartLosesNothing(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{AppendFsync: "always"})
	logs := &testenv.Buffer{}
	ns := uniqueNamespace(t)
	s := newRedis(t, srv.Addr(), state.RedisConfig{Namespace: ns, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	other := newRedis(t, srv.Addr(), state.RedisConfig{Namespace: ns}) // another gateway replica
	ctx := context.Background()
	w, err := s.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	for i := range 40 {
		if _, err := s.Put(ctx, state.Item{Key: fmt.Sprintf("roles/r%02d", i), Value: []byte(fmt.Sprintf(`{"n":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	cur, _ := s.Get(ctx, "roles/r00")
	swapped, err := s.CompareAndSwap(ctx, cur, state.Item{Key: "roles/r00", Value: []byte("swapped")})
	if err != nil {
		t.Fatal(err)
	}
	maxRev := swapped.Revision
	if err := s.Delete(ctx, "roles/r39"); err != nil {
		t.Fatal(err)
	}
	before := storetest.Snapshot(t, s)
	collect(t, w, 10*time.Second, func(evs []state.Event) bool { return len(evs) == 42 })

	srv.Kill()

	// Down: every operation fails promptly, saying the store is unavailable.
	for name, op := range map[string]func(context.Context) error{
		"get": func(ctx context.Context) error { _, err := s.Get(ctx, "roles/r01"); return err },
		"put": func(ctx context.Context) error {
			_, err := s.Put(ctx, state.Item{Key: "x", Value: []byte("x")})
			return err
		},
		"list":   func(ctx context.Context) error { _, err := s.List(ctx, ""); return err },
		"delete": func(ctx context.Context) error { return s.Delete(ctx, "roles/r01") },
	} {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		start := time.Now()
		err := op(ctx)
		cancel()
		if !errors.Is(err, state.ErrUnavailable) || !strings.Contains(err.Error(), srv.Addr()) {
			t.Fatalf("%s while redis is down: %v", name, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("%s took %s to fail", name, d)
		}
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// The same Store recovers by itself.
	testenv.Eventually(t, 10*time.Second, func() error { _, err := s.Get(ctx, "roles/r01"); return err })
	if after := storetest.Snapshot(t, s); !slices.Equal(after, before) {
		t.Fatalf("after restart:\n%q\nwant\n%q", after, before)
	}
	// Another replica's writes right after the restart: the watcher gets
	// them from pub/sub or, if it was still reconnecting, from the re-list.
	if err := other.Delete(ctx, "roles/r05"); err != nil {
		t.Fatal(err)
	}
	it, err := other.Put(ctx, state.Item{Key: "roles/new", Value: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if it.Revision <= maxRev {
		t.Fatalf("revision after restart %d, not above %d", it.Revision, maxRev)
	}
	collect(t, w, 15*time.Second, func(evs []state.Event) bool {
		return seen(evs, state.EventDelete, "roles/r05") && seen(evs, state.EventPut, "roles/new")
	})
	if !strings.Contains(logs.String(), "lost the redis watch subscription") {
		t.Errorf("losing the subscription was not logged: %s", logs)
	}
	mine, err := s.Put(ctx, state.Item{Key: "roles/mine", Value: []byte("x")})
	if err != nil || mine.Revision <= it.Revision {
		t.Fatalf("write through the recovered store: %+v, %v", mine, err)
	}
}

// TestRedisWatchRelistsAfterLostSubscription drops the store's pub/sub
// connection (as a proxy or network blip would) and writes meanwhile.
func TestRedisWatchRelistsAfterLostSubscription(t *testing.T) {
	t.Parallel()
	srv := sharedRedis(t)
	ns := uniqueNamespace(t)
	logs := &testenv.Buffer{}
	s := newRedis(t, srv.Addr(), state.RedisConfig{Namespace: ns, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	other := newRedis(t, srv.Addr(), state.RedisConfig{Namespace: ns})
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c"} {
		if _, err := other.Put(ctx, state.Item{Key: k, Value: []byte("1")}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := s.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	raw := rawClient(t, srv.Addr())
	// Only this store's subscriber: other tests share the server.
	clients, err := raw.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(clients, "\n") {
		// This store's subscriber only: other tests share the server.
		if strings.Contains(line, " name=tether:"+ns+" ") && !strings.Contains(line, " sub=0 ") {
			id := strings.TrimPrefix(strings.Fields(line)[0], "id=")
			if err := raw.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
				t.Fatal(err)
			}
			killed++
		}
	}
	if killed == 0 {
		t.Fatalf("found no subscriber to kill in:\n%s", clients)
	}
	if err := other.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Put(ctx, state.Item{Key: "b", Value: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Put(ctx, state.Item{Key: "d", Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	evs := collect(t, w, 15*time.Second, func(evs []state.Event) bool {
		return seen(evs, state.EventDelete, "a") && seen(evs, state.EventPut, "b") && seen(evs, state.EventPut, "d")
	})
	for _, ev := range evs {
		if ev.Item.Key == "c" {
			t.Fatalf("unchanged item reported after the re-list: %+v", ev)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(logs.String(), "subscription restored") {
			return errors.New("no log line about the restored subscription")
		}
		return nil
	})
}

func TestRedisDownAtStart(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s := newRedis(t, addr, state.RedisConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err = s.Ping(ctx)
	if !errors.Is(err, state.ErrUnavailable) || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "redis-server") {
		t.Fatalf("ping of a missing server: %v", err)
	}
	if _, err := s.Watch(ctx, ""); !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("watch of a missing server: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("failing took %s", d)
	}
}

// TestRedisHungServerTimesOut: a server that accepts but never answers is
// bounded by the context deadline, or by ReadTimeout without one.
func TestRedisHungServerTimesOut(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // hold it open, say nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	s := newRedis(t, l.Addr().String(), state.RedisConfig{ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.Get(ctx, "k")
	if d := time.Since(start); d > time.Second {
		t.Fatalf("context deadline of 150ms not honoured: %s", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("got %v", err)
	}

	start = time.Now()
	_, err = s.Put(context.Background(), state.Item{Key: "k", Value: []byte("v")})
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("read timeout of 500ms not honoured: %s", d)
	}
	if !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("got %v", err)
	}
}

// TestRedisMinReplicas runs a real replica: writes wait for it, and a write
// that cannot get enough acknowledgements stands but says so.
func TestRedisMinReplicas(t *testing.T) {
	t.Parallel()
	// Without the 5 s default delay before a diskless full sync.
	primary := redistest.Start(t, redistest.Config{Args: []string{"--repl-diskless-sync-delay", "0"}})
	replica := redistest.Start(t, redistest.Config{ReplicaOf: primary.Addr()})
	ctx := context.Background()
	raw := rawClient(t, primary.Addr())
	testenv.Eventually(t, 20*time.Second, func() error {
		info, err := raw.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "connected_slaves:1") || !strings.Contains(info, "state=online") {
			return fmt.Errorf("replica not online yet: %s", info)
		}
		return nil
	})
	ns := uniqueNamespace(t)
	s := newRedis(t, primary.Addr(), state.RedisConfig{Namespace: ns, MinReplicas: 1, ReplicaTimeout: 5 * time.Second})
	it, err := s.Put(ctx, state.Item{Key: "roles/admin", Value: []byte("v1")})
	if err != nil {
		t.Fatalf("write with one replica required and one present: %v", err)
	}
	// WAIT returned, so the replica has it already: no polling.
	got, err := rawClient(t, replica.Addr()).HGet(ctx, "tether/{"+ns+"}/item/roles/admin", "r").Int64()
	if err != nil || got != it.Revision {
		t.Fatalf("replica has revision %d (%v), want %d", got, err, it.Revision)
	}

	greedy := newRedis(t, primary.Addr(), state.RedisConfig{Namespace: ns, MinReplicas: 2, ReplicaTimeout: 100 * time.Millisecond})
	it2, err := greedy.Put(ctx, state.Item{Key: "roles/admin", Value: []byte("v2")})
	if !errors.Is(err, state.ErrNotReplicated) || it2.Revision <= it.Revision {
		t.Fatalf("write wanting 2 replicas of 1: %+v, %v", it2, err)
	}
	if g, err := s.Get(ctx, "roles/admin"); err != nil || string(g.Value) != "v2" {
		t.Fatalf("the under-replicated write should stand: %+v, %v", g, err)
	}
	// Live state does not wait: a lost heartbeat is re-sent.
	start := time.Now()
	if _, err := state.PutHeartbeat(ctx, greedy, state.HeartbeatNode, "n1", time.Minute, nil); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	if d := time.Since(start); d > 90*time.Millisecond {
		t.Fatalf("heartbeat waited for replicas (%s)", d)
	}
}

// TestRedisKeyLayout pins the documented layout, and that two namespaces
// on one server have separate keys, counters and events.
func TestRedisKeyLayout(t *testing.T) {
	t.Parallel()
	srv := sharedRedis(t)
	ctx := context.Background()
	nsA, nsB := uniqueNamespace(t)+"-a", uniqueNamespace(t)+"-b"
	a := newRedis(t, srv.Addr(), state.RedisConfig{Namespace: nsA})
	b := newRedis(t, srv.Addr(), state.RedisConfig{Namespace: nsB})
	wb, err := b.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer wb.Close()
	ia, err := a.Put(ctx, state.Item{Key: "roles/x", Value: []byte("A"), Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	ib, err := b.Put(ctx, state.Item{Key: "roles/x", Value: []byte("B")})
	if err != nil {
		t.Fatal(err)
	}
	if ia.Revision != 1 || ib.Revision != 1 {
		t.Fatalf("each namespace counts its own revisions: %d, %d", ia.Revision, ib.Revision)
	}
	raw := rawClient(t, srv.Addr())
	h, err := raw.HGetAll(ctx, "tether/{"+nsA+"}/item/roles/x").Result()
	if err != nil || h["v"] != "A" || h["r"] != "1" || h["e"] != fmt.Sprint(ia.Expires.UnixMilli()) {
		t.Fatalf("item hash %v, %v", h, err)
	}
	if ttl, _ := raw.PTTL(ctx, "tether/{"+nsA+"}/item/roles/x").Result(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("PEXPIREAT not set: PTTL %s", ttl)
	}
	if n, _ := raw.Get(ctx, "tether/{"+nsB+"}/rev").Int64(); n != 1 {
		t.Fatalf("counter of %s is %d", nsB, n)
	}
	ev := collect(t, wb, 10*time.Second, func(evs []state.Event) bool { return len(evs) > 0 })[0]
	if string(ev.Item.Value) != "B" {
		t.Fatalf("namespace %s saw %q", nsB, ev.Item.Value)
	}
	if got := storetest.Snapshot(t, a); !slices.Equal(got, []string{"roles/x=A@1"}) {
		t.Fatalf("namespace a lists %q", got)
	}
}

// TestRedisScriptCacheLoss: after SCRIPT FLUSH (as after a restart without
// the cache) EVALSHA fails with NOSCRIPT and the store falls back to EVAL.
func TestRedisScriptCacheLoss(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Config{}) // SCRIPT FLUSH is server-wide
	s := newRedis(t, srv.Addr(), state.RedisConfig{})
	ctx := context.Background()
	if _, err := s.Put(ctx, state.Item{Key: "k", Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if err := rawClient(t, srv.Addr()).ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, state.Item{Key: "k", Value: []byte("2")}); err != nil {
		t.Fatalf("write after SCRIPT FLUSH: %v", err)
	}
}

// TestRedisRevisionSurvivesLostCounter: if the counter is lost while items
// survive, a write never hands out a revision below the item's.
func TestRedisRevisionSurvivesLostCounter(t *testing.T) {
	t.Parallel()
	srv := sharedRedis(t)
	ns := uniqueNamespace(t)
	s := newRedis(t, srv.Addr(), state.RedisConfig{Namespace: ns})
	ctx := context.Background()
	var last state.Item
	for range 5 {
		var err error
		if last, err = s.Put(ctx, state.Item{Key: "k", Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	rawClient(t, srv.Addr()).Del(ctx, "tether/{"+ns+"}/rev")
	it, err := s.Put(ctx, state.Item{Key: "k", Value: []byte("w")})
	if err != nil || it.Revision <= last.Revision {
		t.Fatalf("revision after losing the counter: %d (%v), previous %d", it.Revision, err, last.Revision)
	}
}

func TestNewRedisValidates(t *testing.T) {
	t.Parallel()
	for _, cfg := range []state.RedisConfig{
		{Namespace: "x"},
		{Addr: "127.0.0.1:1"},
		{Addr: "127.0.0.1:1", Namespace: "a/b"},
		{Addr: "127.0.0.1:1", Namespace: "{x}"},
		{Addr: "127.0.0.1:1", Namespace: "x", MinReplicas: -1},
	} {
		if _, err := state.NewRedis(cfg); !errors.Is(err, state.ErrInvalid) {
			t.Errorf("NewRedis(%+v) = %v", cfg, err)
		}
	}
}

// TestWatchOverflow: a consumer that stops reading is cut off with
// ErrWatcherOverflow instead of blocking writers; what was buffered is
// still readable.
func TestWatchOverflow(t *testing.T) {
	t.Parallel()
	open := map[string]func(t *testing.T) state.Store{
		"embedded": func(t *testing.T) state.Store {
			s, err := state.OpenEmbedded(state.EmbeddedConfig{Dir: t.TempDir(), WatchBuffer: 4, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		"redis": func(t *testing.T) state.Store {
			return newRedis(t, sharedRedis(t).Addr(), state.RedisConfig{WatchBuffer: 4})
		},
	}
	for name, open := range open {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			ctx := context.Background()
			w, err := s.Watch(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				if _, err := s.Put(ctx, state.Item{Key: fmt.Sprint(i), Value: []byte("x")}); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-w.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("watcher not ended")
			}
			if !errors.Is(w.Err(), state.ErrWatcherOverflow) {
				t.Fatalf("Err = %v", w.Err())
			}
			var keys []string
			for ev := range w.Events() {
				keys = append(keys, ev.Item.Key)
			}
			if !slices.Equal(keys, []string{"0", "1", "2", "3"}) {
				t.Fatalf("buffered events %q", keys)
			}
		})
	}
}
