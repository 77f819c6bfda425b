package node

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetherproject/tether/internal/listenerr"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/gateway/audit"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/trust"
	"github.com/tetherproject/tether/gateway/web"
)

// DefaultHeartbeatInterval is how often a node heartbeats when Config says nothing.
const DefaultHeartbeatInterval = 30 * time.Second

// Config configures an Agent.
type Config struct {
	// Name is the node's name in the cluster (a host name). Required.
	Name string
	// Labels are the node's labels, re-asserted with every heartbeat.
	Labels map[string]string
	// ListenAddr is where the SSH server listens, host:port. Required.
	ListenAddr string
	// PublicAddr is the address the cluster dials the SSH server at, host:port. Default:
	// ListenAddr (required when ListenAddr's host is unspecified). A port of 0 means the
	// bound port.
	PublicAddr string
	// AuthServer is the cluster's web API, host:port. Required.
	AuthServer string
	// Token is the node token; needed only when the node has no identity yet (or it ran
	// out).
	Token string
	// TokenFunc, when Token is empty, makes a token at the moment a join is needed (a
	// node beside its cluster in one process).
	TokenFunc func(context.Context) (string, error)
	// RootCAs pins the cluster's TLS CA for the join; nil means the system roots. After
	// the join, heartbeats trust RootCAs and the TLS CAs the cluster sent.
	RootCAs *x509.CertPool
	// Insecure accepts any TLS certificate from the cluster at the join. Tests only.
	Insecure bool
	// Dir keeps the node's key and identity (data_dir/node). Required.
	Dir string
	// HeartbeatInterval is how often the node heartbeats; zero means
	// DefaultHeartbeatInterval. Each wait is jittered by up to a tenth, and the cluster
	// holds the node online for three intervals.
	HeartbeatInterval time.Duration
	// SFTPCommand runs the sftp server on stdin/stdout as the login's user; default the
	// running executable with the argument "node-sftp" (tetherd's hidden subcommand).
	SFTPCommand []string
	// NetCommand makes port forwarding's sockets as the login's user when the agent runs
	// as root: it is run with "dial HOST:PORT" or "listen 127.0.0.1:PORT" appended.
	// Default: the running executable with the argument "node-net" (tetherd's hidden
	// subcommand, ServeNet).
	NetCommand []string
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Auditor receives session.start and session.end; nil records nothing.
	Auditor audit.Auditor
	// Ciphers, when set, are the only ciphers the node's SSH server offers (the
	// cluster's ciphers option, as Teleport's teleport.ciphers); empty: x/crypto's.
	Ciphers []string
	// MaxStartups is how many connections may be in the SSH handshake and authentication
	// at once (OpenSSH's MaxStartups, as its hard limit); a connection over it is closed
	// unanswered. Each such connection gets at most 30 s (OpenSSH's LoginGraceTime). Zero
	// means DefaultMaxStartups.
	MaxStartups int
	// MaxStartupsPerSource is how many of them may come from one source
	// (startups.Source). Zero means DefaultMaxStartupsPerSource.
	MaxStartupsPerSource int
	// MaxSessions is how many session channels one connection may have open at once
	// (OpenSSH's MaxSessions); more are refused as a resource shortage. Zero means
	// DefaultMaxSessions.
	MaxSessions int
	// MaxRemoteForwards is how many remote forwards (ssh -R) one connection may hold at
	// once; more are refused. Each is a helper process of the login's when the agent runs
	// as root. Zero means DefaultMaxRemoteForwards.
	MaxRemoteForwards int
	// MaxNetHelpers is how many port forwarding helper processes (`tetherd node-net`, ≈ 4
	// MB each: one per connection that dialed in the last minute, one per ssh -R) a root
	// agent runs at once; a forward that needs one more is refused. Zero means
	// DefaultMaxNetHelpers.
	MaxNetHelpers int
}

// Defaults of the connection limits, OpenSSH's.
const (
	DefaultMaxStartups = 100
	// DefaultMaxStartupsPerSource leaves half the places to other hosts: the cluster's
	// enforcement point, from which every user's connection comes, among them.
	DefaultMaxStartupsPerSource = 50
	DefaultMaxSessions          = 10
	// DefaultMaxRemoteForwards has no OpenSSH counterpart: sshd listens in one process.
	DefaultMaxRemoteForwards = 32
	// DefaultMaxNetHelpers keeps the helpers under about 1 GiB.
	DefaultMaxNetHelpers = 256
)

// Agent is a running node agent. Create it with New, run it with Run.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	listener net.Listener
	client   *http.Client

	mu sync.RWMutex
	id *identity
	// removed is set when the cluster answers a heartbeat that it no longer knows this
	// node (an admin removed it): from then on no one logs in.
	removed atomic.Bool
	// netHelpers holds a place for each running node-net helper (MaxNetHelpers).
	netHelpers chan struct{}
}

// New checks cfg, loads the node's identity or joins the cluster with the token, and
// binds the SSH listener.
func New(ctx context.Context, cfg Config) (_ *Agent, err error) {
	if cfg.Name == "" || cfg.ListenAddr == "" || cfg.AuthServer == "" || cfg.Dir == "" {
		return nil, errors.New("node: name, listen_addr, auth_server and the data directory are required")
	}
	if err := auth.CheckNodeLabels(cfg.Labels); err != nil {
		// The cluster refuses them too; saying so here names the setting to fix.
		return nil, fmt.Errorf("node: node.labels: %w", err)
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.MaxStartups <= 0 {
		cfg.MaxStartups = DefaultMaxStartups
	}
	if cfg.MaxStartupsPerSource <= 0 {
		cfg.MaxStartupsPerSource = DefaultMaxStartupsPerSource
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.MaxRemoteForwards <= 0 {
		cfg.MaxRemoteForwards = DefaultMaxRemoteForwards
	}
	if cfg.MaxNetHelpers <= 0 {
		cfg.MaxNetHelpers = DefaultMaxNetHelpers
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(cfg.SFTPCommand) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("node: finding the executable for the sftp subsystem: %w", err)
		}
		cfg.SFTPCommand = []string{exe, SFTPSubcommand}
	}
	if len(cfg.NetCommand) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("node: finding the executable for port forwarding: %w", err)
		}
		cfg.NetCommand = []string{exe, NetSubcommand}
	}
	a := &Agent{cfg: cfg, log: cfg.Logger.With("component", "node", "node", cfg.Name), netHelpers: make(chan struct{}, cfg.MaxNetHelpers)}
	key, err := loadOrCreateKey(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if a.listener, err = net.Listen("tcp", cfg.ListenAddr); err != nil {
		return nil, listenerr.Wrap("node.listen_addr", cfg.ListenAddr, err)
	}
	defer func() {
		if err != nil {
			a.listener.Close()
		}
	}()
	if err := a.completePublicAddr(); err != nil {
		return nil, err
	}
	id, ok, err := loadIdentity(cfg.Dir, key)
	if err != nil {
		return nil, err
	}
	switch {
	case !ok:
		a.log.Info("no node identity yet: joining the cluster", "auth_server", cfg.AuthServer)
	case id.Name != cfg.Name:
		a.log.Info("node name changed: joining again", "was", id.Name)
		ok = false
	case id.expired(cfg.Now()):
		a.log.Info("the node's client certificate ran out: joining again")
		ok = false
	case cfg.Token != "" && tokenDigest(cfg.Token) != id.TokenSHA256:
		// The admin put a new token in node.token (after tetherctl rm node/NAME, say):
		// join with it. If that join fails, the earlier identity still serves, as it did
		// before the token changed, and the token is recorded as tried so later starts
		// do not try it again; the heartbeat then says whether the cluster knows the node.
		a.log.Info("node.token is not the token this node joined with: joining again")
		a.cfg.Token = cfg.Token
		next, jerr := a.join(ctx, key)
		if jerr == nil {
			id = next
			break
		}
		a.log.Warn("joining with the new node.token failed; serving with the identity of the earlier join", "err", jerr)
		id.TokenSHA256 = tokenDigest(cfg.Token)
		if err := id.save(cfg.Dir); err != nil {
			return nil, fmt.Errorf("saving the node identity: %w", err)
		}
	}
	if ok && len(id.NodeCAs) == 0 {
		a.log.Warn("the saved node identity predates the cluster's openssh CA: no login is accepted until the first heartbeat brings its keys")
	}
	if !ok {
		if cfg.Token == "" && cfg.TokenFunc != nil {
			if a.cfg.Token, err = cfg.TokenFunc(ctx); err != nil {
				return nil, fmt.Errorf("node: making a join token: %w", err)
			}
		}
		if a.cfg.Token == "" {
			return nil, errors.New("node: this node has not joined the cluster (or its identity ran out) and node.token is empty; ask the cluster's admin for a node token (tetherctl tokens add --type=node) and put it in node.token")
		}
		if id, err = a.join(ctx, key); err != nil {
			return nil, err
		}
	}
	a.id = id
	a.client = a.heartbeatClient()
	return a, nil
}

func (a *Agent) completePublicAddr() error {
	_, port, _ := net.SplitHostPort(a.listener.Addr().String())
	if a.cfg.PublicAddr == "" {
		h, _, _ := net.SplitHostPort(a.cfg.ListenAddr)
		if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
			return errors.New("node.public_addr is required when node.listen_addr listens on all addresses: the address the cluster reaches this node at, host:port")
		}
		a.cfg.PublicAddr = net.JoinHostPort(h, port)
	}
	h, p, err := net.SplitHostPort(a.cfg.PublicAddr)
	if err != nil {
		return fmt.Errorf("node.public_addr %q: want host:port", a.cfg.PublicAddr)
	}
	if p == "0" {
		a.cfg.PublicAddr = net.JoinHostPort(h, port)
	}
	return nil
}

// Addr is the SSH listener's address.
func (a *Agent) Addr() net.Addr { return a.listener.Addr() }

// PublicAddr is the address the node registered.
func (a *Agent) PublicAddr() string { return a.cfg.PublicAddr }

// HostCAs returns the cluster's host CA keys (authorized_keys form), for known_hosts.
func (a *Agent) HostCAs() []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return append([]string(nil), a.id.HostCAs...)
}

func (a *Agent) identity() *identity {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.id
}

// Run serves SSH and heartbeats until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.heartbeatLoop(ctx) }()
	a.log.Info("node agent running", "ssh", a.listener.Addr().String(), "public_addr", a.cfg.PublicAddr, "cluster", a.identity().ClusterName)
	err := a.serve(ctx)
	cancel()
	wg.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// join registers the node with the token and saves what the cluster answered.
func (a *Agent) join(ctx context.Context, key crypto.Signer) (*identity, error) {
	signer, err := ssh.NewSignerFromSigner(key)
	if err != nil {
		return nil, err
	}
	req := auth.NodeJoinRequest{
		Token: a.cfg.Token, Name: a.cfg.Name, Addr: a.cfg.PublicAddr, Labels: a.cfg.Labels,
		PublicKey:    strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))),
		HeartbeatTTL: (3 * a.cfg.HeartbeatInterval).String(),
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: a.cfg.RootCAs, InsecureSkipVerify: a.cfg.Insecure} //nolint:gosec // Insecure is for tests, warned about by the caller
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	defer client.CloseIdleConnections()
	var creds auth.NodeCredentials
	if err := postJSON(ctx, client, "https://"+a.cfg.AuthServer+web.NodeJoinPath, req, &creds); err != nil {
		return nil, fmt.Errorf("node %q joining the cluster at %s: %w", a.cfg.Name, a.cfg.AuthServer, err)
	}
	id := &identity{Name: a.cfg.Name, TokenSHA256: tokenDigest(a.cfg.Token), NodeCredentials: creds}
	if err := id.checkAnswer(key); err != nil {
		return nil, fmt.Errorf("the cluster's answer to the join: %w", err)
	}
	if err := id.save(a.cfg.Dir); err != nil {
		return nil, fmt.Errorf("saving the node identity: %w", err)
	}
	a.log.Info("joined the cluster", "cluster", creds.ClusterName, "addr", a.cfg.PublicAddr)
	return id, nil
}

// postJSON posts v and decodes the answer into out; an error answer becomes an error
// carrying the cluster's message.
func postJSON(ctx context.Context, c *http.Client, url string, v, out any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e trust.ErrorResponse
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return &statusError{Status: resp.StatusCode, Msg: e.Error}
		}
		return &statusError{Status: resp.StatusCode, Msg: strings.TrimSpace(string(data))}
	}
	return json.Unmarshal(data, out)
}

// statusError is an error answer of the cluster.
type statusError struct {
	Status int
	Msg    string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("the cluster answered %d: %s", e.Status, e.Msg)
}
