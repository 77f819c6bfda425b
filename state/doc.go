// Package state owns Tether's storage: one small key-value Store with
// revisions, compare-and-swap, expiry and watches, and two implementations
// of it — Embedded, a file-backed store for a single process (the default),
// and Redis, for gateways that run several replicas. On top of the Store it
// keeps the gateway's live state: cluster and node heartbeats, which proxy
// replica holds which leaf's tunnel, and active sessions (live.go). It knows
// nothing of what the values mean; resource kinds live in package resource.
//
// # The model
//
// An Item is a key, an opaque value, a Revision and an optional expiry. Every
// write (Put, Create, CompareAndSwap, Delete) takes the store's next
// revision, so revisions increase across all keys and across restarts.
// CompareAndSwap compares revisions only; a zero expected revision means
// "create if absent". An expired item is invisible at once and removed in
// the background; expiry is judged by the writer's clock and is not an
// event. Watch delivers Put and Delete events for a key prefix in write
// order, starting with the first write after Watch returns; a consumer that
// falls DefaultWatchBuffer events behind is cut off with ErrWatcherOverflow
// and should List again and re-watch, so writers never wait for readers.
//
// Keys are per cluster: Namespaced(store, cluster) is a view that keeps a
// cluster's keys under "<cluster>/", and the Redis store takes the cluster
// as RedisConfig.Namespace, which also gives it its own revision counter and
// event channel. Two clusters can share one Redis without seeing each other.
//
// # Embedded
//
// OpenEmbedded keeps every item in memory and appends each write to
// <dir>/state.log, synced (fsync) before the write returns. The log is the
// magic "TTHRLOG\x01" followed by records framed as a payload length, a
// CRC-32C of the payload and a CRC-32C of those two fields; the payload
// holds the op (put, delete, revision mark), revision, expiry, key and
// value (logformat.go has the byte layout). Opening replays the log:
//
//   - A record cut short at the end of the file — the append a crash
//     interrupted, which was never acknowledged — is truncated away, and a
//     warning names the offset. So is a tail the file system left
//     zero-filled, and a last record whose checksum fails with nothing
//     written after it.
//   - Damage anywhere else (a checksum mismatch with records after it, an
//     invalid record, revisions out of order) fails the open with a
//     *CorruptError naming the file and byte offset. Nothing is dropped
//     silently; the file is left as it was for the operator.
//
// When the log exceeds EmbeddedConfig.CompactMinSize and twice the size of
// the live data, it is rewritten — live items in revision order, then a
// revision mark so the counter survives — into state.log.compact, synced,
// and renamed over state.log (then the directory is synced). A flock on
// <dir>/LOCK keeps a second process (or a second OpenEmbedded) out; the
// kernel releases it if the process dies. A failed write or fsync stops all
// further writes until restart, since the kernel may have dropped the data.
//
// # Redis
//
// NewRedis stores each item as a hash and keeps everything of a namespace
// under one hash tag, so it also fits a single Redis Cluster slot:
//
//	tether/{<ns>}/item/<key>   hash: v = value, r = revision, e = expiry (Unix ms, 0 = never); PEXPIREAT e
//	tether/{<ns>}/rev          the namespace's revision counter (INCR)
//	tether/{<ns>}/events       pub/sub channel of the namespace's writes
//
// Every write runs one Lua script (redis_scripts.go; EVALSHA, falling back
// to EVAL when the server's script cache is empty) that checks the
// condition, INCRs the counter, writes the hash, sets PEXPIREAT and
// PUBLISHes the event, atomically, so events are published in write order.
// Watch holds one subscription per store and fans events out in-process. No
// keyspace notifications are needed. When the subscription's connection
// drops, the store re-subscribes, re-lists the namespace and reports the net
// changes it missed (see Redis.Watch). List walks the namespace with SCAN,
// never KEYS. Every network step has a timeout (DefaultRedisTimeout), context
// deadlines are honoured, and a server that cannot be reached fails
// operations promptly with ErrUnavailable; the same Store recovers when the
// server returns. Writes are not retried automatically: a write whose reply
// was lost may have been applied.
//
// # Durability with Redis
//
// Resources (roles, users, trust, CAs, tokens, locks) must survive a Redis
// restart, so run redis-server with the append-only file:
//
//	appendonly yes
//	appendfsync everysec   # loses at most about a second of writes on a crash
//	appendfsync always     # loses no acknowledged write, at some cost per write
//
// With replicas, set RedisConfig.MinReplicas: after each write the store
// issues WAIT on the same connection, so a write that returns without error
// is on that many replicas and survives a failover to one of them. A write
// that fewer replicas acknowledge within ReplicaTimeout is applied but
// returns ErrNotReplicated. Writes under LivePrefix — heartbeats, tunnel
// claims and sessions — skip the WAIT: losing one costs a re-send by its
// owner, which happens every heartbeat interval anyway.
//
// Expiry uses the writing gateway's clock (passed to the script) and Redis
// PEXPIREAT as garbage collection, so gateway clocks should be synchronised.
//
// # Testing
//
// Package storetest is the contract suite both stores pass unchanged;
// package redistest runs private redis-server processes for tests.
package state
