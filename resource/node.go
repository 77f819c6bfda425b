package resource

// Node is a server reachable through the cluster. Its labels are in metadata.labels.
type Node struct {
	Kind     string   `yaml:"kind"`
	Version  string   `yaml:"version"`
	Metadata Metadata `yaml:"metadata"`
	Spec     NodeSpec `yaml:"spec"`
}

// NodeSpec is where a node is.
type NodeSpec struct {
	// Addr is host:port to dial; empty for a node that connects through a tunnel.
	Addr string `yaml:"addr,omitempty"`
	// Hostname is the node's host name as users see it.
	Hostname string `yaml:"hostname,omitempty"`
}

// GetKind returns "node".
func (n *Node) GetKind() string { return KindNode }

// GetVersion returns the document's version.
func (n *Node) GetVersion() string { return n.Version }

// GetMetadata returns the node's metadata.
func (n *Node) GetMetadata() *Metadata { return &n.Metadata }

// Validate checks that addr, if set, is host:port.
func (n *Node) Validate() error {
	if err := checkHeader(KindNode, n.Kind, n.Version, &n.Metadata); err != nil {
		return err
	}
	if n.Spec.Addr != "" {
		if err := checkHostPort(n.Spec.Addr); err != nil {
			return wrapFieldErr(describe(KindNode, n.Metadata.Name), path{"spec", "addr"}, err)
		}
	}
	return nil
}
