package resource

import "time"

// Node is a server reachable through the cluster. Its labels are in metadata.labels.
// An admin creates one by hand for an OpenSSH server; a Tether node agent's is created
// and kept up to date by the cluster when the agent joins and heartbeats.
type Node struct {
	Kind     string     `yaml:"kind"`
	Version  string     `yaml:"version"`
	Metadata Metadata   `yaml:"metadata"`
	Spec     NodeSpec   `yaml:"spec"`
	Status   NodeStatus `yaml:"status,omitempty"`
}

// NodeStatus is what the cluster last heard from a node agent. The cluster fills it in
// when it answers a read; what a created document says here is ignored.
type NodeStatus struct {
	// Connection is "online" while the agent's heartbeats arrive, "offline" once they
	// stopped for longer than their TTL; empty for a node an admin registered by hand.
	Connection string `yaml:"connection,omitempty"`
	// LastHeartbeat is when the agent was last heard from.
	LastHeartbeat time.Time `yaml:"last_heartbeat,omitempty"`
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

// Validate checks that addr, if set, is host:port, and the connection state, if set.
func (n *Node) Validate() error {
	if err := checkHeader(KindNode, n.Kind, n.Version, &n.Metadata); err != nil {
		return err
	}
	if n.Spec.Addr != "" {
		if err := checkHostPort(n.Spec.Addr); err != nil {
			return wrapFieldErr(describe(KindNode, n.Metadata.Name), path{"spec", "addr"}, err)
		}
	}
	switch n.Status.Connection {
	case "", ConnectionOnline, ConnectionOffline:
		return nil
	}
	return fieldErr(describe(KindNode, n.Metadata.Name), path{"status", "connection"},
		"must be online or offline, got %q", n.Status.Connection)
}
