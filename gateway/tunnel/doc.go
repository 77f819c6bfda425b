// Package tunnel runs the reverse tunnel of package transport inside tetherd: on every
// cluster, the root side (Root: a transport.Server on the proxy's tunnel port, QUIC on UDP
// and the SSH fallback on TCP at the same port number) and the leaf side (Leaf: one
// transport.Agent per enabled trusted_cluster whose root CAs are stored).
//
// What it owns: turning the trust stored by package auth into the tunnel's identities —
// the root accepts a leaf only with a client certificate that verifies against the TLS CA
// that leaf sent at trust time, for that very name, while its remote_cluster exists; the
// leaf presents a certificate of its own TLS CA naming its cluster and pins the root's
// TLS CA from the trust —; the remote_cluster status records (online, last heartbeat,
// carrier) and tunnel claims it writes to the state store from the server's callbacks;
// the replica registry (each root replica heartbeats its tunnel endpoint, and leaves are
// told every live one); closing tunnels within a second when a trust is disabled or
// removed on either side; the leaf's dial handler, which refuses every name that is
// not a registered node and hands accepted streams to the SSH forwarding hook; and the
// typed services a root asks a leaf for on behalf of a user (node list, mapped roles):
// the leaf side hands them to the gateway's ServiceFunc, the root side (Root.Ask) reads a
// bounded answer and DecodeNodeList / DecodeUserRoles check it strictly.
package tunnel
