package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/audit"
	"github.com/tetherproject/tether/gateway/forward"
	"github.com/tetherproject/tether/internal/relaycopy"
	"github.com/tetherproject/tether/internal/startups"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/transport"
	"github.com/tetherproject/tether/transport/frame"
)

// SubsystemPrefix begins the subsystem name that asks for a node: proxy:NODE[:PORT]@CLUSTER.
const SubsystemPrefix = "proxy:"

// ErrClusterNotFound is what Config.RemoteCluster returns for an unknown cluster.
var ErrClusterNotFound = errors.New("cluster not found")

// LeafDialer reaches a leaf cluster's enforcement point through its tunnel. The stream
// it returns carries the user's SSH connection to nodeName; the leaf authenticates the
// user and decides again. userCert is the certificate the root authenticated, in SSH
// wire form, and clientAddr the user's address, both for the leaf's log.
type LeafDialer interface {
	DialLeaf(ctx context.Context, leaf, nodeName string, userCert []byte, clientAddr string) (net.Conn, error)
}

// Config configures a Server. Every field but Leaves, Logger and Now is required.
type Config struct {
	ClusterName string
	CA          *ca.Cluster
	Engine      *policy.Engine
	// TrustedUserKeys are the user CA keys whose certificates may authenticate.
	TrustedUserKeys func(ctx context.Context) ([]ca.TrustedKey, error)
	// Forward is this cluster's enforcement point, for its own nodes.
	Forward *forward.Server
	// RemoteCluster returns a leaf's remote_cluster resource; ErrClusterNotFound when none.
	RemoteCluster func(ctx context.Context, name string) (*resource.RemoteCluster, error)
	// Leaves reaches leaf clusters; nil means every leaf is offline.
	Leaves LeafDialer
	// HostPrincipals are the names clients reach this proxy by (its public host name,
	// listen host); the cluster name and localhost are added.
	HostPrincipals []string
	Logger         *slog.Logger
	Now            func() time.Time
	// Auditor receives session.start and session.end; nil records nothing.
	Auditor audit.Auditor
	// RecheckInterval is how often a session routed to a leaf is checked against the
	// root's policy (a new bundle revision: a lock, a role or trust change; new labels on
	// the remote_cluster; a time bound of the decision); 0 means
	// forward.DefaultRecheckInterval.
	RecheckInterval time.Duration
	// Ciphers, when not empty, are the only ciphers offered to users (config ciphers).
	Ciphers []string
	// MaxStartups is how many connections may be in the SSH handshake at once (OpenSSH's
	// MaxStartups, as its hard limit); one over it is closed unanswered. Zero means
	// DefaultMaxStartups.
	MaxStartups int
	// MaxStartupsPerSource is how many of them may come from one source
	// (startups.Source). Zero means DefaultMaxStartupsPerSource.
	MaxStartupsPerSource int
	// MaxSessions is how many session and direct-tcpip channels one connection may have
	// open at once (OpenSSH's MaxSessions, counting both kinds: each may become a tunnel
	// stream and a handshake at a leaf); more are refused as a resource shortage. Zero
	// means DefaultMaxSessions.
	MaxSessions int
}

// Defaults of the connection limits, OpenSSH's.
const (
	DefaultMaxStartups = 100
	// DefaultMaxStartupsPerSource is OpenSSH's MaxStartups full-refusal figure (10:30:100).
	DefaultMaxStartupsPerSource = 30
	DefaultMaxSessions          = 10
)

// Server is the SSH entry of a proxy.
type Server struct {
	cfg        Config
	log        *slog.Logger
	principals []string
	leaves     atomic.Pointer[LeafDialer]

	hostMu    sync.Mutex
	host      ssh.Signer // the current host certificate and its key
	hostBy    []byte     // the CA key that signed it, wire form
	hostRenew time.Time  // when half its lifetime has passed

	// conns counts the routes each user holds to leaves, for the root's roles'
	// options.max_connections (a leaf counts again under the roles it maps to).
	conns forward.Connections

	wg sync.WaitGroup
}

// New issues the proxy's host certificate and returns the Server.
func New(cfg Config) (*Server, error) {
	if cfg.ClusterName == "" || cfg.CA == nil || cfg.Engine == nil || cfg.TrustedUserKeys == nil || cfg.Forward == nil || cfg.RemoteCluster == nil {
		return nil, errors.New("proxy: ClusterName, CA, Engine, TrustedUserKeys, Forward and RemoteCluster are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RecheckInterval <= 0 {
		cfg.RecheckInterval = forward.DefaultRecheckInterval
	}
	principals := []string{cfg.ClusterName}
	seen := map[string]bool{cfg.ClusterName: true}
	for _, p := range append(append([]string{}, cfg.HostPrincipals...), "localhost", "127.0.0.1", "::1") {
		if p != "" && !seen[p] {
			seen[p] = true
			principals = append(principals, p)
		}
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "proxy-ssh", "cluster", cfg.ClusterName), principals: principals}
	if _, err := s.hostSigner(); err != nil {
		return nil, fmt.Errorf("issuing the proxy's host certificate: %w", err)
	}
	if cfg.Leaves != nil {
		s.SetLeaves(cfg.Leaves)
	}
	return s, nil
}

// HostCertTTL is the lifetime of the proxy's host certificate; it is re-issued when half
// of it has passed.
const HostCertTTL = 24 * time.Hour

// hostSigner returns the proxy's host certificate, issuing a new one (for a new key) when
// there is none yet, when the host CA's signing key is no longer the one that signed it
// (a rotation moved to update_clients, or rolled back), or when half its lifetime has
// passed. Clients that trust only the signing key (a tether login after the rotation)
// thus accept the proxy without a restart.
func (s *Server) hostSigner() (ssh.Signer, error) {
	s.hostMu.Lock()
	defer s.hostMu.Unlock()
	signing := s.cfg.CA.Host.SigningKey()
	if signing == nil {
		return nil, errors.New("the host CA has no signing key")
	}
	if s.host != nil && bytes.Equal(s.hostBy, signing.Marshal()) && s.cfg.Now().Before(s.hostRenew) {
		return s.host, nil
	}
	host, err := forward.HostSigner(s.cfg.CA.Host, s.principals, HostCertTTL)
	if err != nil {
		return nil, err
	}
	cert, ok := host.PublicKey().(*ssh.Certificate)
	if !ok {
		return nil, errors.New("the host signer holds no certificate")
	}
	after, before := time.Unix(int64(cert.ValidAfter), 0), time.Unix(int64(cert.ValidBefore), 0)
	renewed := s.host != nil
	s.host, s.hostBy, s.hostRenew = host, cert.SignatureKey.Marshal(), after.Add(before.Sub(after)/2)
	if renewed {
		s.log.Info("renewed the proxy's host certificate", "signing_ca", ssh.FingerprintSHA256(cert.SignatureKey), "valid_before", before.UTC())
	}
	return host, nil
}

// SetLeaves sets (or, with nil, removes) the dialer of leaf clusters; safe while serving.
func (s *Server) SetLeaves(d LeafDialer) {
	if d == nil {
		s.leaves.Store(nil)
		return
	}
	s.leaves.Store(&d)
}

// Serve serves SSH connections from l until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	defer s.wg.Wait()
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	n := s.cfg.MaxStartups
	if n <= 0 {
		n = DefaultMaxStartups
	}
	perSource := s.cfg.MaxStartupsPerSource
	if perSource <= 0 {
		perSource = DefaultMaxStartupsPerSource
	}
	limit := startups.New(n, perSource)
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		handshaken, ok := limit.Admit(conn, s.log, "ssh_max_startups", "SSH connections")
		if !ok {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer handshaken()
			s.serveConn(ctx, conn, handshaken)
		}()
	}
}

// handshaken is called once the SSH handshake has ended, successfully or not.
func (s *Server) serveConn(ctx context.Context, conn net.Conn, handshaken func()) {
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	host, err := s.hostSigner()
	if err != nil {
		s.log.Error("issuing the proxy's host certificate; refusing the connection", "remote", conn.RemoteAddr().String(), "err", err)
		return
	}
	var id *forward.Identity
	cfg := forward.ServerConfig(ctx, host, s.cfg.TrustedUserKeys, s.cfg.Now, s.log, nil, &id)
	cfg.Ciphers = s.cfg.Ciphers
	_ = conn.SetDeadline(time.Now().Add(forward.DefaultHandshakeTimeout))
	sconn, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	handshaken()
	if err != nil {
		s.log.Debug("SSH handshake failed", "remote", conn.RemoteAddr().String(), "err", err)
		return
	}
	_ = conn.SetDeadline(time.Time{})
	defer sconn.Close()
	s.log.Debug("user SSH connection", "remote", conn.RemoteAddr().String(), "user", id.ID.Username, "cipher", transport.SSHCipher(sconn), "client_version", string(sconn.ClientVersion()))
	go ssh.DiscardRequests(reqs)
	expiry := time.AfterFunc(id.ID.ValidBefore.Sub(s.cfg.Now()), func() { sconn.Close() })
	defer expiry.Stop()
	go func() {
		<-ctx.Done()
		sconn.Close()
	}()
	var wg sync.WaitGroup
	maxSessions := s.cfg.MaxSessions
	if maxSessions <= 0 {
		maxSessions = DefaultMaxSessions
	}
	open := make(chan struct{}, maxSessions)
	for nc := range chans {
		if t := nc.ChannelType(); t != "session" && t != "direct-tcpip" {
			_ = nc.Reject(ssh.Prohibited, "the proxy serves the subsystem proxy:NODE:PORT@CLUSTER (tether ssh, or tether proxy ssh as OpenSSH's ProxyCommand) and ProxyJump (ssh -J) to nodes")
			continue
		}
		select {
		case open <- struct{}{}:
		default:
			s.log.Warn("refused a channel: ssh_max_sessions channels are open on this connection", "user", id.ID.Username,
				"remote", conn.RemoteAddr().String(), "channel", nc.ChannelType(), "max_sessions", maxSessions)
			_ = nc.Reject(ssh.ResourceShortage, fmt.Sprintf("at most %d sessions and ssh -J channels at once on one connection (proxy.ssh_max_sessions)", maxSessions))
			continue
		}
		if nc.ChannelType() == "direct-tcpip" {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-open }()
				s.directTCPIP(ctx, sconn, id, nc)
			}()
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			<-open
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-open }()
			s.session(ctx, sconn, id, ch, creqs)
		}()
	}
	wg.Wait()
}

// session waits for the subsystem request and serves it; any other request is refused.
func (s *Server) session(ctx context.Context, sconn *ssh.ServerConn, id *forward.Identity, ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		name, ok := subsystemName(req)
		var code int
		switch {
		case ok && strings.HasPrefix(name, SubsystemPrefix):
			_ = req.Reply(true, nil)
			go ssh.DiscardRequests(reqs)
			code = s.route(ctx, sconn, id, ch, strings.TrimPrefix(name, SubsystemPrefix))
		case req.Type == "shell" || req.Type == "exec":
			// ssh -p PORT user@proxy: say what the proxy is for (a refused request would
			// only read "exec request failed"), with exit status 1. Nothing runs.
			_ = req.Reply(true, nil)
			fmt.Fprintln(ch.Stderr(), "ERROR: the proxy runs no shell or command: reach a node with tether ssh login@node, ssh -J USER@PROXY login@node.cluster, or tether proxy ssh as OpenSSH's ProxyCommand (tether config)")
			code = 1
		default:
			_ = req.Reply(false, nil)
			continue
		}
		_, _ = ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(code)))
		return
	}
}

func subsystemName(req *ssh.Request) (string, bool) {
	if req.Type != "subsystem" || len(req.Payload) < 4 {
		return "", false
	}
	n := binary.BigEndian.Uint32(req.Payload)
	if int(n) != len(req.Payload)-4 {
		return "", false
	}
	return string(req.Payload[4:]), true
}

// ParseTarget reads NODE[:PORT][@CLUSTER]; a NODE ending in ".CLUSTER" loses that suffix
// (OpenSSH passes the host name it was given). An empty cluster is def.
func ParseTarget(s, def string) (node, cluster string, err error) {
	hostport, cluster := s, def
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		hostport, cluster = s[:i], s[i+1:]
	}
	if cluster == "" {
		cluster = def
	}
	cluster = resource.NormalizeClusterName(cluster)
	node = hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		node = h
	}
	node = strings.TrimSuffix(node, "."+cluster)
	if node == "" {
		return "", "", fmt.Errorf("no node named in %q: ask for NODE:PORT@CLUSTER", s)
	}
	return node, cluster, nil
}

// route serves one subsystem request: this cluster's node in-process, a leaf's through
// its tunnel. What the user reads goes to the channel's stderr; the result is the exit
// status.
func (s *Server) route(ctx context.Context, sconn *ssh.ServerConn, id *forward.Identity, ch ssh.Channel, target string) int {
	node, cluster, err := ParseTarget(target, s.cfg.ClusterName)
	if err != nil {
		fmt.Fprintln(ch.Stderr(), "ERROR:", err.Error())
		return 1
	}
	r, msg := s.open(ctx, sshPeer(sconn), id, node, cluster)
	if msg != "" {
		fmt.Fprintln(ch.Stderr(), "ERROR:", msg)
		return 1
	}
	if s.carry(ctx, id, r, ch, func(why string) {
		fmt.Fprintf(ch.Stderr(), "ERROR: the session to %s in cluster %s was ended: %s\n", node, cluster, why)
	}) {
		return 1
	}
	return 0
}

// directTCPIP serves OpenSSH's ProxyJump (ssh -J USER@PROXY login@node.cluster): a
// direct-tcpip channel to "node.cluster" (or "node" in this cluster) takes the same route
// as the subsystem — the root's cluster.route decision, then the leaf, which authenticates
// the user again and decides the session. The port is not used: the enforcement point
// reaches the node at its registered address. A refusal is the channel's rejection
// message, which OpenSSH prints.
func (s *Server) directTCPIP(ctx context.Context, sconn *ssh.ServerConn, id *forward.Identity, nc ssh.NewChannel) {
	var req struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &req); err != nil || req.Port > 65535 {
		_ = nc.Reject(ssh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	node, cluster := s.resolveHost(ctx, req.Host)
	if node == "" {
		_ = nc.Reject(ssh.Prohibited, fmt.Sprintf("no node named in %q", req.Host))
		return
	}
	r, msg := s.open(ctx, sshPeer(sconn), id, node, cluster)
	if msg != "" {
		_ = nc.Reject(ssh.Prohibited, msg)
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		r.conn.Close()
		r.finish()
		return
	}
	go ssh.DiscardRequests(reqs)
	defer ch.Close()
	s.carry(ctx, id, r, ch, func(string) {})
}

// resolveHost reads the host of a ProxyJump request: NODE.CLUSTER for a leaf this proxy
// knows (the longest matching cluster name wins), NODE or NODE.THISCLUSTER for this
// cluster's nodes. Whether the user may reach the cluster is decided later, the same way
// for a known and an unknown name.
func (s *Server) resolveHost(ctx context.Context, host string) (node, cluster string) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	own := resource.NormalizeClusterName(s.cfg.ClusterName)
	for i := strings.IndexByte(host, '.'); i > 0; {
		candidate := host[i+1:]
		if candidate == own {
			return host[:i], own
		}
		if _, err := s.cfg.RemoteCluster(ctx, candidate); err == nil {
			return host[:i], candidate
		}
		j := strings.IndexByte(host[i+1:], '.')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return host, own
}

// peer is the user's end of a route: the address they connect from, the name they gave
// the entry (the SSH user name; the certificate's user for tether proxy ssh over TLS) and
// the entry ("ssh", "tls"), for the log and the audit record.
type peer struct {
	remote, login, entry string
}

func sshPeer(sconn *ssh.ServerConn) peer {
	return peer{remote: sconn.RemoteAddr().String(), login: sconn.User(), entry: "ssh"}
}

// routed is a stream to the enforcement point that serves node, ready to carry the
// user's SSH connection.
type routed struct {
	node, cluster string
	peer          peer
	conn          net.Conn
	log           *slog.Logger
	// done is closed when this cluster's own enforcement point has finished with the
	// connection; nil for a leaf.
	done <-chan struct{}
	// in and expires are the leaf route's cluster.route decision, to decide again.
	in      *policy.Input
	expires time.Time
	// release gives back the user's place under max_connections; nil for none.
	release func()
}

// finish waits for this cluster's enforcement point to be done with the route and gives
// back the user's place; call it once the route has ended.
func (r *routed) finish() {
	if r.done != nil {
		<-r.done
	}
	if r.release != nil {
		r.release()
	}
}

// open reaches node in cluster for the user: this cluster's enforcement point in-process,
// or a leaf's through its tunnel after the root's cluster.route decision. It returns what
// the user reads when it cannot.
func (s *Server) open(ctx context.Context, p peer, id *forward.Identity, node, cluster string) (*routed, string) {
	client := p.remote
	log := s.log.With("user", id.ID.Username, "node", node, "target_cluster", cluster, "client", client)
	if cluster == s.cfg.ClusterName {
		local, remote := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := s.cfg.Forward.ServeConn(ctx, local, forward.Target{Node: node, ClientAddr: client}); err != nil {
				log.Info("forwarded connection ended", "err", err)
			}
		}()
		return &routed{node: node, cluster: cluster, peer: p, conn: remote, log: log, done: done}, ""
	}
	rc, err := s.cfg.RemoteCluster(ctx, cluster)
	notFound := fmt.Sprintf("cluster %s not found: run tether clusters to see the clusters you may reach", cluster)
	if errors.Is(err, ErrClusterNotFound) {
		log.Info("cluster.route denied: no such cluster")
		return nil, notFound
	}
	if err != nil {
		log.Error("looking up the cluster", "err", err)
		return nil, fmt.Sprintf("cannot look up cluster %s now; try again", cluster)
	}
	in := policy.Input{
		Action: policy.ActionClusterRoute, Cluster: s.cfg.ClusterName, Now: s.cfg.Now(), Cert: id.ID,
		RemoteCluster: &policy.RemoteCluster{Name: rc.Metadata.Name, Labels: rc.Metadata.Labels},
	}
	d, err := s.cfg.Engine.Decide(ctx, &in)
	if err != nil {
		log.Error("deciding cluster.route", "err", err)
		return nil, fmt.Sprintf("cannot decide access to cluster %s now; try again", cluster)
	}
	if !d.Allow {
		log.Info("cluster.route denied", "reasons", d.Reasons)
		if d.DeniedOnlyByLocks() {
			// A lock names the user (or their role, login, certificate), not the cluster:
			// saying so reveals nothing about the cluster and tells the user why (Teleport:
			// "lock targeting ... is in force").
			return nil, fmt.Sprintf("access to cluster %s denied: %s", cluster, strings.Join(d.Reasons, "; "))
		}
		// A cluster the user may not reach reads as one that does not exist.
		return nil, notFound
	}
	log.Info("cluster.route allowed", "roles", d.Roles)
	leaves := s.leaves.Load()
	if leaves == nil {
		log.Info("no tunnel to leaf clusters")
		return nil, fmt.Sprintf("cluster %s is offline", cluster)
	}
	// The root's roles' max_connections holds across its leaves, as Teleport's proxy
	// counts a user's connections; an unreadable limit refuses.
	limit, err := s.cfg.Engine.MaxConnections(ctx, &in)
	if err != nil {
		log.Error("reading the roles' max_connections", "err", err)
		return nil, fmt.Sprintf("cannot check your connection limit at %s now; try again", s.cfg.ClusterName)
	}
	release, msg := s.conns.Take(id.ID, limit, s.cfg.ClusterName)
	if release == nil {
		log.Warn("route refused: the user has max_connections routes open", "max_connections", limit)
		return nil, msg
	}
	conn, err := (*leaves).DialLeaf(ctx, rc.Metadata.Name, node, id.Cert.Marshal(), client)
	if err != nil {
		release()
		log.Info("dialing the leaf", "err", err)
		return nil, LeafDialMessage(cluster, node, err)
	}
	return &routed{node: node, cluster: cluster, peer: p, conn: conn, log: log, in: &in, expires: d.ExpiresAt, release: release}, ""
}

// carry copies between the user's side (an SSH channel, or the stream of tether proxy ssh
// over TLS) and r until either side ends, recorded as one session; a leaf route is
// decided again while it lasts (recheckRoute), and a denial calls say with the reason
// and ends it. It reports whether the route was cut.
func (s *Server) carry(ctx context.Context, id *forward.Identity, r *routed, user io.ReadWriter, say func(why string)) bool {
	var cut atomic.Bool
	if r.in != nil {
		watchCtx, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		go s.recheckRoute(watchCtx, r.log, *r.in, r.expires, func(why string) {
			cut.Store(true)
			say(why)
			r.conn.Close()
		})
	}
	rec := audit.StartSession(ctx, s.cfg.Auditor, audit.ComponentProxy, id.ID.Username, map[string]any{
		"user_cluster": id.ID.SigningCA.Cluster, "node": r.node, "cluster": r.cluster,
		"remote": r.peer.remote, "login": r.peer.login, "entry": r.peer.entry})
	up, down := pipe(user, r.conn)
	rec.End(ctx, up, down)
	r.finish()
	return cut.Load()
}

// recheckRoute decides a routed session's cluster.route again while it lasts: when the
// bundle revision changes (a lock, a role, a trust change), when the remote_cluster's
// labels change or it is removed, and when the decision's time bound passes. On a denial
// it calls end with what the user reads, once, and returns; it returns when ctx ends.
// The leaf decides its own sessions again too; this covers the root's rules, which only
// the root knows (its locks, cluster_labels).
func (s *Server) recheckRoute(ctx context.Context, log *slog.Logger, in policy.Input, expires time.Time, end func(why string)) {
	rev := s.cfg.Engine.Revision()
	t := time.NewTicker(s.cfg.RecheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.cfg.Now()
		changed := s.cfg.Engine.Revision() != rev
		rc, err := s.cfg.RemoteCluster(ctx, in.RemoteCluster.Name)
		switch {
		case errors.Is(err, ErrClusterNotFound):
			log.Info("cluster removed; ending the routed session")
			end("the cluster was removed")
			return
		case err != nil:
			log.Warn("reading the remote cluster to check a routed session", "err", err)
		case !maps.Equal(rc.Metadata.Labels, in.RemoteCluster.Labels):
			in.RemoteCluster = &policy.RemoteCluster{Name: rc.Metadata.Name, Labels: rc.Metadata.Labels}
			changed = true
		}
		if !changed && (expires.IsZero() || now.Before(expires)) {
			continue
		}
		rev = s.cfg.Engine.Revision()
		in.Now = now
		d, err := s.cfg.Engine.Decide(ctx, &in)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Error("deciding cluster.route again; ending the routed session", "err", err)
			end("the access policy could not be evaluated")
			return
		}
		if !d.Allow {
			log.Info("cluster.route no longer allowed; ending the routed session", "reasons", d.Reasons)
			if d.DeniedOnlyByLocks() {
				end(strings.Join(d.Reasons, "; "))
			} else {
				end("access to the cluster is no longer allowed")
			}
			return
		}
		expires = d.ExpiresAt
	}
}

// LeafDialMessage is what the user reads when the root could not reach node through
// cluster's tunnel: the leaf's own refusal (an unknown node, said by the leaf, which alone
// knows its nodes), a name that is no node name (never sent), or the leaf offline.
func LeafDialMessage(cluster, node string, err error) string {
	var denied *transport.DialDeniedError
	switch {
	case errors.As(err, &denied):
		return fmt.Sprintf("cluster %s refused the connection: %s", cluster, denied.Reason)
	case errors.Is(err, frame.ErrNotANodeName):
		return fmt.Sprintf("node %q not found in cluster %s: give a node's name, not an address", node, cluster)
	default:
		return fmt.Sprintf("cluster %s is offline", cluster)
	}
}

// pipe copies between the user's side and conn until conn's side ends, then closes
// conn; the user's side is closed for writing when it can be (an SSH channel). The copy
// from the user's side ends when the caller closes it. It returns the bytes from the
// user (as far as copied when conn's side ended) and to the user.
func pipe(user io.ReadWriter, conn net.Conn) (in, out int64) {
	var inN atomic.Int64
	go func() {
		_, _ = relaycopy.Copy(countingWriter{conn, &inN}, user)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			conn.Close()
		}
	}()
	out, _ = relaycopy.Copy(user, conn)
	if cw, ok := user.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	conn.Close()
	return inN.Load(), out
}

// countingWriter adds what it writes to n as it goes, so a reader sees the bytes copied
// so far while the copy still runs.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	k, err := c.w.Write(p)
	c.n.Add(int64(k))
	return k, err
}

// Route is a user's route to a node opened outside the SSH entry: tether proxy ssh over
// TLS, whose user the web API authenticated with the same certificates (the TLS client
// certificate and the SSH certificate of one key). OpenRoute decides and dials as the
// proxy: subsystem does; Carry carries it; Close gives up one that will not be carried.
type Route struct {
	s  *Server
	id *forward.Identity
	r  *routed
}

// OpenRoute reaches target (NODE[:PORT][@CLUSTER]) for the holder of cert, whose reading
// is id: cert must have been verified against this cluster's user CA by the caller, and
// remote is the user's address. When it cannot, it returns what the user reads.
func (s *Server) OpenRoute(ctx context.Context, cert *ssh.Certificate, id policy.Cert, target, remote string) (*Route, string) {
	node, cluster, err := ParseTarget(target, s.cfg.ClusterName)
	if err != nil {
		return nil, err.Error()
	}
	fid := &forward.Identity{Cert: cert, ID: id}
	r, msg := s.open(ctx, peer{remote: remote, login: id.Username, entry: "tls"}, fid, node, cluster)
	if msg != "" {
		return nil, msg
	}
	return &Route{s: s, id: fid, r: r}, ""
}

// Carry copies between user and the node until either side ends, as the subsystem does,
// and ends the route when the certificate expires, as the SSH entry ends the connection.
// A cut (a decision that no longer allows the route, the expiry) calls say with what the
// user reads and is reported.
func (rt *Route) Carry(ctx context.Context, user io.ReadWriter, say func(why string)) bool {
	inner := say
	say = func(why string) {
		inner(fmt.Sprintf("the session to %s in cluster %s was ended: %s", rt.r.node, rt.r.cluster, why))
	}
	var expired atomic.Bool
	expiry := time.AfterFunc(rt.id.ID.ValidBefore.Sub(rt.s.cfg.Now()), func() {
		expired.Store(true)
		say("your certificate expired: run tether login again")
		rt.r.conn.Close()
	})
	cut := rt.s.carry(ctx, rt.id, rt.r, user, say)
	expiry.Stop()
	return cut || expired.Load()
}

// Close gives up a route that will not be carried.
func (rt *Route) Close() {
	rt.r.conn.Close()
	rt.r.finish()
}
