// Package proxy is a cluster's SSH entry on its web port: it tells SSH from TLS by the
// first bytes of each connection (Mux), hands SSH connections whose version line is the
// tunnel agent's to the reverse tunnel server (Mux.Route: one port for web, user SSH and
// the SSH-fallback tunnel), authenticates users by their certificates, and
// serves the subsystem "proxy:NODE[:PORT]@CLUSTER" that OpenSSH's ProxyCommand and
// `tether ssh` open. A node of this cluster is handed, in-process, to the cluster's
// enforcement point (package forward); a node of a leaf goes through the root's own
// cluster.route decision and then the leaf's tunnel (LeafDialer), where the leaf's
// enforcement point decides again.
package proxy
