package state

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of RedisConfig.
const (
	DefaultRedisTimeout   = 2 * time.Second
	DefaultReplicaTimeout = time.Second
)

// RedisConfig configures NewRedis. Addr and Namespace are required.
type RedisConfig struct {
	// Addr is the server's host:port.
	Addr string
	// Username and Password authenticate (AUTH); both may be empty.
	Username, Password string
	// DB selects the logical database.
	DB int
	// TLS, when set, is used to dial the server.
	TLS *tls.Config
	// Namespace keeps this store's keys, revision counter and event channel
	// apart from other clusters sharing the server: usually the cluster
	// name. Letters, digits and ".-_:" only.
	Namespace string
	// DialTimeout, ReadTimeout and WriteTimeout bound each network step so
	// an unreachable server fails operations promptly. Each defaults to
	// DefaultRedisTimeout; a context deadline that is sooner wins.
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
	// PoolSize is the number of pooled connections; 0 means go-redis's default.
	PoolSize int
	// MinReplicas, when positive, makes each write outside LivePrefix wait
	// (WAIT) until that many replicas have it, for at most ReplicaTimeout;
	// fewer acknowledgements return the item with ErrNotReplicated.
	MinReplicas int
	// ReplicaTimeout bounds the WAIT; default DefaultReplicaTimeout.
	ReplicaTimeout time.Duration
	// WatchBuffer is each watcher's event buffer; default DefaultWatchBuffer.
	WatchBuffer int
	// Logger receives watch reconnection messages; nil means slog.Default().
	Logger *slog.Logger
}

// Redis is the Store for replicated gateways, kept in a Redis server.
// See the package documentation for its key layout and durability.
type Redis struct {
	cfg     RedisConfig
	client  *redis.Client
	log     *slog.Logger
	itemPfx string // "tether/{ns}/item/"
	revKey  string // "tether/{ns}/rev"
	channel string // "tether/{ns}/events"
	fan     *fanout
	closed  atomic.Bool

	mu  sync.Mutex // guards hub start and stop
	hub *redisHub
}

var _ Store = (*Redis)(nil)

var namespacePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$`)

// NewRedis returns a store on the server at cfg.Addr. It does not dial:
// the first operation does, so a gateway can start while Redis is down and
// report the error from the operations that need it (see Ping).
func NewRedis(cfg RedisConfig) (*Redis, error) {
	if cfg.Addr == "" {
		return nil, fmt.Errorf("%w: RedisConfig.Addr is empty", ErrInvalid)
	}
	if !namespacePattern.MatchString(cfg.Namespace) {
		return nil, fmt.Errorf("%w: Redis namespace %q: use 1-253 letters, digits and \".-_:\", starting with a letter or digit", ErrInvalid, cfg.Namespace)
	}
	if cfg.MinReplicas < 0 {
		return nil, fmt.Errorf("%w: negative MinReplicas", ErrInvalid)
	}
	cfg.DialTimeout = cmp.Or(cfg.DialTimeout, DefaultRedisTimeout)
	cfg.ReadTimeout = cmp.Or(cfg.ReadTimeout, DefaultRedisTimeout)
	cfg.WriteTimeout = cmp.Or(cfg.WriteTimeout, DefaultRedisTimeout)
	cfg.ReplicaTimeout = cmp.Or(cfg.ReplicaTimeout, DefaultReplicaTimeout)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	client := redis.NewClient(&redis.Options{
		Addr:                  cfg.Addr,
		Username:              cfg.Username,
		Password:              cfg.Password,
		DB:                    cfg.DB,
		TLSConfig:             cfg.TLS,
		DialTimeout:           cfg.DialTimeout,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		PoolSize:              cfg.PoolSize,
		ContextTimeoutEnabled: true,
		// A write whose reply was lost may have been applied; resending it
		// could apply it twice (a Create that then reports it exists), so
		// the caller decides.
		MaxRetries: -1,
		// Two dials at most, so an unreachable server costs at most two
		// DialTimeouts (a context deadline cuts it shorter).
		DialerRetries:      2,
		DialerRetryTimeout: 50 * time.Millisecond,
		// Names the connections in CLIENT LIST, per cluster.
		ClientName:      "tether:" + cfg.Namespace,
		DisableIdentity: true,
	})
	// Hash tags keep a namespace's keys in one slot, as the scripts that
	// touch an item and the counter together need on a Redis Cluster.
	base := "tether/{" + cfg.Namespace + "}/"
	return &Redis{
		cfg:     cfg,
		client:  client,
		log:     cfg.Logger.With("component", "state", "redis", cfg.Addr, "namespace", cfg.Namespace),
		itemPfx: base + "item/",
		revKey:  base + "rev",
		channel: base + "events",
		fan:     newFanout(cfg.WatchBuffer),
	}, nil
}

// Ping checks that the server answers.
func (r *Redis) Ping(ctx context.Context) error {
	if r.closed.Load() {
		return ErrClosed
	}
	return r.wrap(ctx, "ping", r.client.Ping(ctx).Err())
}

// wrap turns a go-redis error into one that names the operation and says
// whether the server was unreachable.
func (r *Redis) wrap(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, redis.ErrClosed) || r.closed.Load() {
		return fmt.Errorf("state: redis %s: %w", op, ErrClosed)
	}
	cerr := ctx.Err()
	if dl, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(dl) {
		// The socket deadline came from ctx and fired a moment before
		// ctx's own timer.
		cerr = context.DeadlineExceeded
	}
	if cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%v)", cerr, err)
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !unavailableReply(err) {
		return fmt.Errorf("state: redis %s: %w", op, err)
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("state: redis %s: %w", op, err)
	}
	if hint := tlsProblem(err, r.cfg.TLS != nil); hint != "" {
		return fmt.Errorf("state: redis %s at %s: %w: %s: %w", op, r.cfg.Addr, ErrUnavailable, hint, err)
	}
	return fmt.Errorf("state: redis %s at %s: %w (check that redis-server is running and reachable): %w", op, r.cfg.Addr, ErrUnavailable, err)
}

// tlsProblem says what to check when err comes from a TLS handshake with
// the server, or returns "" for other errors.
func tlsProblem(err error, usingTLS bool) string {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		recordHdr tls.RecordHeaderError
		opErr     *net.OpError
	)
	switch {
	case errors.As(err, &unknownCA):
		return "the server's TLS certificate is not signed by a trusted CA (check the Redis TLS CA file)"
	case errors.As(err, &hostname):
		return "the server's TLS certificate is not valid for the name dialed (check the Redis TLS server name)"
	case errors.As(err, &invalid), errors.As(err, &verify):
		return "the server's TLS certificate was refused (check the Redis TLS CA file and the certificate's validity)"
	case errors.As(err, &recordHdr):
		return "the server did not answer TLS (is this its TLS port, tls-port?)"
	case usingTLS && errors.As(err, &opErr) && opErr.Op == "remote error":
		// A TLS alert from the server: with TLS 1.3 a missing or refused
		// client certificate shows up here, on the first read.
		return "the server refused the TLS connection (if it requires a client certificate, check the Redis TLS cert and key files)"
	}
	return ""
}

// unavailableReply reports server replies that mean "not now" rather than
// "wrong request": loading the AOF after a restart, a replica or a paused
// primary during failover.
func unavailableReply(err error) bool {
	for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "BUSY"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

func (r *Redis) itemKey(key string) string { return r.itemPfx + key }

// Get implements Store.
func (r *Redis) Get(ctx context.Context, key string) (Item, error) {
	if err := r.check(ctx); err != nil {
		return Item{}, err
	}
	if err := checkKey(key); err != nil {
		return Item{}, err
	}
	vals, err := r.client.HMGet(ctx, r.itemKey(key), "v", "r", "e").Result()
	if err != nil {
		return Item{}, r.wrap(ctx, "get "+strconv.Quote(key), err)
	}
	it, ok, err := parseHash(key, vals, time.Now())
	if err != nil {
		return Item{}, err
	}
	if !ok {
		return Item{}, fmt.Errorf("getting %q: %w", key, ErrNotFound)
	}
	return it, nil
}

// parseHash decodes an item hash read with HMGET v r e. It reports false for
// a missing or expired item.
func parseHash(key string, vals []any, now time.Time) (Item, bool, error) {
	if len(vals) != 3 || vals[0] == nil {
		return Item{}, false, nil
	}
	v, ok1 := vals[0].(string)
	rs, ok2 := vals[1].(string)
	es, ok3 := vals[2].(string)
	rev, err1 := strconv.ParseInt(rs, 10, 64)
	exp, err2 := strconv.ParseInt(es, 10, 64)
	if !ok1 || !ok2 || !ok3 || err1 != nil || err2 != nil {
		return Item{}, false, fmt.Errorf("state: redis item %q is malformed (revision %v, expiry %v)", key, vals[1], vals[2])
	}
	it := Item{Key: key, Value: []byte(v), Revision: rev, Expires: millisExpires(exp)}
	if it.expired(now) {
		// Redis removes it with PEXPIREAT; until then the caller's clock,
		// which wrote the expiry, decides.
		return Item{}, false, nil
	}
	return it, true, nil
}

// Put implements Store.
func (r *Redis) Put(ctx context.Context, item Item) (Item, error) {
	return r.write(ctx, "put", item, 0)
}

// Create implements Store.
func (r *Redis) Create(ctx context.Context, item Item) (Item, error) {
	return r.write(ctx, "create", item, 0)
}

// CompareAndSwap implements Store.
func (r *Redis) CompareAndSwap(ctx context.Context, expected, replacement Item) (Item, error) {
	if err := checkPair(expected, replacement); err != nil {
		return Item{}, err
	}
	return r.write(ctx, "cas", replacement, expected.Revision)
}

// Delete implements Store.
func (r *Redis) Delete(ctx context.Context, key string) error {
	if err := r.check(ctx); err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := r.eval(ctx, "delete", Item{Key: key}, 0)
	return err
}

func (r *Redis) write(ctx context.Context, mode string, item Item, expected int64) (Item, error) {
	if err := r.check(ctx); err != nil {
		return Item{}, err
	}
	it, err := checkItem(item, time.Now())
	if err != nil {
		return Item{}, err
	}
	rev, err := r.eval(ctx, mode, it, expected)
	if rev == 0 {
		return Item{}, err
	}
	it.Revision = rev
	return it, err // err may be ErrNotReplicated: the write stands
}

// eval runs writeScript and maps its answer. It returns the new revision
// when the write was applied (even if the error is ErrNotReplicated).
func (r *Redis) eval(ctx context.Context, mode string, it Item, expected int64) (int64, error) {
	keys := []string{r.itemKey(it.Key), r.revKey}
	args := []any{mode, expected, it.Value, expiresMillis(it.Expires), time.Now().UnixMilli(), it.Key, r.channel}
	op := mode + " " + strconv.Quote(it.Key)

	wait := r.cfg.MinReplicas > 0 && !strings.HasPrefix(it.Key, LivePrefix)
	var sc redis.Scripter = r.client
	if wait {
		// WAIT counts the writes of its own connection, so the script and
		// the WAIT must share one.
		conn := r.client.Conn()
		defer conn.Close()
		sc = conn
	}
	res, err := writeScript.Run(ctx, sc, keys, args...).Slice()
	if err != nil {
		return 0, r.wrap(ctx, op, err)
	}
	code, rev, err := parseScriptReply(res)
	if err != nil {
		return 0, fmt.Errorf("state: redis %s: %w", op, err)
	}
	switch code {
	case "ok":
	case "exists":
		if mode == "cas" {
			return 0, fmt.Errorf("compare-and-swap of %q expecting no item: %w", it.Key, ErrAlreadyExists)
		}
		return 0, fmt.Errorf("creating %q: %w", it.Key, ErrAlreadyExists)
	case "gone":
		return 0, fmt.Errorf("compare-and-swap of %q at revision %d: item is gone: %w: %w", it.Key, expected, ErrConflict, ErrNotFound)
	case "conflict":
		return 0, fmt.Errorf("compare-and-swap of %q: expected revision %d, found %d: %w", it.Key, expected, rev, ErrConflict)
	case "notfound":
		return 0, fmt.Errorf("deleting %q: %w", it.Key, ErrNotFound)
	default:
		return 0, fmt.Errorf("state: redis %s: unexpected script reply %q", op, code)
	}
	if wait {
		n, err := sc.(*redis.Conn).Wait(ctx, r.cfg.MinReplicas, r.cfg.ReplicaTimeout).Result()
		if err != nil {
			return rev, fmt.Errorf("state: redis %s applied at revision %d, but waiting for replicas failed: %w: %w", op, rev, ErrNotReplicated, r.wrap(ctx, "wait", err))
		}
		if n < int64(r.cfg.MinReplicas) {
			return rev, fmt.Errorf("state: redis %s applied at revision %d, but only %d of %d replicas acknowledged it within %s: %w", op, rev, n, r.cfg.MinReplicas, r.cfg.ReplicaTimeout, ErrNotReplicated)
		}
	}
	return rev, nil
}

func parseScriptReply(res []any) (string, int64, error) {
	if len(res) != 2 {
		return "", 0, fmt.Errorf("unexpected script reply %v", res)
	}
	code, ok := res[0].(string)
	rev, ok2 := res[1].(int64)
	if !ok || !ok2 {
		return "", 0, fmt.Errorf("unexpected script reply %v", res)
	}
	return code, rev, nil
}

// List implements Store. It walks the namespace with SCAN (never KEYS, which
// blocks the server) and reads the matches in pipelined batches.
func (r *Redis) List(ctx context.Context, prefix string) ([]Item, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	return r.list(ctx, prefix)
}

func (r *Redis) list(ctx context.Context, prefix string) ([]Item, error) {
	op := "list " + strconv.Quote(prefix)
	match := globEscape(r.itemPfx+prefix) + "*"
	seen := make(map[string]struct{})
	var keys []string
	var cursor uint64
	for {
		page, next, err := r.client.Scan(ctx, cursor, match, 1000).Result()
		if err != nil {
			return nil, r.wrap(ctx, op, err)
		}
		for _, k := range page {
			// SCAN may return a key twice.
			if _, dup := seen[k]; !dup && strings.HasPrefix(k, r.itemPfx+prefix) {
				seen[k] = struct{}{}
				keys = append(keys, k)
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	slices.Sort(keys)
	now := time.Now()
	var out []Item
	const batch = 256
	for start := 0; start < len(keys); start += batch {
		chunk := keys[start:min(start+batch, len(keys))]
		cmds := make([]*redis.SliceCmd, len(chunk))
		_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range chunk {
				cmds[i] = p.HMGet(ctx, k, "v", "r", "e")
			}
			return nil
		})
		if err != nil {
			return nil, r.wrap(ctx, op, err)
		}
		for i, cmd := range cmds {
			key := strings.TrimPrefix(chunk[i], r.itemPfx)
			it, ok, err := parseHash(key, cmd.Val(), now)
			if err != nil {
				return nil, err
			}
			if ok { // deleted or expired since the SCAN otherwise
				out = append(out, it)
			}
		}
	}
	return out, nil
}

// globEscape quotes the characters SCAN MATCH treats as a pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch c {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// currentRevision reads the namespace's revision counter.
func (r *Redis) currentRevision(ctx context.Context) (int64, error) {
	n, err := r.client.Get(ctx, r.revKey).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, r.wrap(ctx, "read revision", err)
	}
	return n, nil
}

// Close implements Store.
func (r *Redis) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	r.mu.Lock()
	hub := r.hub
	r.hub = nil
	r.mu.Unlock()
	if hub != nil {
		hub.stop()
	}
	r.fan.close()
	return r.client.Close()
}

func (r *Redis) check(ctx context.Context) error {
	if r.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}
