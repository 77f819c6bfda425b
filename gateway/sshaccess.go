package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/forward"
	"github.com/tetherproject/tether/gateway/proxy"
	"github.com/tetherproject/tether/gateway/web"
	"github.com/tetherproject/tether/resource"
)

// nodeName is what a node's name may be when a user names it; anything else is not found
// without asking the store.
var nodeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)

// userCAKeys are the SSH user CA keys of every cluster this one knows (its own, roots on a
// leaf, leaves on a root). Which signer is trusted for a request is the policy's rule.
func userCAKeys(a *auth.Service) func(context.Context) ([]ca.TrustedKey, error) {
	return func(ctx context.Context) ([]ca.TrustedKey, error) {
		rs, err := a.Get(ctx, resource.KindCertAuthority, "", false)
		if err != nil {
			return nil, err
		}
		var out []ca.TrustedKey
		for _, r := range rs {
			c, ok := r.(*resource.CertAuthority)
			if !ok || ca.Type(c.Spec.Type) != ca.UserCA {
				continue
			}
			keys, err := ca.TrustedKeysOf(c)
			if err != nil {
				return nil, err
			}
			out = append(out, keys...)
		}
		return out, nil
	}
}

func lookupNode(a *auth.Service) func(context.Context, string) (*resource.Node, error) {
	return func(ctx context.Context, name string) (*resource.Node, error) {
		if !nodeName.MatchString(name) {
			return nil, forward.ErrNodeNotFound
		}
		rs, err := a.Get(ctx, resource.KindNode, name, false)
		if errors.Is(err, auth.ErrNotFound) {
			return nil, forward.ErrNodeNotFound
		}
		if err != nil {
			return nil, err
		}
		if n, ok := rs[0].(*resource.Node); ok && len(rs) == 1 {
			return n, nil
		}
		return nil, fmt.Errorf("node %q: unexpected resource", name)
	}
}

func lookupRemoteCluster(a *auth.Service) func(context.Context, string) (*resource.RemoteCluster, error) {
	return func(ctx context.Context, name string) (*resource.RemoteCluster, error) {
		if resource.CheckClusterName(name) != nil {
			return nil, proxy.ErrClusterNotFound
		}
		rs, err := a.Get(ctx, resource.KindRemoteCluster, name, false)
		if errors.Is(err, auth.ErrNotFound) {
			return nil, proxy.ErrClusterNotFound
		}
		if err != nil {
			return nil, err
		}
		if rc, ok := rs[0].(*resource.RemoteCluster); ok && len(rs) == 1 {
			return rc, nil
		}
		return nil, fmt.Errorf("remote cluster %q: unexpected resource", name)
	}
}

// newSSHAccess builds the cluster's enforcement point and its proxy's SSH entry.
func (g *Gateway) newSSHAccess(publicHosts []string) error {
	var err error
	g.forward, err = forward.New(forward.Config{
		ClusterName: g.cfg.ClusterName, CA: g.auth.CA(), Engine: g.engine,
		TrustedUserKeys: userCAKeys(g.auth), Nodes: lookupNode(g.auth), Logger: g.log, Auditor: g.auditor,
		Ciphers: g.cfg.Ciphers,
	})
	if err != nil {
		return err
	}
	g.sshProxy, err = proxy.New(proxy.Config{
		ClusterName: g.cfg.ClusterName, CA: g.auth.CA(), Engine: g.engine,
		TrustedUserKeys: userCAKeys(g.auth), Forward: g.forward, RemoteCluster: lookupRemoteCluster(g.auth),
		HostPrincipals: publicHosts, Logger: g.log, Auditor: g.auditor, Ciphers: g.cfg.Ciphers,
		MaxStartups: g.cfg.Proxy.SSHMaxStartups, MaxStartupsPerSource: g.cfg.Proxy.SSHMaxStartupsPerSource,
		MaxSessions: g.cfg.Proxy.SSHMaxSessions,
	})
	return err
}

// openNodeRoute opens the SSH entry's route for a user the web API authenticated (tether
// proxy ssh over TLS, web.HandleNodeStreams).
func (g *Gateway) openNodeRoute(ctx context.Context, req web.UserRequest, target string) (web.NodeRoute, string) {
	key, err := ssh.ParsePublicKey(req.SSHCert)
	cert, ok := key.(*ssh.Certificate)
	if err != nil || !ok {
		return nil, "not signed in, or the sign-in has expired: run tether login again"
	}
	route, msg := g.sshProxy.OpenRoute(ctx, cert, req.ID, target, req.ClientAddr)
	if route == nil {
		return nil, msg
	}
	return route, ""
}

// SetLeafDialer connects the root's SSH entry to its leaves' tunnels (nil: every leaf
// reads as offline).
func (g *Gateway) SetLeafDialer(d proxy.LeafDialer) { g.sshProxy.SetLeaves(d) }

// HandleTunnelStream serves one user SSH connection a root sent through the tunnel to
// this cluster (a leaf) for nodeName: the leaf's own enforcement point authenticates the
// user and decides. userCert is what the root authenticated, for the log only.
func (g *Gateway) HandleTunnelStream(ctx context.Context, conn net.Conn, nodeName string, userCert []byte, clientAddr string) {
	if err := g.forward.ServeConn(ctx, conn, forward.Target{Node: nodeName, ClientAddr: clientAddr}); err != nil {
		g.log.Info("tunnelled SSH connection ended", "node", nodeName, "client", clientAddr, "err", err)
	}
}

// hostOf is the host of HOST:PORT, or addr when it has no port.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
