package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/resource"
)

// Port and agent forwarding. The user's SSH connection ends here, so every forwarding
// request reaches this cluster's enforcement point, whatever carried it (tether ssh, or
// OpenSSH through tether proxy ssh; the root proxy only carries bytes). Each is decided
// with the cluster's own engine and mapped roles before anything reaches the node:
//   - direct-tcpip (ssh -L, -D): ssh.port_forward, then the node opens the connection;
//   - tcpip-forward / cancel-tcpip-forward (ssh -R): ssh.port_forward, then the node
//     listens, and its forwarded-tcpip channels come back to the user only for a
//     listener that was allowed;
//   - auth-agent-req@openssh.com (ssh -A): ssh.agent_forward, then the node's
//     auth-agent@openssh.com channels come back to the user.
// The node's certificate carries permit-port-forwarding and permit-agent-forwarding only
// when the policy allows them, so an OpenSSH node refuses what the policy denied as well.
// Forwarding requests are ssh.session requests with another action (rego/forwarding.rego),
// so a forwarded port is never a way around a denied session, and a live forward ends
// like a session when a policy change denies it.

// Payloads of RFC 4254 §7.
type directTCPIPMsg struct {
	Host     string
	Port     uint32
	OrigHost string
	OrigPort uint32
}

type tcpipForwardMsg struct {
	Addr string
	Port uint32
}

type forwardedTCPIPMsg struct {
	Addr     string
	Port     uint32
	OrigAddr string
	OrigPort uint32
}

// denyFor is what the user sees of a denial of action.
func denyFor(action string, id policy.Cert, login, cluster string, reasons []string) string {
	switch action {
	case policy.ActionSSHPortForward, policy.ActionSSHAgentForward:
		what := "port forwarding"
		if action == policy.ActionSSHAgentForward {
			what = "agent forwarding"
		}
		if len(reasons) == 0 {
			reasons = []string{"access denied"}
		}
		return fmt.Sprintf("%s denied for %s@%s as %s@%s: %s", what, id.Username, id.SigningCA.Cluster, login, cluster, strings.Join(reasons, "; "))
	}
	return DenyMessage(id, login, cluster, reasons)
}

// withheldPermits asks the engine whether port and agent forwarding are allowed for the
// connection's login on n, and returns the OpenSSH permits the node certificate must not
// carry: those denied, and X11 forwarding, which Tether never relays.
func (c *userConn) withheldPermits(n *resource.Node) []string {
	out := []string{"permit-X11-forwarding"}
	for _, p := range []struct{ action, permit string }{
		{policy.ActionSSHPortForward, "permit-port-forwarding"},
		{policy.ActionSSHAgentForward, "permit-agent-forwarding"},
	} {
		in := policy.Input{
			Action: p.action, Cluster: c.s.cfg.ClusterName, Now: c.s.cfg.Now(),
			Cert: c.id.ID, Login: c.login, Node: &policy.Node{Name: n.Metadata.Name, Labels: n.Metadata.Labels},
		}
		d, err := c.s.cfg.Engine.Decide(c.ctx, &in)
		if err != nil || !d.Allow {
			out = append(out, p.permit)
		}
	}
	return out
}

// track registers something live the policy allowed with in, for recheck.
func (c *userConn) track(in policy.Input, cancel func()) (untrack func()) {
	s := &session{in: in, cancel: cancel}
	c.mu.Lock()
	if c.sessions == nil {
		c.sessions = map[*session]struct{}{}
	}
	c.sessions[s] = struct{}{}
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.sessions, s)
		c.mu.Unlock()
	}
}

// forwardTo looks the node up, decides action and connects to the node: the steps every
// forwarding request takes. It returns what the user may see when any step fails.
func (c *userConn) forwardTo(action, what string) (*ssh.Client, policy.Input, string) {
	n, msg := c.lookup()
	if msg != "" {
		return nil, policy.Input{}, msg
	}
	in, msg := c.decideAction(action, n, what)
	if msg != "" {
		return nil, in, msg
	}
	node, err := c.nodeClient(n)
	if err != nil {
		c.log.Warn("connecting to the node", "addr", n.Spec.Addr, "err", err)
		return nil, in, fmt.Sprintf("node %q in cluster %s refused the connection or could not be reached; try again later or ask an admin", c.target.Node, c.s.cfg.ClusterName)
	}
	return node, in, ""
}

// directTCPIP serves a local (-L) or dynamic (-D) forward: the node connects to the
// address the user named, after an ssh.port_forward decision. No session is needed, and
// none is implied: the decision states every rule of one.
func (c *userConn) directTCPIP(nc ssh.NewChannel) {
	var m directTCPIPMsg
	if err := ssh.Unmarshal(nc.ExtraData(), &m); err != nil || m.Port == 0 || m.Port > 65535 || m.Host == "" {
		_ = nc.Reject(ssh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	dest := net.JoinHostPort(m.Host, strconv.Itoa(int(m.Port)))
	node, in, msg := c.forwardTo(policy.ActionSSHPortForward, "-L "+dest)
	if msg != "" {
		_ = nc.Reject(ssh.Prohibited, msg)
		return
	}
	nch, nreqs, err := node.OpenChannel("direct-tcpip", nc.ExtraData())
	if err != nil {
		c.log.Info("the node could not open a forwarded connection", "forward", dest, "err", err)
		reason := fmt.Sprintf("node %q could not connect to %s", c.target.Node, dest)
		var oe *ssh.OpenChannelError
		if errors.As(err, &oe) && oe.Message != "" {
			reason += ": " + oe.Message
		}
		_ = nc.Reject(ssh.ConnectionFailed, reason)
		return
	}
	uch, ureqs, err := nc.Accept()
	if err != nil {
		nch.Close()
		return
	}
	c.pipe(in, "-L "+dest, uch, ureqs, nch, nreqs)
}

// pipe copies a forwarded connection both ways until both sides are done, or a policy
// change denies it (tracked with in).
func (c *userConn) pipe(in policy.Input, what string, a ssh.Channel, areqs <-chan *ssh.Request, b ssh.Channel, breqs <-chan *ssh.Request) {
	go ssh.DiscardRequests(areqs)
	go ssh.DiscardRequests(breqs)
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	untrack := c.track(in, cancel)
	defer untrack()
	go func() {
		<-ctx.Done()
		a.Close()
		b.Close()
	}()
	var wg sync.WaitGroup
	var ab, ba int64
	wg.Add(2)
	go func() {
		defer wg.Done()
		ab, _ = io.Copy(b, a)
		_ = b.CloseWrite()
	}()
	go func() {
		defer wg.Done()
		ba, _ = io.Copy(a, b)
		_ = a.CloseWrite()
	}()
	wg.Wait()
	c.log.Debug("forwarded connection ended", "forward", what, "bytes_in", ab, "bytes_out", ba)
}

// globalRequests serves the connection's global requests: tcpip-forward and
// cancel-tcpip-forward (ssh -R) after an ssh.port_forward decision; everything else is
// refused (keepalives get their "no" as OpenSSH servers answer them).
func (c *userConn) globalRequests(reqs <-chan *ssh.Request) {
	for r := range reqs {
		switch r.Type {
		case "tcpip-forward":
			ok, payload := c.remoteForward(r.Payload)
			_ = r.Reply(ok, payload)
		case "cancel-tcpip-forward":
			_ = r.Reply(c.cancelRemoteForward(r.Payload), nil)
		default:
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}
}

// remoteForward asks the node to listen for the user (ssh -R) once the policy allows it.
func (c *userConn) remoteForward(payload []byte) (bool, []byte) {
	var m tcpipForwardMsg
	if err := ssh.Unmarshal(payload, &m); err != nil || m.Port > 65535 {
		return false, nil
	}
	what := "-R " + net.JoinHostPort(m.Addr, strconv.Itoa(int(m.Port)))
	node, in, msg := c.forwardTo(policy.ActionSSHPortForward, what)
	if msg != "" {
		// A global request's refusal carries no message; say it where the user reads it.
		c.log.Info("remote forward refused", "forward", what, "why", msg)
		return false, nil
	}
	ok, reply, err := node.SendRequest("tcpip-forward", true, payload)
	if err != nil || !ok {
		c.log.Info("the node refused to listen", "forward", what, "err", err)
		return false, nil
	}
	port := m.Port
	if port == 0 {
		var p struct{ Port uint32 }
		if ssh.Unmarshal(reply, &p) == nil {
			port = p.Port
		}
	}
	key := strconv.Itoa(int(port))
	cancelMsg := ssh.Marshal(tcpipForwardMsg{Addr: m.Addr, Port: m.Port})
	var s *session
	s = &session{in: in, cancel: func() {
		c.mu.Lock()
		if c.remote[key] == s {
			delete(c.remote, key)
		}
		delete(c.sessions, s)
		c.mu.Unlock()
		_, _, _ = node.SendRequest("cancel-tcpip-forward", true, cancelMsg)
	}}
	c.mu.Lock()
	if c.remote == nil {
		c.remote = map[string]*session{}
	}
	if c.sessions == nil {
		c.sessions = map[*session]struct{}{}
	}
	c.remote[key] = s
	c.sessions[s] = struct{}{}
	c.mu.Unlock()
	return true, reply
}

func (c *userConn) cancelRemoteForward(payload []byte) bool {
	var m tcpipForwardMsg
	if err := ssh.Unmarshal(payload, &m); err != nil {
		return false
	}
	c.mu.Lock()
	s := c.remote[strconv.Itoa(int(m.Port))]
	c.mu.Unlock()
	if s == nil {
		return false
	}
	s.cancel()
	return true
}

// sessionRequest decides the session requests that need more than the session's own
// decision: agent forwarding (ssh.agent_forward).
func (c *userConn) sessionRequest(r *ssh.Request) bool {
	if r.Type != "auth-agent-req@openssh.com" {
		return true
	}
	_, in, msg := c.forwardTo(policy.ActionSSHAgentForward, "-A")
	if msg != "" {
		return false
	}
	c.mu.Lock()
	c.agent = &in
	c.mu.Unlock()
	return true
}

// serveNodeChannels passes the channels a node opens back to the user: forwarded-tcpip
// for an allowed remote listener, auth-agent@openssh.com once agent forwarding was
// allowed. Every other channel type the node might open is refused by x/crypto/ssh.
func (c *userConn) serveNodeChannels(node *ssh.Client) {
	fwd := node.HandleChannelOpen("forwarded-tcpip")
	agent := node.HandleChannelOpen("auth-agent@openssh.com")
	go func() {
		for nc := range fwd {
			var m forwardedTCPIPMsg
			if err := ssh.Unmarshal(nc.ExtraData(), &m); err != nil {
				_ = nc.Reject(ssh.ConnectionFailed, "malformed forwarded-tcpip")
				continue
			}
			c.mu.Lock()
			s := c.remote[strconv.Itoa(int(m.Port))]
			var in policy.Input
			if s != nil {
				in = s.in
			}
			c.mu.Unlock()
			if s == nil {
				c.log.Warn("refused a forwarded connection from the node for a port no allowed listener has", "port", m.Port)
				_ = nc.Reject(ssh.Prohibited, "no such forward")
				continue
			}
			go c.back(nc, "forwarded-tcpip", in, fmt.Sprintf("-R %s:%d from %s:%d", m.Addr, m.Port, m.OrigAddr, m.OrigPort))
		}
	}()
	go func() {
		for nc := range agent {
			c.mu.Lock()
			in := c.agent
			c.mu.Unlock()
			if in == nil {
				c.log.Warn("refused an agent channel from the node: agent forwarding was not allowed on this connection")
				_ = nc.Reject(ssh.Prohibited, "agent forwarding is not allowed")
				continue
			}
			go c.back(nc, "auth-agent@openssh.com", *in, "-A")
		}
	}()
}

// back opens the same channel to the user and pipes the node's channel into it.
func (c *userConn) back(nc ssh.NewChannel, typ string, in policy.Input, what string) {
	uch, ureqs, err := c.user.OpenChannel(typ, nc.ExtraData())
	if err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "the user did not accept the channel")
		return
	}
	nch, nreqs, err := nc.Accept()
	if err != nil {
		uch.Close()
		return
	}
	c.pipe(in, what, uch, ureqs, nch, nreqs)
}
