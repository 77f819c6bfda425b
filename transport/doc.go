// Package transport owns the reverse tunnel between a leaf cluster and its root: the
// leaf dials out (it opens no inbound port) and keeps a tunnel to every root proxy
// replica; the root opens a stream per user connection over that tunnel and asks the
// leaf, in the dial protocol of package frame, to connect it to a node by name.
//
// Two carriers, one protocol. The tunnel is QUIC (quic-go, TLS 1.3 with mutual
// authentication, ALPN "tether-tunnel/1") when UDP gets through, and SSH over TCP
// (golang.org/x/crypto/ssh) when it does not. The leaf falls back to SSH on every QUIC
// failure class — UDP refused locally, a handshake that times out, a handshake rejected
// outright, repeated stream failures — keeps probing QUIC in the background, and moves
// new streams back once a QUIC tunnel says hello again; the old SSH tunnel drains.
//
// With AgentConfig.BulkSSH the leaf also opens an SSH tunnel beside a working QUIC one,
// marked in its hello, while it carries user sessions: the first session dial over QUIC
// opens it, and it closes after AgentConfig.BulkIdleTimeout without a session (its
// heartbeat says StateClosing first, so the root sends it nothing new, and live sessions
// keep it). The root sends user sessions (bulk bytes: x/crypto/ssh over TCP costs less
// CPU per byte than quic-go) over it while it is healthy; everything else stays on QUIC.
// It is never drained: it becomes the only one when QUIC fails and stays beside QUIC
// when QUIC returns. CarrierOf tells which carrier a dial rides.
//
// Both carriers authenticate the same way, against the same callbacks: the leaf holds an
// X.509 certificate from its cluster's CA, and the root's ServerConfig.VerifyLeaf decides
// which cluster that chain proves (PinnedClusters is the usual verifier: the chain must
// verify against the CA stored for the very name it claims); the leaf accepts a root
// whose certificate verifies against the pinned AgentConfig.RootCAs. Over QUIC that is
// the TLS handshake. Over SSH each side's SSH key is its certificate's key (the SSH
// handshake proves possession), and the certificate chains are exchanged in one global
// request right after it; nothing else is served until both chains verified and match
// the keys. This keeps one encryption layer on the fallback path (no TLS under SSH), so
// it runs at SSH speed.
//
// A tunnel counts as connected only after the application hello and its answer on the
// control stream: a rejected client certificate or a full accept queue only shows there.
// The hello negotiates the protocol version and the keep-alive interval and count both
// sides then use. Heartbeats carry the leaf's status; their replies may carry a
// "reconnect after" hint and the root's replica list. Reconnects use exponential backoff
// with full jitter, reset after a stable period, and honour the root's hints.
//
// The package knows nothing of roles, resources or the state store: the gateway passes
// in certificates, pools and callbacks, and decides what a dial request may reach.
package transport
