package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	// Ciphers, when not empty, are the only ciphers offered to users (config ciphers).
	Ciphers []string
}

// Server is the SSH entry of a proxy.
type Server struct {
	cfg    Config
	log    *slog.Logger
	host   ssh.Signer
	leaves atomic.Pointer[LeafDialer]

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
	principals := []string{cfg.ClusterName}
	seen := map[string]bool{cfg.ClusterName: true}
	for _, p := range append(append([]string{}, cfg.HostPrincipals...), "localhost", "127.0.0.1", "::1") {
		if p != "" && !seen[p] {
			seen[p] = true
			principals = append(principals, p)
		}
	}
	host, err := forward.HostSigner(cfg.CA.Host, principals, 0)
	if err != nil {
		return nil, fmt.Errorf("issuing the proxy's host certificate: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "proxy-ssh", "cluster", cfg.ClusterName), host: host}
	if cfg.Leaves != nil {
		s.SetLeaves(cfg.Leaves)
	}
	return s, nil
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
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(ctx, conn)
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var id *forward.Identity
	cfg := forward.ServerConfig(ctx, s.host, s.cfg.TrustedUserKeys, s.cfg.Now, s.log, &id)
	cfg.Ciphers = s.cfg.Ciphers
	_ = conn.SetDeadline(time.Now().Add(forward.DefaultHandshakeTimeout))
	sconn, chans, reqs, err := ssh.NewServerConn(conn, cfg)
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
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.Prohibited, "the proxy serves only the subsystem proxy:NODE:PORT@CLUSTER (tether ssh, or tether proxy ssh as OpenSSH's ProxyCommand)")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
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
		if !ok || !strings.HasPrefix(name, SubsystemPrefix) {
			_ = req.Reply(false, nil)
			continue
		}
		_ = req.Reply(true, nil)
		go ssh.DiscardRequests(reqs)
		code := s.route(ctx, sconn, id, ch, strings.TrimPrefix(name, SubsystemPrefix))
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
	client := sconn.RemoteAddr().String()
	fail := func(msg string) int {
		fmt.Fprintln(ch.Stderr(), "ERROR:", msg)
		return 1
	}
	node, cluster, err := ParseTarget(target, s.cfg.ClusterName)
	if err != nil {
		return fail(err.Error())
	}
	log := s.log.With("user", id.ID.Username, "node", node, "target_cluster", cluster, "client", client)
	sessionFields := map[string]any{"user_cluster": id.ID.SigningCA.Cluster, "node": node, "cluster": cluster,
		"remote": client, "login": sconn.User()}
	if cluster == s.cfg.ClusterName {
		local, remote := net.Pipe()
		piped := make(chan struct{})
		rec := audit.StartSession(ctx, s.cfg.Auditor, audit.ComponentProxy, id.ID.Username, sessionFields)
		go func() {
			defer close(piped)
			in, out := pipe(ch, remote)
			rec.End(ctx, in, out)
		}()
		if err := s.cfg.Forward.ServeConn(ctx, local, forward.Target{Node: node, ClientAddr: client}); err != nil {
			log.Info("forwarded connection ended", "err", err)
		}
		<-piped
		return 0
	}
	rc, err := s.cfg.RemoteCluster(ctx, cluster)
	notFound := fmt.Sprintf("cluster %s not found: run tether clusters to see the clusters you may reach", cluster)
	if errors.Is(err, ErrClusterNotFound) {
		log.Info("cluster.route denied: no such cluster")
		return fail(notFound)
	}
	if err != nil {
		log.Error("looking up the cluster", "err", err)
		return fail(fmt.Sprintf("cannot look up cluster %s now; try again", cluster))
	}
	d, err := s.cfg.Engine.Decide(ctx, &policy.Input{
		Action: policy.ActionClusterRoute, Cluster: s.cfg.ClusterName, Now: s.cfg.Now(), Cert: id.ID,
		RemoteCluster: &policy.RemoteCluster{Name: rc.Metadata.Name, Labels: rc.Metadata.Labels},
	})
	if err != nil {
		log.Error("deciding cluster.route", "err", err)
		return fail(fmt.Sprintf("cannot decide access to cluster %s now; try again", cluster))
	}
	if !d.Allow {
		// A cluster the user may not reach reads as one that does not exist.
		log.Info("cluster.route denied", "reasons", d.Reasons)
		return fail(notFound)
	}
	log.Info("cluster.route allowed", "roles", d.Roles)
	leaves := s.leaves.Load()
	if leaves == nil {
		log.Info("no tunnel to leaf clusters")
		return fail(fmt.Sprintf("cluster %s is offline", cluster))
	}
	conn, err := (*leaves).DialLeaf(ctx, rc.Metadata.Name, node, id.Cert.Marshal(), client)
	if err != nil {
		log.Info("dialing the leaf", "err", err)
		return fail(LeafDialMessage(cluster, node, err))
	}
	rec := audit.StartSession(ctx, s.cfg.Auditor, audit.ComponentProxy, id.ID.Username, sessionFields)
	in, out := pipe(ch, conn)
	rec.End(ctx, in, out)
	return 0
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

// pipe copies between the channel and conn until conn's side ends, then closes conn.
// The copy from the channel ends when the caller closes the channel. It returns the
// bytes from the user (as far as copied when conn's side ended) and to the user.
func pipe(ch ssh.Channel, conn net.Conn) (in, out int64) {
	var inN atomic.Int64
	go func() {
		_, _ = relaycopy.Copy(countingWriter{conn, &inN}, ch)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			conn.Close()
		}
	}()
	out, _ = relaycopy.Copy(ch, conn)
	_ = ch.CloseWrite()
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
