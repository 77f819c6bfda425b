// Package forward is the enforcement point of the SSH access path: it terminates a user's
// SSH connection (aimed at one node) with a host certificate of this cluster's host CA,
// authenticates the user's certificate against the user CAs this cluster knows, asks the
// policy engine for an ssh.session decision for every session (each decision reaches the
// engine's decision log), and only when allowed connects to the node: a registered node
// resource (never an address the user names), with a short-lived certificate from this
// cluster's user CA for the login, verifying the node's host certificate against this
// cluster's host CA. It then relays the session's channel requests and data both ways
// until either side ends, the user's certificate expires, or a new policy revision
// denies the session. Port forwarding (direct-tcpip, tcpip-forward) and agent forwarding
// are decided the same way, with the actions ssh.port_forward and ssh.agent_forward
// (portfwd.go).
package forward
