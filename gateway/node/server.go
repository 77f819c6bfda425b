package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/internal/startups"
)

// Permission extensions the authentication callback hands to the session.
const (
	permLogin = "tether-login"
	permKeyID = "tether-key-id"
	permUser  = "tether-user"
	permPTY   = "tether-permit-pty"
)

// handshakeTimeout bounds the SSH handshake and authentication of one connection.
const handshakeTimeout = 30 * time.Second

// serve accepts SSH connections until ctx ends, then closes them.
func (a *Agent) serve(ctx context.Context) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		// limit holds a place for each connection in its handshake (MaxStartups).
		limit = startups.New(a.cfg.MaxStartups, a.cfg.MaxStartupsPerSource)
	)
	stop := context.AfterFunc(ctx, func() {
		a.listener.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	defer wg.Wait()
	for {
		c, err := a.listener.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("node: accepting SSH connections: %w", err)
		}
		handshaken, ok := limit.Admit(c, a.log, "max_startups", "connections")
		if !ok {
			continue
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { mu.Lock(); delete(conns, c); mu.Unlock() }()
			defer handshaken()
			a.handleConn(ctx, c, handshaken)
		}()
	}
}

// serverConfig is built per connection from the identity as it is now, so renewed host
// certificates and rotated user CA keys apply to the next connection.
func (a *Agent) serverConfig() *ssh.ServerConfig {
	id := a.identity()
	cfg := &ssh.ServerConfig{
		ServerVersion: "SSH-2.0-Tether",
		// Only public keys (certificates): no PasswordCallback nor
		// KeyboardInteractiveCallback, so those methods are never offered and every
		// attempt with them fails (and is logged by AuthLogCallback).
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			return a.authenticate(id, meta, key)
		},
		AuthLogCallback: func(meta ssh.ConnMetadata, method string, err error) {
			switch {
			case err == nil:
				a.log.Info("ssh login accepted", "login", meta.User(), "remote", meta.RemoteAddr().String(), "method", method)
			case method == "none":
				a.log.Debug("ssh client probing authentication methods", "login", meta.User(), "remote", meta.RemoteAddr().String())
			case method == "publickey":
				// authenticate logged the reason.
			default:
				a.log.Warn("ssh login denied", "login", meta.User(), "remote", meta.RemoteAddr().String(), "method", method,
					"reason", "only the cluster's node certificates (openssh CA) are accepted; "+method+" authentication is disabled")
			}
		},
	}
	cfg.Ciphers = a.cfg.Ciphers
	cfg.AddHostKey(id.signer)
	return cfg
}

// authenticate starts from "denied": it returns permissions only when key is a user
// certificate signed by one of the cluster's openssh CA keys, valid now (no clock skew
// allowed), whose principals include the requested login, and the login is a user on
// this host. Every denial is logged with its reason; the client learns nothing more
// than that the key was refused.
func (a *Agent) authenticate(id *identity, meta ssh.ConnMetadata, key ssh.PublicKey) (perms *ssh.Permissions, err error) {
	login := meta.User()
	defer func() {
		if err != nil {
			perms = nil
			a.log.Warn("ssh login denied", "login", login, "remote", meta.RemoteAddr().String(), "method", "publickey", "reason", err.Error())
			err = errors.New("access denied")
		}
	}()
	if a.removed.Load() {
		return nil, errors.New("the cluster no longer knows this node (an admin removed it); it accepts no login until it joins again")
	}
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		return nil, fmt.Errorf("a plain %s key (%s), not a certificate: only the cluster's node certificates (openssh CA) are accepted", key.Type(), ssh.FingerprintSHA256(key))
	}
	cas, err := id.nodeCAs()
	if err != nil {
		return nil, err
	}
	trusted := make([]ca.TrustedKey, 0, len(cas))
	for _, k := range cas {
		trusted = append(trusted, ca.TrustedKey{Cluster: id.ClusterName, Type: ca.OpenSSHCA, Key: k})
	}
	// Only the openssh CA's certificates: the user CA signs users' login certificates, and
	// one of those reaching the node straight would skip the enforcement point's decision
	// (labels, deny rules, locks). The extension is a second lock on the same door.
	_, isNodeCert := cert.Extensions[ca.ExtNodeAccess]
	loginCert := fmt.Errorf("certificate %q is a user's login certificate, not one the cluster's enforcement point issued after deciding the session: reach nodes through the proxy (tether ssh, tether proxy ssh)", cert.KeyId)
	if _, err := ca.VerifyNodeAccess(cert, trusted); err != nil {
		if !isNodeCert && errors.Is(err, ca.ErrUnknownAuthority) {
			return nil, fmt.Errorf("%w (%v)", loginCert, err)
		}
		return nil, err
	}
	if !isNodeCert {
		return nil, loginCert
	}
	now := a.cfg.Now()
	if after := int64(cert.ValidAfter); after < 0 || now.Unix() < after {
		return nil, fmt.Errorf("certificate %q is not valid before %s", cert.KeyId, time.Unix(int64(cert.ValidAfter), 0).UTC().Format(time.RFC3339))
	}
	if before := cert.ValidBefore; before != ssh.CertTimeInfinity && (int64(before) < 0 || now.Unix() >= int64(before)) {
		return nil, fmt.Errorf("certificate %q expired at %s", cert.KeyId, time.Unix(int64(before), 0).UTC().Format(time.RFC3339))
	}
	found := false
	for _, p := range cert.ValidPrincipals {
		if p == login {
			found = true
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("certificate %q does not allow login %q (its logins: %v)", cert.KeyId, login, cert.ValidPrincipals)
	}
	if _, err := lookupUser(login); err != nil {
		return nil, err
	}
	perms = &ssh.Permissions{Extensions: map[string]string{
		permLogin: login,
		permKeyID: cert.KeyId,
		permUser:  cert.Extensions[ca.ExtUser],
	}}
	if _, ok := cert.Extensions["permit-pty"]; ok {
		perms.Extensions[permPTY] = ""
	}
	if _, ok := cert.Extensions["permit-port-forwarding"]; ok {
		perms.Extensions[permPortForward] = ""
	}
	if _, ok := cert.Extensions["permit-agent-forwarding"]; ok {
		perms.Extensions[permAgentForward] = ""
	}
	if cert.ValidBefore != ssh.CertTimeInfinity {
		perms.Extensions["tether-valid-before"] = fmt.Sprint(cert.ValidBefore)
	}
	return perms, nil
}

// handleConn runs the handshake and then the connection's channels and requests. The
// connection ends when its certificate expires.
// handshaken is called once the handshake has ended, successfully or not.
func (a *Agent) handleConn(ctx context.Context, c net.Conn, handshaken func()) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(c, a.serverConfig())
	handshaken()
	if err != nil {
		a.log.Debug("ssh handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	_ = c.SetDeadline(time.Time{})
	defer sc.Close()
	log := a.log.With("login", sc.User(), "remote", c.RemoteAddr().String(), "cert", sc.Permissions.Extensions[permKeyID])
	var vb uint64
	if _, err := fmt.Sscan(sc.Permissions.Extensions["tether-valid-before"], &vb); err == nil {
		t := time.AfterFunc(time.Until(time.Unix(int64(vb), 0)), func() {
			log.Info("closing the connection: its certificate expired")
			sc.Close()
		})
		defer t.Stop()
	}
	fwd := &forwards{a: a, conn: sc, log: log}
	defer fwd.closeAll()
	go func() {
		for r := range reqs {
			ok, reply := false, []byte(nil)
			switch r.Type {
			case "tcpip-forward":
				var why string
				if ok, reply, why = fwd.tcpipForward(r); !ok {
					log.Warn("refused a remote port forward", "reason", why)
				}
			case "cancel-tcpip-forward":
				ok = fwd.cancel(r)
			case "streamlocal-forward@openssh.com":
				log.Warn("refused a Unix socket forwarding request: not served by this node", "request", r.Type)
			default:
				log.Debug("refused a global request", "request", r.Type)
			}
			if r.WantReply {
				_ = r.Reply(ok, reply)
			}
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	sessions := make(chan struct{}, a.cfg.MaxSessions)
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			select {
			case sessions <- struct{}{}:
			default:
				log.Warn("refused a session: MaxSessions sessions are open on this connection", "max_sessions", a.cfg.MaxSessions)
				_ = nc.Reject(ssh.ResourceShortage, fmt.Sprintf("at most %d sessions at once on one connection (MaxSessions)", a.cfg.MaxSessions))
				continue
			}
			ch, creqs, err := nc.Accept()
			if err != nil {
				<-sessions
				log.Debug("accepting a session channel", "err", err)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sessions }()
				a.runSession(ctx, sc, ch, creqs, log)
			}()
		case "direct-tcpip":
			wg.Add(1)
			go func() {
				defer wg.Done()
				fwd.directTCPIP(sc, nc, log)
			}()
		case "direct-streamlocal@openssh.com":
			log.Warn("refused a Unix socket forwarding channel: not served by this node", "channel", nc.ChannelType())
			_ = nc.Reject(ssh.Prohibited, "Unix socket forwarding is not served by this node")
		default:
			log.Warn("refused a channel", "channel", nc.ChannelType())
			_ = nc.Reject(ssh.UnknownChannelType, fmt.Sprintf("channel type %q is not served by this node", nc.ChannelType()))
		}
	}
}
