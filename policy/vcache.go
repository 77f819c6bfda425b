package policy

import (
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// flatCache is the virtual-document cache (topdown.VirtualCache) of one pooled query: what
// OPA memoizes within one evaluation (a rule's value, a function's result for its
// arguments). OPA's own cache is a tree of hash maps made again for every evaluation (one
// map and one node per segment of every key: ≈ 47 of the ≈ 210 allocations of an allowed
// session miss); this one keeps its entries in slices that the pooled query reuses, and is
// emptied before and after every evaluation (reset), so nothing one evaluation memoized
// is ever seen by another. It answers exactly as OPA's does: an exact key in the top frame
// only; a key marked undefined stays undefined. A small cache is scanned; a large one (a
// node list's) is looked up through an index of key hashes.
type flatCache struct {
	terms  []*ast.Term // the entries' keys, one after another
	ents   []flatEntry
	frames []int // the index in ents at which each frame starts; the last is the top frame
	// idx: once an evaluation holds more than indexFrom entries (a node list memoizes a
	// call per node), the newest entry of each key hash; older ones are chained by prev.
	idx map[int]int
}

type flatEntry struct {
	off, n    int // the key is terms[off:off+n]
	hash      int
	prev      int // the previous entry with the same hash, or -1 (only with idx)
	value     *ast.Term
	undefined bool
}

// indexFrom is the number of entries up to which find scans them all.
const indexFrom = 16

var _ topdown.VirtualCache = (*flatCache)(nil)

func newFlatCache() *flatCache {
	c := &flatCache{}
	c.reset()
	return c
}

// reset empties the cache (one frame, no entry) and drops its references to the terms of
// the evaluation that filled it.
func (c *flatCache) reset() {
	clear(c.terms)
	c.terms = c.terms[:0]
	clear(c.ents)
	c.ents = c.ents[:0]
	c.frames = append(c.frames[:0], 0)
	c.idx = nil
}

func refHash(ref ast.Ref) int {
	h := len(ref)
	for _, t := range ref {
		h = h*31 + t.Hash()
	}
	return h
}

// find returns the index of ref's entry in the top frame, or -1.
func (c *flatCache) find(ref ast.Ref, h int) int {
	top := c.frames[len(c.frames)-1]
	if c.idx != nil {
		i, ok := c.idx[h]
		for ok && i >= top {
			if e := &c.ents[i]; e.n == len(ref) && refEqual(c.terms[e.off:e.off+e.n], ref) {
				return i
			}
			i, ok = c.ents[i].prev, c.ents[i].prev >= 0
		}
		return -1
	}
	for i := len(c.ents) - 1; i >= top; i-- {
		e := &c.ents[i]
		if e.hash != h || e.n != len(ref) {
			continue
		}
		if refEqual(c.terms[e.off:e.off+e.n], ref) {
			return i
		}
	}
	return -1
}

// index records entry i in idx, building idx when the entries outgrow a scan.
func (c *flatCache) index(i int) {
	if c.idx == nil {
		if len(c.ents) <= indexFrom {
			return
		}
		c.idx = make(map[int]int, 2*len(c.ents))
		for j := range c.ents[:i] {
			c.link(j)
		}
	}
	c.link(i)
}

func (c *flatCache) link(i int) {
	e := &c.ents[i]
	e.prev = -1
	if p, ok := c.idx[e.hash]; ok {
		e.prev = p
	}
	c.idx[e.hash] = i
}

func refEqual(a, b ast.Ref) bool {
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// Push starts a new, empty frame (OPA does for `with`).
func (c *flatCache) Push() { c.frames = append(c.frames, len(c.ents)) }

// Pop drops the top frame and its entries.
func (c *flatCache) Pop() {
	top := c.frames[len(c.frames)-1]
	if c.idx != nil {
		for i := len(c.ents) - 1; i >= top; i-- {
			if e := &c.ents[i]; e.prev >= 0 {
				c.idx[e.hash] = e.prev
			} else {
				delete(c.idx, e.hash)
			}
		}
	}
	if top < len(c.ents) {
		off := c.ents[top].off
		clear(c.terms[off:])
		c.terms = c.terms[:off]
		clear(c.ents[top:])
		c.ents = c.ents[:top]
	}
	c.frames = c.frames[:len(c.frames)-1]
}

// Get returns ref's value: (value, false) when cached, (nil, true) when cached as
// undefined, (nil, false) when not cached.
func (c *flatCache) Get(ref ast.Ref) (*ast.Term, bool) {
	i := c.find(ref, refHash(ref))
	if i < 0 {
		return nil, false
	}
	e := &c.ents[i]
	if e.undefined {
		return nil, true
	}
	return e.value, false
}

// Put records ref's value; a nil value marks ref undefined. The key is copied: OPA reuses
// the slice it passes.
func (c *flatCache) Put(ref ast.Ref, value *ast.Term) {
	h := refHash(ref)
	i := c.find(ref, h)
	if i < 0 {
		off := len(c.terms)
		c.terms = append(c.terms, ref...)
		c.ents = append(c.ents, flatEntry{off: off, n: len(ref), hash: h, prev: -1})
		i = len(c.ents) - 1
		c.index(i)
	}
	if e := &c.ents[i]; value != nil {
		e.value = value
	} else {
		e.undefined = true
	}
}

// Keys returns the keys of the top frame that have a value.
func (c *flatCache) Keys() []ast.Ref {
	var keys []ast.Ref
	for _, e := range c.ents[c.frames[len(c.frames)-1]:] {
		if e.value != nil {
			keys = append(keys, append(ast.Ref(nil), c.terms[e.off:e.off+e.n]...))
		}
	}
	return keys
}

// flatBaseCache is the base-document cache (topdown.BaseCache) of one pooled query: the
// values one evaluation read from the store or its resolvers, so that a second read of the
// same document takes no conversion. OPA's own is a tree of maps made again for every
// evaluation; this one keeps its entries in slices the pooled query reuses, emptied before
// and after every evaluation (reset). It answers exactly as OPA's tree does: a read is
// answered by the shortest stored prefix of its path (the rest looked up inside that
// value), and storing a path drops what was stored below it. Path segments compare as
// the tree's map keys do (Go equality of the values).
type flatBaseCache struct {
	keys []ast.Value // the entries' paths, one after another
	ents []baseEntry
}

type baseEntry struct {
	off, n int // the path is keys[off:off+n]
	value  ast.Value
}

var _ topdown.BaseCache = (*flatBaseCache)(nil)

func (c *flatBaseCache) reset() {
	clear(c.keys)
	c.keys = c.keys[:0]
	clear(c.ents)
	c.ents = c.ents[:0]
}

// isPrefix reports whether the path keys is a prefix of ref.
func isPrefix(keys []ast.Value, ref ast.Ref) bool {
	if len(keys) > len(ref) {
		return false
	}
	for i, k := range keys {
		if k != ref[i].Value {
			return false
		}
	}
	return true
}

// Get returns the value at ref, or nil when nothing stored answers it.
func (c *flatBaseCache) Get(ref ast.Ref) ast.Value {
	best := -1
	for i := range c.ents {
		e := &c.ents[i]
		if (best < 0 || e.n < c.ents[best].n) && e.n > 0 && isPrefix(c.keys[e.off:e.off+e.n], ref) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	e := &c.ents[best]
	if len(ref) == 1 && ast.IsScalar(e.value) {
		return e.value
	}
	result, err := e.value.Find(ref[e.n:])
	if err != nil {
		return nil
	}
	return result
}

// Put stores value at ref and drops what was stored at or below ref.
func (c *flatBaseCache) Put(ref ast.Ref, value ast.Value) {
	kept := c.ents[:0]
	for _, e := range c.ents {
		if e.n >= len(ref) && isPrefixOf(ref, c.keys[e.off:e.off+e.n]) {
			continue
		}
		kept = append(kept, e)
	}
	clear(c.ents[len(kept):])
	c.ents = kept
	if value == nil {
		return
	}
	off := len(c.keys)
	for _, t := range ref {
		c.keys = append(c.keys, t.Value)
	}
	c.ents = append(c.ents, baseEntry{off: off, n: len(ref), value: value})
}

// isPrefixOf reports whether ref is a prefix of the path keys.
func isPrefixOf(ref ast.Ref, keys []ast.Value) bool {
	for i, t := range ref {
		if keys[i] != t.Value {
			return false
		}
	}
	return true
}
