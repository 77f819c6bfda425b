package forward

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/audit"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/transport"
)

// ErrNodeNotFound is what a NodeLookup returns for a name that is not a registered node.
var ErrNodeNotFound = errors.New("node not found")

// Defaults of Config.
const (
	DefaultNodeCertTTL      = 5 * time.Minute
	DefaultHandshakeTimeout = 20 * time.Second
	DefaultRecheckInterval  = 2 * time.Second
)

// Config configures a Server. ClusterName, CA, Engine, TrustedUserKeys and Nodes are
// required.
type Config struct {
	ClusterName string
	CA          *ca.Cluster
	Engine      *policy.Engine
	// TrustedUserKeys returns the user CA keys whose certificates may authenticate: this
	// cluster's and those of the clusters it knows. Whether a signer is trusted for a
	// request is the engine's to decide (cert.signing_ca).
	TrustedUserKeys func(ctx context.Context) ([]ca.TrustedKey, error)
	// Nodes finds a registered node by name; ErrNodeNotFound when there is none.
	Nodes func(ctx context.Context, name string) (*resource.Node, error)
	// Dial connects to a node's registered address; nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// NodeCertTTL is the lifetime of the certificate the node sees; 0 means 5 minutes.
	NodeCertTTL time.Duration
	// HandshakeTimeout bounds each SSH handshake; 0 means 20 s.
	HandshakeTimeout time.Duration
	// RecheckInterval is how often live sessions are decided again when the bundle
	// revision has changed; 0 means 2 s.
	RecheckInterval time.Duration
	Logger          *slog.Logger
	Now             func() time.Time
	// Auditor receives session.start and session.end; nil records nothing.
	Auditor audit.Auditor
	// Ciphers, when not empty, are the only ciphers offered to users (config ciphers).
	Ciphers []string
}

// Server serves user SSH connections aimed at nodes of its cluster.
type Server struct {
	cfg Config
	log *slog.Logger

	// conns counts each user's connections for their roles' options.max_connections.
	conns Connections
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.ClusterName == "" || cfg.CA == nil || cfg.Engine == nil || cfg.TrustedUserKeys == nil || cfg.Nodes == nil {
		return nil, errors.New("forward: ClusterName, CA, Engine, TrustedUserKeys and Nodes are required")
	}
	if cfg.Dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second}
		cfg.Dial = d.DialContext
	}
	if cfg.NodeCertTTL <= 0 {
		cfg.NodeCertTTL = DefaultNodeCertTTL
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.RecheckInterval <= 0 {
		cfg.RecheckInterval = DefaultRecheckInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Server{cfg: cfg, log: cfg.Logger.With("component", "forward", "cluster", cfg.ClusterName)}, nil
}

// Target is the node a connection is aimed at, as the proxy or the tunnel named it.
type Target struct {
	// Node is the node resource's name.
	Node string
	// ClientAddr is the user's address, for the log.
	ClientAddr string
}

// Identity is a user certificate that authenticated, as the decision input reads it.
type Identity struct {
	Cert *ssh.Certificate
	ID   policy.Cert
}

// Authenticate checks a user certificate presented as key: a user certificate signed by
// one of the known user CA keys, with readable extensions, valid now. Trust in the signer
// is left to the policy. Every failure is an error naming the cause, for the log only.
func Authenticate(ctx context.Context, key ssh.PublicKey, trusted []ca.TrustedKey, now time.Time) (*Identity, error) {
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		return nil, errors.New("a plain public key, not a Tether certificate")
	}
	signer, err := ca.VerifyUser(cert, trusted)
	if err != nil {
		return nil, err
	}
	id, err := policy.CertFromSSH(cert, signer)
	if err != nil {
		return nil, err
	}
	if now.Before(id.ValidAfter) || !now.Before(id.ValidBefore) {
		return nil, fmt.Errorf("certificate %q is not valid now (valid %s to %s)", cert.KeyId, id.ValidAfter.Format(time.RFC3339), id.ValidBefore.Format(time.RFC3339))
	}
	return &Identity{Cert: cert, ID: id}, nil
}

// Admit is asked, once the client has proven it holds the key of the certificate id
// names, whether the connection may go on as login. It returns "" to let it, or what the
// user may see: the authentication is then refused, as OpenSSH's sshd refuses a login it
// does not allow ("Permission denied"), and the message goes to the client as an SSH
// banner, which OpenSSH prints and tether shows.
type Admit func(login string, id *Identity) string

// identityKey holds, in the permissions of the key the client offered, the identity its
// certificate authenticated as (ssh.Permissions.ExtraData).
type identityKey struct{}

// ServerConfig returns an SSH server configuration that authenticates user certificates
// with Authenticate and records the identity in *out. hostSigner is the host certificate
// the server presents. admit, when set, decides the login once the key is proven.
//
// The identity recorded is the one of the key whose signature verified: it travels in
// that key's permissions to VerifiedPublicKeyCallback, which x/crypto calls only for the
// key that signed. Nothing is taken from a key the client merely offered (a certificate
// is public; holding it proves nothing), and nothing is said to such a client beyond the
// refusal.
func ServerConfig(ctx context.Context, hostSigner ssh.Signer, trusted func(context.Context) ([]ca.TrustedKey, error), now func() time.Time, log *slog.Logger, admit Admit, out **Identity) *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			keys, err := trusted(ctx)
			if err != nil {
				log.Error("reading the trusted user CA keys", "err", err)
				return nil, errors.New("denied")
			}
			id, err := Authenticate(ctx, key, keys, now())
			if err != nil {
				log.Info("SSH authentication refused", "remote", meta.RemoteAddr().String(), "login", meta.User(), "reason", err.Error())
				return nil, errors.New("denied")
			}
			return &ssh.Permissions{ExtraData: map[any]any{identityKey{}: id}}, nil
		},
		VerifiedPublicKeyCallback: func(meta ssh.ConnMetadata, _ ssh.PublicKey, perms *ssh.Permissions, _ string) (*ssh.Permissions, error) {
			id, ok := perms.ExtraData[identityKey{}].(*Identity)
			if !ok {
				return nil, errors.New("denied")
			}
			if admit != nil {
				if msg := admit(meta.User(), id); msg != "" {
					return nil, &ssh.BannerError{Err: errors.New("denied"), Message: strings.Map(printableRune, msg) + "\r\n"}
				}
			}
			*out = id
			return perms, nil
		},
		ServerVersion: "SSH-2.0-Tether",
	}
	cfg.AddHostKey(hostSigner)
	return cfg
}

// HostSigner issues a host certificate from host for a fresh key, with principals, valid
// for ttl.
func HostSigner(host *ca.Authority, principals []string, ttl time.Duration) (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromSigner(priv)
	if err != nil {
		return nil, err
	}
	cert, err := host.IssueHost(ca.HostCertRequest{PublicKey: signer.PublicKey(), Principals: principals, TTL: ttl})
	if err != nil {
		return nil, err
	}
	return ssh.NewCertSigner(cert, signer)
}

// DenyMessage is what a user sees of a denied session, in Teleport's words: "user
// alice@root is not authorized to login as visitor@leaf: " and the decision's reasons. A
// reason that already begins with those words (the policy writes them so) is not
// prefixed twice.
func DenyMessage(id policy.Cert, login, cluster string, reasons []string) string {
	prefix := fmt.Sprintf("user %s@%s is not authorized to login as %s@%s: ", id.Username, id.SigningCA.Cluster, login, cluster)
	why := make([]string, 0, len(reasons))
	for _, r := range reasons {
		if r = strings.TrimPrefix(r, prefix); r != "" {
			why = append(why, r)
		}
	}
	if len(why) == 0 {
		why = append(why, "access denied")
	}
	return prefix + strings.Join(why, "; ")
}

// ServeConn serves one user SSH connection aimed at t.Node on conn, until the user or
// the node ends it, the user's certificate expires, or ctx ends. It closes conn.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn, t Target) error {
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log := s.log.With("node", t.Node, "client", t.ClientAddr)
	hostSigner, err := HostSigner(s.cfg.CA.Host, hostPrincipals(t.Node, s.cfg.ClusterName), 24*time.Hour)
	if err != nil {
		return fmt.Errorf("issuing the session's host certificate: %w", err)
	}
	var id *Identity
	var release func() // the connection's place under its user's max_connections
	defer func() {
		if release != nil {
			release()
		}
	}()
	scfg := ServerConfig(ctx, hostSigner, s.cfg.TrustedUserKeys, s.cfg.Now, log, func(login string, id *Identity) string {
		msg, rel := s.admit(ctx, log, t, login, id)
		if rel != nil {
			if release != nil {
				release()
			}
			release = rel
		}
		return msg
	}, &id)
	scfg.Ciphers = s.cfg.Ciphers
	_ = conn.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	sconn, chans, reqs, err := ssh.NewServerConn(conn, scfg)
	if err != nil {
		return fmt.Errorf("SSH handshake with %s: %w", t.ClientAddr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	defer sconn.Close()
	login := sconn.User()
	log = log.With("user", id.ID.Username, "login", login)
	log.Debug("user SSH connection", "cipher", transport.SSHCipher(sconn), "client_version", string(sconn.ClientVersion()))

	// The connection ends when the certificate does.
	expiry := time.AfterFunc(id.ID.ValidBefore.Sub(s.cfg.Now()), func() {
		log.Info("user certificate expired; closing the connection")
		sconn.Close()
	})
	defer expiry.Stop()
	go func() {
		<-ctx.Done()
		sconn.Close()
	}()

	c := &userConn{s: s, log: log, id: id, login: login, target: t, ctx: ctx, user: sconn}
	defer c.closeNode()
	go c.recheck()
	go c.globalRequests(reqs)
	var wg sync.WaitGroup
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.session(nc)
			}()
		case "direct-tcpip":
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.directTCPIP(nc)
			}()
		default:
			_ = nc.Reject(ssh.UnknownChannelType, "unsupported channel type "+nc.ChannelType())
		}
	}
	// The user's connection is gone: nothing more can reach them, so the node's
	// connection ends now too, as sshd drops a session whose client went away. Waiting for
	// the node to close its channels would keep a session (and the user's place under
	// max_connections) for as long as its command runs.
	cancel()
	c.closeNode()
	wg.Wait()
	return nil
}

// admit decides a login at authentication, as sshd does: the node must be registered
// and the login allowed on it (ssh.session, or ssh.port_forward for a connection that
// will only forward, when an operator's rules allow that alone), and the user must have a
// place under their roles' options.max_connections. Each session and forward is still
// decided when it is asked for: the policy may have changed since. On an allow, release
// gives the connection's place back.
func (s *Server) admit(ctx context.Context, log *slog.Logger, t Target, login string, id *Identity) (msg string, release func()) {
	c := &userConn{s: s, log: log.With("user", id.ID.Username, "login", login, "at", "authentication"), id: id, login: login, target: t, ctx: ctx}
	n, msg := c.lookup()
	if msg != "" {
		return msg, nil
	}
	in, msg := c.decide(n)
	if msg != "" {
		if _, fwd := c.decideAction(policy.ActionSSHPortForward, n, ""); fwd != "" {
			return msg, nil
		}
	}
	return s.takeConnection(c, &in)
}

// takeConnection takes a place for c's user under the limit their roles set
// (options.max_connections, read from the engine's identity), or says why there is none.
// An unreadable limit refuses: the limit is not known to be kept.
func (s *Server) takeConnection(c *userConn, in *policy.Input) (msg string, release func()) {
	limit, err := s.cfg.Engine.MaxConnections(c.ctx, in)
	if err != nil {
		c.log.Error("reading the roles' max_connections", "err", err)
		return fmt.Sprintf("cannot check your connection limit at %s now; try again", s.cfg.ClusterName), nil
	}
	release, msg = s.conns.Take(c.id.ID, limit, s.cfg.ClusterName)
	if release == nil {
		c.log.Warn("connection refused: the user has max_connections connections open", "max_connections", limit)
	}
	return msg, release
}

// Connections counts the connections each user holds open, by USER@CLUSTER of their
// certificate's signer, against their roles' options.max_connections (Teleport's), in
// one process. The zero value is ready.
type Connections struct {
	mu   sync.Mutex
	open map[string]int
}

// Take takes a place for id's user under limit (0: none) at cluster. When the user
// holds limit already, release is nil and msg says so.
func (c *Connections) Take(id policy.Cert, limit int64, cluster string) (release func(), msg string) {
	who := id.Username + "@" + id.SigningCA.Cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	if limit > 0 && int64(c.open[who]) >= limit {
		return nil, fmt.Sprintf("user %s has %d connections open at %s, the most the roles allow (options.max_connections: %d): close one and try again",
			who, c.open[who], cluster, limit)
	}
	if c.open == nil {
		c.open = map[string]int{}
	}
	c.open[who]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.open[who]--; c.open[who] <= 0 {
				delete(c.open, who)
			}
		})
	}, ""
}

func hostPrincipals(node, cluster string) []string {
	return []string{node, node + "." + cluster}
}

// userConn is one user's connection and its connection to the node, made at the first
// allowed session.
type userConn struct {
	s      *Server
	log    *slog.Logger
	id     *Identity
	login  string
	target Target
	ctx    context.Context
	user   *ssh.ServerConn

	mu       sync.Mutex
	node     *ssh.Client
	nodeErr  error
	sessions map[*session]struct{}
	// agent is the allowed agent forwarding request's input, once there is one: only
	// then are the node's auth-agent channels passed to the user.
	agent *policy.Input
	// remote holds the node's listeners asked for with tcpip-forward, by "addr:port".
	remote map[string]*session
}

// session is something live that the policy allowed: a session channel, a forwarded
// port or a remote listener. recheck decides in again when the policy changes and calls
// cancel when it is no longer allowed.
type session struct {
	in     policy.Input
	cancel func()
	// tell, when set, writes a line to the user's session (its stderr) before a cut.
	tell func(msg string)
}

// tellTimeout bounds how long a cut waits to tell the user why (a client that reads
// nothing leaves no window to write in).
const tellTimeout = time.Second

// printableRune maps the control characters a terminal acts on (C0, DEL, C1) to a space:
// a leaf's own lock message is an admin's free text.
func printableRune(r rune) rune {
	if auth.IsControl(r) {
		return ' '
	}
	return r
}

// stderrTeller writes msg on its own lines to ch's stderr, waiting at most tellTimeout.
func stderrTeller(ch ssh.Channel) func(msg string) {
	return func(msg string) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = fmt.Fprintf(ch.Stderr(), "\r\n%s\r\n", msg)
		}()
		select {
		case <-done:
		case <-time.After(tellTimeout):
		}
	}
}

// decide looks the node up and asks the engine for ssh.session. It returns the input it
// asked with and, when denied, what the user may see.
func (c *userConn) decide(n *resource.Node) (policy.Input, string) {
	return c.decideAction(policy.ActionSSHSession, n, "")
}

// decideAction asks the engine for action (ssh.session, ssh.port_forward,
// ssh.agent_forward) on node n as the connection's login; what is a log attribute naming
// the forwarded address. It returns the input and, when denied, what the user may see.
// Every decision reaches the engine's decision log.
func (c *userConn) decideAction(action string, n *resource.Node, what string) (policy.Input, string) {
	in := policy.Input{
		Action: action, Cluster: c.s.cfg.ClusterName, Now: c.s.cfg.Now(),
		Cert: c.id.ID, Login: c.login, Node: &policy.Node{Name: n.Metadata.Name, Labels: n.Metadata.Labels},
	}
	log := c.log
	if what != "" {
		log = log.With("forward", what)
	}
	d, err := c.s.cfg.Engine.Decide(c.ctx, &in)
	if err != nil {
		log.Error("deciding "+action, "err", err)
		return in, denyFor(action, c.id.ID, c.login, c.s.cfg.ClusterName, []string{"the access policy could not be evaluated; try again or ask an admin to check the cluster's logs"})
	}
	if !d.Allow {
		log.Info(action+" denied", "reasons", d.Reasons, "revision", d.Revision)
		return in, denyFor(action, c.id.ID, c.login, c.s.cfg.ClusterName, d.Reasons)
	}
	log.Info(action+" allowed", "roles", d.Roles, "revision", d.Revision)
	return in, ""
}

func (c *userConn) lookup() (*resource.Node, string) {
	n, err := c.s.cfg.Nodes(c.ctx, c.target.Node)
	if errors.Is(err, ErrNodeNotFound) {
		c.log.Warn("ssh.session denied: no such node registered", "node", c.target.Node)
		return nil, fmt.Sprintf("node %q not found in cluster %s: run tether ls to see the nodes you may reach", c.target.Node, c.s.cfg.ClusterName)
	}
	if err != nil {
		c.log.Error("looking up the node", "err", err)
		return nil, fmt.Sprintf("cannot look up node %q in cluster %s now; try again", c.target.Node, c.s.cfg.ClusterName)
	}
	if n.Spec.Addr == "" {
		c.log.Warn("ssh.session denied: the node has no address", "node", c.target.Node)
		return nil, fmt.Sprintf("node %q in cluster %s has no address to reach it by", c.target.Node, c.s.cfg.ClusterName)
	}
	return n, ""
}

func (c *userConn) session(nc ssh.NewChannel) {
	n, msg := c.lookup()
	if msg != "" {
		_ = nc.Reject(ssh.Prohibited, msg)
		return
	}
	in, msg := c.decide(n)
	if msg != "" {
		_ = nc.Reject(ssh.Prohibited, msg)
		return
	}
	node, err := c.nodeClient(n)
	if err != nil {
		c.log.Warn("connecting to the node", "addr", n.Spec.Addr, "err", err)
		_ = nc.Reject(ssh.ConnectionFailed, NodeFailureMessage(c.target.Node, c.s.cfg.ClusterName, c.login, err))
		return
	}
	nch, nreqs, err := node.OpenChannel("session", nil)
	if err != nil {
		c.log.Warn("opening a session on the node", "err", err)
		_ = nc.Reject(ssh.ConnectionFailed, fmt.Sprintf("node %q refused the session", c.target.Node))
		return
	}
	uch, ureqs, err := nc.Accept()
	if err != nil {
		nch.Close()
		return
	}
	start := time.Now()
	sctx, cancel := context.WithCancel(c.ctx)
	sess := &session{in: in, cancel: cancel, tell: stderrTeller(uch)}
	c.mu.Lock()
	if c.sessions == nil {
		c.sessions = map[*session]struct{}{}
	}
	c.sessions[sess] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.sessions, sess)
		c.mu.Unlock()
		cancel()
	}()
	relayed := make(chan struct{})
	go closeOnEnd(sctx, relayed, uch, nch)
	rec := audit.StartSession(c.ctx, c.s.cfg.Auditor, audit.ComponentForward, c.id.ID.Username, map[string]any{
		"user_cluster": c.id.ID.SigningCA.Cluster, "login": c.login, "node": c.target.Node,
		"cluster": c.s.cfg.ClusterName, "remote": c.target.ClientAddr,
	})
	up, down := relay(uch, ureqs, nch, nreqs, c.sessionRequest)
	close(relayed)
	rec.End(c.ctx, up, down)
	c.log.Info("session ended", "duration", time.Since(start).Round(time.Millisecond), "bytes_in", up, "bytes_out", down)
}

// nodeClient connects to the node once per user connection.
func (c *userConn) nodeClient(n *resource.Node) (*ssh.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.node != nil || c.nodeErr != nil {
		return c.node, c.nodeErr
	}
	c.node, c.nodeErr = c.dialNode(n)
	if c.nodeErr == nil {
		c.serveNodeChannels(c.node)
	}
	return c.node, c.nodeErr
}

func (c *userConn) closeNode() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.node != nil {
		c.node.Close()
	}
}

func (c *userConn) dialNode(n *resource.Node) (*ssh.Client, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromSigner(priv)
	if err != nil {
		return nil, err
	}
	// The openssh CA, never the user CA: nodes trust only it, so users' login certificates
	// (user CA) cannot reach a node around this connection's decision.
	cert, err := c.s.cfg.CA.OpenSSH.IssueUser(ca.UserCertRequest{
		PublicKey: signer.PublicKey(), Username: c.id.ID.Username,
		KeyID:  fmt.Sprintf("%s@%s via %s", c.id.ID.Username, c.id.ID.SigningCA.Cluster, c.s.cfg.ClusterName),
		Logins: []string{c.login}, TTL: c.s.cfg.NodeCertTTL, MaxTTL: c.s.cfg.NodeCertTTL,
		Withhold: c.withheldPermits(n), NodeAccess: true,
	})
	if err != nil {
		return nil, fmt.Errorf("issuing the node certificate: %w", err)
	}
	certSigner, err := ssh.NewCertSigner(cert, signer)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.HandshakeTimeout)
	defer cancel()
	conn, err := c.s.cfg.Dial(ctx, "tcp", n.Spec.Addr)
	if err != nil {
		return nil, err
	}
	names := []string{n.Metadata.Name}
	if n.Spec.Hostname != "" && n.Spec.Hostname != n.Metadata.Name {
		names = append(names, n.Spec.Hostname)
	}
	ccfg := &ssh.ClientConfig{
		User:            c.login,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(certSigner)},
		HostKeyCallback: nodeHostKeyCallback(HostKeyCallback(c.s.cfg.CA.Host.TrustedKeys(), names, c.s.cfg.Now)),
		Timeout:         c.s.cfg.HandshakeTimeout,
	}
	_ = conn.SetDeadline(time.Now().Add(c.s.cfg.HandshakeTimeout))
	cc, chans, reqs, err := ssh.NewClientConn(conn, n.Spec.Addr, ccfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	c.log.Debug("node SSH connection", "addr", n.Spec.Addr, "cipher", transport.SSHCipher(cc), "server_version", string(cc.ServerVersion()))
	return ssh.NewClient(cc, chans, reqs), nil
}

// HostKeyCallback accepts only a host certificate signed by one of trusted (host CA
// keys), valid now, with one of names among its principals. There is no trust on first
// use and no plain host key.
func HostKeyCallback(trusted []ca.TrustedKey, names []string, now func() time.Time) ssh.HostKeyCallback {
	return func(_ string, _ net.Addr, key ssh.PublicKey) error {
		cert, ok := key.(*ssh.Certificate)
		if !ok {
			return fmt.Errorf("the host presented a plain %s key, not a host certificate of the cluster's host CA (sign its host key with tetherctl auth sign --host)", key.Type())
		}
		if _, err := ca.VerifyHost(cert, trusted); err != nil {
			return err
		}
		t := now()
		if t.Before(time.Unix(int64(cert.ValidAfter), 0)) || (cert.ValidBefore != ssh.CertTimeInfinity && !t.Before(time.Unix(int64(cert.ValidBefore), 0))) {
			return fmt.Errorf("the host certificate %q is not valid now", cert.KeyId)
		}
		for _, p := range cert.ValidPrincipals {
			for _, n := range names {
				if p == n {
					return nil
				}
			}
		}
		return fmt.Errorf("the host certificate %q is for %v, not %v", cert.KeyId, cert.ValidPrincipals, names)
	}
}

// recheck decides every live session again when the bundle revision changes, and when
// the node it reaches is relabelled, and ends the ones now denied (a lock, a role or trust
// change, labels the roles no longer match); a removed node ends them all. The node is
// read once per tick while sessions are live; labels that did not change with the
// revision need no new decision (nor a decision-log event every tick).
func (c *userConn) recheck() {
	rev := c.s.cfg.Engine.Revision()
	t := time.NewTicker(c.s.cfg.RecheckInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		now := c.s.cfg.Engine.Revision()
		changed := now != rev
		rev = now
		type tracked struct {
			s  *session
			in policy.Input
		}
		c.mu.Lock()
		live := make([]tracked, 0, len(c.sessions))
		for s := range c.sessions {
			live = append(live, tracked{s, s.in})
		}
		c.mu.Unlock()
		if len(live) == 0 {
			continue
		}
		var node *policy.Node
		n, err := c.s.cfg.Nodes(c.ctx, c.target.Node)
		switch {
		case errors.Is(err, ErrNodeNotFound):
			c.log.Info("node removed; ending its sessions", "sessions", len(live))
			for _, l := range live {
				l.s.cancel()
			}
			continue
		case err != nil:
			// The labels cannot be read now: keep the ones decided with, and decide again
			// only for a new revision.
			c.log.Warn("reading the node to check its live sessions", "err", err)
		default:
			node = &policy.Node{Name: n.Metadata.Name, Labels: n.Metadata.Labels}
		}
		for _, l := range live {
			in := l.in
			relabelled := node != nil && (in.Node == nil || !maps.Equal(in.Node.Labels, node.Labels))
			if !changed && !relabelled {
				continue
			}
			if node != nil {
				in.Node = node
			}
			in.Now = c.s.cfg.Now()
			d, err := c.s.cfg.Engine.Decide(c.ctx, &in)
			if c.ctx.Err() != nil {
				return // the connection ended while deciding (the root cut it): nothing to recheck
			}
			if err != nil || !d.Allow {
				why := "policy changed"
				if relabelled {
					why = "node relabelled"
				}
				c.log.Info(why+"; session no longer allowed, ending it", "action", in.Action, "reasons", d.Reasons, "err", err)
				// As the root's proxy says it: a lock's message is meant for the user; any
				// other rule's reasons stay in the decision log.
				msg := fmt.Sprintf("session ended: access to %s@%s is no longer allowed", in.Login, c.target.Node)
				if err == nil && d.DeniedOnlyByLocks() {
					msg = "session ended: " + strings.Join(d.Reasons, "; ")
				}
				// Telling waits for the user's window (up to tellTimeout): each session is
				// told and cut on its own, so a user who stops reading many sessions
				// delays none of the cuts by more than that.
				go func(s *session) {
					if s.tell != nil {
						s.tell(strings.Map(printableRune, msg))
					}
					s.cancel()
				}(l.s)
				continue
			}
			c.mu.Lock()
			l.s.in = in
			c.mu.Unlock()
		}
	}
}
