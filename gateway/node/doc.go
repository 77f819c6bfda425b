// Package node is the Tether node agent: `tetherd start` with `node.enabled: true`. It
// owns one server's membership in a cluster and the SSH server users reach it by.
//
// Membership: at first start the agent makes a key (ed25519, kept 0600 in
// data_dir/node with what the join returned) and joins the cluster's web API with a
// node token, its name, labels and advertised address, pinning the cluster's TLS CA.
// The cluster answers with an SSH host certificate from its host CA, the public keys of
// its user CA and an X.509 client certificate. From then on the agent heartbeats over
// mutual TLS with that certificate (every heartbeat_interval, jittered), re-asserting
// its labels and address and receiving the user CA keys as they are now (so a CA
// rotation reaches it) and renewed certificates. A restart reuses the identity; the
// token is needed again only when the identity is gone or its client certificate ran out.
//
// SSH (files per concern as in tailscale's ssh/tailssh): server.go authenticates users
// by user certificates of the cluster's user CA and nothing else (valid now, no skew,
// the requested login among the principals, the login a user on this host);
// session.go serves shell, exec, env (LANG, LC_*, TERM only), window changes, signals
// and exit status; pty.go allocates terminals; sftp.go serves the sftp subsystem from a
// child process; user.go looks up logins and runs every child with the login's uid,
// gid and groups, never as the agent's user; portfwd.go serves port forwarding (-L, -R
// on loopback, below 1024 only for root) and agent forwarding, each only for a
// certificate carrying OpenSSH's permit-port-forwarding / permit-agent-forwarding, which
// the cluster's enforcement point leaves out when its policy denies them. X11 and Unix
// socket forwarding are refused.
package node
