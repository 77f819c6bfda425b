package policy

import (
	"encoding/binary"
	"hash/maphash"
	"slices"
	"sync"
	"time"
)

// key is a seeded 64-bit hash (hash/maphash, a seed per engine) of a canonical encoding
// (length-prefixed fields in a fixed order, maps sorted). It only picks the cache slot:
// every cache entry keeps the encoding it was made for, and a lookup is a hit only when
// the request encodes to exactly those bytes, so two inputs whose hashes collide (by
// chance or by an attacker's design) can never be served each other's decision; the later
// one replaces the earlier in the slot.
type key uint64

// keyHash hashes canonical encodings for one engine's caches.
type keyHash func([]byte) key

func newKeyHash() keyHash {
	seed := maphash.MakeSeed()
	return func(b []byte) key { return key(maphash.Bytes(seed, b)) }
}

type encoder struct {
	b []byte
	// nodeLabels is where decisionKey encoded the node's labels in b (start, end), so that
	// the engine can key its cache of label objects on them (labelsCache).
	nodeLabels [2]int
	// idEnd: b[:idEnd] is the request's identityKey (decisionKey begins with it).
	idEnd int
}

var encoders = sync.Pool{New: func() any { return &encoder{b: make([]byte, 0, 512)} }}

func (e *encoder) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) strs(ss []string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}

func (e *encoder) int(n int64) { e.b = binary.AppendVarint(e.b, n) }

// time encodes an instant exactly: seconds and nanoseconds apart. UnixNano would wrap
// for times more than 292 years from 1970, so an instant the engine refuses could encode
// like a valid one and be served its cached decision (TestCacheKeyTimesAreExact).
func (e *encoder) time(t time.Time) {
	e.int(t.Unix())
	e.int(int64(t.Nanosecond()))
}

func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

// labels encodes a string map in key order without allocating for small maps.
func (e *encoder) labels(m map[string]string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(m)))
	var small [16]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		e.str(k)
		e.str(m[k])
	}
}

func (e *encoder) cert(c *Cert) {
	e.str(c.Type)
	e.str(c.SigningCA.Cluster)
	e.str(c.SigningCA.Fingerprint)
	e.str(c.Username)
	e.str(c.KeyID)
	e.strs(c.Principals)
	e.strs(c.Roles)
	e.b = binary.AppendUvarint(e.b, uint64(len(c.Traits)))
	var small [16]string
	keys := small[:0]
	for k := range c.Traits {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		e.str(k)
		e.strs(c.Traits[k])
	}
	e.time(c.ValidAfter)
	e.time(c.ValidBefore)
	e.str(c.RouteToCluster)
	e.str(c.IssuedVia)
	e.bool(c.MFAVerified)
}

func getEncoder() *encoder {
	e := encoders.Get().(*encoder)
	e.b = e.b[:0]
	e.nodeLabels = [2]int{}
	e.idEnd = 0
	return e
}

// release returns an encoder to the pool; its bytes must not be used afterwards.
func (e *encoder) release() {
	if cap(e.b) <= 64<<10 { // an oversize input does not pin its buffer
		encoders.Put(e)
	}
}

// decisionKey encodes what identifies a decision: the loaded bundle (its generation, unique
// per Load in this process, so a decision made on a previous load can never be served for
// the current one, even for an equal revision) and the whole input except now.
func decisionKey(gen uint64, in *Input) *encoder {
	e := getEncoder()
	{
		// The identity's key first, so that the identity cache keys on b[:idEnd] without
		// encoding the certificate again. The two caches are apart, so the shared
		// beginning cannot make a decision key equal an identity key in one cache.
		e.identity(gen, in.Cluster, &in.Cert)
		e.idEnd = len(e.b)
		e.str(in.Action)
		e.str(in.Login)
		e.bool(in.Node != nil)
		if in.Node != nil {
			e.str(in.Node.Name)
			e.nodeLabels[0] = len(e.b)
			e.labels(in.Node.Labels)
			e.nodeLabels[1] = len(e.b)
		}
		e.bool(in.RemoteCluster != nil)
		if in.RemoteCluster != nil {
			e.str(in.RemoteCluster.Name)
			e.labels(in.RemoteCluster.Labels)
		}
	}
	return e
}

// identityKey encodes what identifies an identity: the loaded bundle's generation, the
// cluster and the certificate.
func identityKey(gen uint64, cluster string, c *Cert) *encoder {
	e := getEncoder()
	e.identity(gen, cluster, c)
	return e
}

func (e *encoder) identity(gen uint64, cluster string, c *Cert) {
	e.b = append(e.b, 'i')
	e.b = binary.AppendUvarint(e.b, gen)
	e.str(cluster)
	e.cert(c)
}
