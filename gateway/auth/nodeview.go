package auth

import (
	"context"
	"fmt"

	"github.com/tetherproject/tether/resource"
)

// cachedNode is a node document parsed at one store revision.
type cachedNode struct {
	rev  int64
	node *resource.Node
}

// Nodes lists the cluster's node resources, sorted by name, without their heartbeat
// status (Get adds it). The store's list of node items is read on every call, so a
// removed node is gone and a changed one current at once; only the parsing of each
// document is kept, by key and store revision, and redone when the revision changes.
// Parsing was most of a list's cost (docs/ARCHITECTURE.md, "Federation"). The nodes
// returned are shared: callers must not modify them.
func (s *Service) Nodes(ctx context.Context) ([]*resource.Node, error) {
	items, err := s.cfg.Store.List(ctx, resourcesPrefix+resource.KindNode+"/")
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	s.nodesMu.Lock()
	defer s.nodesMu.Unlock()
	next := make(map[string]cachedNode, len(items))
	out := make([]*resource.Node, 0, len(items))
	for _, it := range items {
		c, ok := s.nodes[it.Key]
		if !ok || c.rev != it.Revision {
			r, err := decodeOne(it)
			if err != nil {
				return nil, fmt.Errorf("listing nodes: %w", err)
			}
			n, ok := r.(*resource.Node)
			if !ok {
				return nil, fmt.Errorf("listing nodes: %s holds a %s", it.Key, r.GetKind())
			}
			c = cachedNode{rev: it.Revision, node: n}
		}
		next[it.Key] = c
		out = append(out, c.node)
	}
	s.nodes = next
	return out, nil
}
