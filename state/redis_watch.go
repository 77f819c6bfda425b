package state

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Watch implements Store. One pub/sub subscription per store carries the
// events that writeScript publishes, so they arrive in write order; after a
// lost connection the store re-lists and reports the net changes it missed:
// a Put for each item written meanwhile and a Delete for each one removed
// (those Deletes carry the revision counter's value at the re-list).
func (r *Redis) Watch(ctx context.Context, prefix string) (Watcher, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	if err := r.startHub(ctx); err != nil {
		return nil, err
	}
	// Hold events until we know which writes finished before Watch.
	w, err := r.fan.add(ctx, prefix, true)
	if err != nil {
		return nil, err
	}
	rev, err := r.currentRevision(ctx)
	if err != nil {
		w.Close()
		return nil, err
	}
	r.fan.release(w, rev)
	return w, nil
}

// redisHub owns the store's subscription and the goroutine reading it.
type redisHub struct {
	r      *Redis
	ps     *redis.PubSub
	cancel context.CancelFunc
	done   chan struct{}
	// known is the revision and expiry of every item the hub believes
	// exists, so a re-list can tell what changed. Only run touches it.
	known map[string]knownItem
}

type knownItem struct {
	rev     int64
	expires int64 // Unix ms, 0 = never
}

// startHub subscribes (waiting for the server's confirmation, so no event
// published after it is missed) and lists the namespace, once per store.
func (r *Redis) startHub(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Load() {
		return ErrClosed
	}
	if r.hub != nil {
		return nil
	}
	ps := r.client.Subscribe(ctx, r.channel)
	if err := awaitSubscription(ctx, ps); err != nil {
		ps.Close()
		return r.wrap(ctx, "subscribe", err)
	}
	items, err := r.list(ctx, "")
	if err != nil {
		ps.Close()
		return err
	}
	h := &redisHub{r: r, ps: ps, done: make(chan struct{}), known: make(map[string]knownItem, len(items))}
	for _, it := range items {
		h.known[it.Key] = knownItem{rev: it.Revision, expires: expiresMillis(it.Expires)}
	}
	hctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	r.hub = h
	go h.run(hctx)
	return nil
}

func awaitSubscription(ctx context.Context, ps *redis.PubSub) error {
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			return err
		}
		if _, ok := msg.(*redis.Subscription); ok {
			return nil
		}
	}
}

func (h *redisHub) stop() {
	h.cancel()
	h.ps.Close() // unblocks Receive
	<-h.done
}

const (
	hubPingEvery  = 15 * time.Second
	hubMinBackoff = 50 * time.Millisecond
	hubMaxBackoff = 2 * time.Second
)

// run reads events until stopped. go-redis re-dials and re-subscribes on
// the next Receive after an error; the confirmation of that subscription
// is the cue to re-list.
func (h *redisHub) run(ctx context.Context) {
	defer close(h.done)
	log := h.r.log
	resync := false
	backoff := hubMinBackoff
	lastPrune := time.Now()
	for {
		msg, err := h.ps.ReceiveTimeout(ctx, hubPingEvery)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var nerr net.Error
			if errors.As(err, &nerr) && nerr.Timeout() {
				// Quiet channel: make sure the connection is alive.
				_ = h.ps.Ping(ctx)
				continue
			}
			if !resync {
				log.Warn("state: lost the redis watch subscription; will re-list after reconnecting", "err", err)
			}
			resync = true
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, hubMaxBackoff)
			continue
		}
		backoff = hubMinBackoff
		switch m := msg.(type) {
		case *redis.Subscription:
			if resync && m.Kind == "subscribe" {
				if !h.resync(ctx) {
					return
				}
				resync = false
				log.Info("state: redis watch subscription restored")
			}
		case *redis.Message:
			h.handle(m.Payload)
		}
		if time.Since(lastPrune) > time.Minute {
			h.prune()
			lastPrune = time.Now()
		}
	}
}

// handle delivers one published event unless a re-list already covered it.
func (h *redisHub) handle(payload string) {
	ev, err := parseEventPayload(payload)
	if err != nil {
		h.r.log.Warn("state: ignoring malformed redis event", "err", err)
		return
	}
	k, ok := h.known[ev.Item.Key]
	switch ev.Type {
	case EventPut:
		if ok && k.rev >= ev.Item.Revision {
			return
		}
		h.known[ev.Item.Key] = knownItem{rev: ev.Item.Revision, expires: expiresMillis(ev.Item.Expires)}
	case EventDelete:
		if !ok || k.rev >= ev.Item.Revision {
			return
		}
		delete(h.known, ev.Item.Key)
	}
	h.r.fan.publish(ev)
}

// resync re-lists the namespace and reports the differences from known,
// retrying until it succeeds or the hub stops (false).
func (h *redisHub) resync(ctx context.Context) bool {
	backoff := hubMinBackoff
	for {
		err := h.resyncOnce(ctx)
		if err == nil {
			return true
		}
		h.r.log.Warn("state: re-listing after a redis reconnect failed; retrying", "err", err)
		if !sleepCtx(ctx, backoff) {
			return false
		}
		backoff = min(2*backoff, hubMaxBackoff)
	}
}

func (h *redisHub) resyncOnce(ctx context.Context) error {
	items, err := h.r.list(ctx, "")
	if err != nil {
		return err
	}
	rev, err := h.r.currentRevision(ctx)
	if err != nil {
		return err
	}
	var puts, dels []Event
	present := make(map[string]struct{}, len(items))
	for _, it := range items {
		present[it.Key] = struct{}{}
		if k, ok := h.known[it.Key]; !ok || k.rev < it.Revision {
			h.known[it.Key] = knownItem{rev: it.Revision, expires: expiresMillis(it.Expires)}
			puts = append(puts, Event{Type: EventPut, Item: it})
		}
	}
	now := time.Now().UnixMilli()
	for key, k := range h.known {
		if _, ok := present[key]; ok {
			continue
		}
		delete(h.known, key)
		if k.expires != 0 && k.expires <= now {
			continue // expiry is not an event
		}
		dels = append(dels, Event{Type: EventDelete, Item: Item{Key: key, Revision: rev}})
	}
	slices.SortFunc(puts, func(a, b Event) int { return cmp.Compare(a.Item.Revision, b.Item.Revision) })
	slices.SortFunc(dels, func(a, b Event) int { return cmp.Compare(a.Item.Key, b.Item.Key) })
	for _, ev := range append(puts, dels...) {
		h.r.fan.publish(ev)
	}
	return nil
}

// prune forgets expired items so known does not grow with every session.
func (h *redisHub) prune() {
	now := time.Now().UnixMilli()
	for key, k := range h.known {
		if k.expires != 0 && k.expires <= now {
			delete(h.known, key)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// parseEventPayload decodes what writeScript publishes:
//
//	"p <rev> <expires-ms> <keylen> <key><value>"  or  "d <rev> 0 <keylen> <key>"
func parseEventPayload(p string) (Event, error) {
	fields := make([]string, 0, 4)
	rest := p
	for range 4 {
		i := strings.IndexByte(rest, ' ')
		if i < 0 {
			return Event{}, fmt.Errorf("event %.40q: too few fields", p)
		}
		fields = append(fields, rest[:i])
		rest = rest[i+1:]
	}
	rev, err1 := strconv.ParseInt(fields[1], 10, 64)
	exp, err2 := strconv.ParseInt(fields[2], 10, 64)
	klen, err3 := strconv.Atoi(fields[3])
	if err1 != nil || err2 != nil || err3 != nil || klen <= 0 || klen > len(rest) {
		return Event{}, fmt.Errorf("event %.40q: bad header", p)
	}
	it := Item{Key: rest[:klen], Revision: rev}
	switch fields[0] {
	case "p":
		it.Value = []byte(rest[klen:])
		it.Expires = millisExpires(exp)
		return Event{Type: EventPut, Item: it}, nil
	case "d":
		if klen != len(rest) {
			return Event{}, fmt.Errorf("event %.40q: delete with a value", p)
		}
		return Event{Type: EventDelete, Item: it}, nil
	}
	return Event{}, fmt.Errorf("event %.40q: unknown type %q", p, fields[0])
}
