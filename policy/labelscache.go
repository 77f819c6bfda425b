package policy

import (
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Bounds of the engine's cache of node label objects: label sets whose canonical encoding
// is longer than maxCachedLabelsBytes are built per request, and the cache is emptied
// when it holds maxCachedLabelSets (a few hundred KB at most).
const (
	maxCachedLabelSets   = 1024
	maxCachedLabelsBytes = 256
)

// labelsCache holds the node labels of recent requests as Rego objects, keyed by their
// canonical encoding (the bytes decisionKey wrote for them), so that a miss for a node
// whose labels were seen before does not build, sort and hash the same object again. An
// object is immutable once made, so evaluations share it (as they share an identity).
type labelsCache struct {
	mu sync.RWMutex
	m  map[string]ast.Value
}

// get returns the object of labels, whose canonical encoding is enc.
func (c *labelsCache) get(enc []byte, labels map[string]string) ast.Value {
	if len(enc) > maxCachedLabelsBytes {
		var tb termBlock
		return tb.labels(labels)
	}
	c.mu.RLock()
	v, ok := c.m[string(enc)]
	c.mu.RUnlock()
	if ok {
		return v
	}
	var tb termBlock
	v = tb.labels(labels)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedLabelSets {
		c.m = make(map[string]ast.Value)
	}
	c.m[string(enc)] = v
	c.mu.Unlock()
	return v
}
