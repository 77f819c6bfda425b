package resource

import "time"

// RemoteCluster is created on a root cluster when a leaf joins. Its metadata labels, set by
// the root's administrators, are what role cluster_labels match.
type RemoteCluster struct {
	Kind     string              `yaml:"kind"`
	Version  string              `yaml:"version"`
	Metadata Metadata            `yaml:"metadata"`
	Status   RemoteClusterStatus `yaml:"status,omitempty"`
}

// RemoteClusterStatus is the leaf's connection state as the root last saw it.
type RemoteClusterStatus struct {
	// Connection is "online" or "offline".
	Connection string `yaml:"connection,omitempty"`
	// LastHeartbeat is when the leaf was last heard from.
	LastHeartbeat time.Time `yaml:"last_heartbeat,omitempty"`
	// Transport is the tunnel's carrier while online: "quic" or "ssh".
	Transport string `yaml:"transport,omitempty"`
}

// Remote cluster connection states.
const (
	ConnectionOnline  = "online"
	ConnectionOffline = "offline"
)

// GetKind returns "remote_cluster".
func (c *RemoteCluster) GetKind() string { return KindRemoteCluster }

// GetVersion returns the document's version.
func (c *RemoteCluster) GetVersion() string { return c.Version }

// GetMetadata returns the remote cluster's metadata.
func (c *RemoteCluster) GetMetadata() *Metadata { return &c.Metadata }

// Validate checks that the name is a cluster name (normalised in place) and that the connection state, if set, is online or offline.
func (c *RemoteCluster) Validate() error {
	if err := checkHeader(KindRemoteCluster, c.Kind, c.Version, &c.Metadata); err != nil {
		return err
	}
	if err := checkClusterMetadataName(describe(KindRemoteCluster, c.Metadata.Name), &c.Metadata); err != nil {
		return err
	}
	switch c.Status.Connection {
	case "", ConnectionOnline, ConnectionOffline:
		return nil
	}
	return fieldErr(describe(KindRemoteCluster, c.Metadata.Name), path{"status", "connection"},
		"must be online or offline, got %q", c.Status.Connection)
}
