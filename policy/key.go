package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"sync"
)

// key is a SHA-256 digest of a canonical encoding. Two inputs get the same key only if
// they encode identically (length-prefixed fields in a fixed order, maps sorted), so a
// cached decision is only ever served for an input equal to the one it was made for.
type key [sha256.Size]byte

type encoder struct{ b []byte }

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
	e.int(c.ValidAfter.UnixNano())
	e.int(c.ValidBefore.UnixNano())
	e.str(c.RouteToCluster)
	e.str(c.IssuedVia)
	e.bool(c.MFAVerified)
}

func (e *encoder) sum() key { return sha256.Sum256(e.b) }

func getEncoder() *encoder {
	e := encoders.Get().(*encoder)
	e.b = e.b[:0]
	return e
}

func (e *encoder) done() key {
	k := e.sum()
	encoders.Put(e)
	return k
}

// decisionKey identifies a decision: the loaded bundle (its generation, unique per Load in
// this process, so a decision made on a previous load can never be served for the current
// one, even for an equal revision) and the whole input except now.
func decisionKey(gen uint64, in *Input) key {
	e := getEncoder()
	{
		e.b = append(e.b, 'd')
		e.b = binary.AppendUvarint(e.b, gen)
		e.str(in.Action)
		e.str(in.Cluster)
		e.cert(&in.Cert)
		e.str(in.Login)
		e.bool(in.Node != nil)
		if in.Node != nil {
			e.str(in.Node.Name)
			e.labels(in.Node.Labels)
		}
		e.bool(in.RemoteCluster != nil)
		if in.RemoteCluster != nil {
			e.str(in.RemoteCluster.Name)
			e.labels(in.RemoteCluster.Labels)
		}
	}
	return e.done()
}

// identityKey identifies an identity: the loaded bundle's generation, the cluster and the
// certificate.
func identityKey(gen uint64, cluster string, c *Cert) key {
	e := getEncoder()
	e.b = append(e.b, 'i')
	e.b = binary.AppendUvarint(e.b, gen)
	e.str(cluster)
	e.cert(c)
	return e.done()
}
