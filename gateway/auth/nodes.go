package auth

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/state"
	"github.com/tetherproject/tether/transport/frame"
)

// The node agent's side of the cluster (gateway/node is the agent): a node joins once
// with a node token and its key, and from then on heartbeats over mutual TLS with the
// X.509 certificate the join gave it. A node name is claimed by the first node key that
// joins with it (nodeclaims/<name>) until an admin removes the node (tetherctl rm
// node/NAME), like a leaf cluster's name.

// Node credentials' lifetimes.
const (
	// NodeHostCertTTL is the lifetime of a node's SSH host certificate; heartbeats
	// renew it when half of it is left or the host CA's signing key changed.
	NodeHostCertTTL = 7 * 24 * time.Hour
	// NodeTLSCertTTL is the lifetime of a node's X.509 client certificate; heartbeats
	// renew it when half of it is left. A node that was down longer must join again.
	NodeTLSCertTTL = ca.MaxTLSTTL
	// MinNodeHeartbeatTTL and MaxNodeHeartbeatTTL bound the TTL a node asks for.
	MinNodeHeartbeatTTL = 100 * time.Millisecond
	MaxNodeHeartbeatTTL = time.Hour
	// nodeHeartbeatKeep is how long a heartbeat record is kept after it was sent, so
	// that an offline node still shows when it was last heard from.
	nodeHeartbeatKeep = 24 * time.Hour
	// NodeCommonNamePrefix starts the common name of a node's client certificate.
	NodeCommonNamePrefix = "tether-node:"
)

// Audit event types of nodes.
const (
	// AuditNodeJoin: a node agent joined (or joined again with the same key).
	AuditNodeJoin = "node.join"
	// AuditNodeJoinRefused: a caller with a valid node token was refused.
	AuditNodeJoinRefused = "node.join.refused"
)

// ErrNodeNotRegistered: a heartbeat from a node whose registration is gone (an admin
// removed it) or belongs to another key.
var ErrNodeNotRegistered = errors.New("node not registered")

const nodeClaimsPrefix = "nodeclaims/"

// NodeJoinRequest is the body of POST /v1/nodes/join.
type NodeJoinRequest struct {
	// Token is a live token of type node.
	Token string `json:"token"`
	// Name is the node's name, a DNS name (tether ssh login@NAME).
	Name string `json:"name"`
	// Addr is host:port where the node's SSH server is reached.
	Addr string `json:"addr"`
	// Labels are the node's labels, from its configuration.
	Labels map[string]string `json:"labels,omitempty"`
	// PublicKey is the node's key in authorized_keys form; the host certificate and the
	// client certificate certify it, and it is what holds the name.
	PublicKey string `json:"public_key"`
	// HeartbeatTTL is how long the node counts as online after each heartbeat ("90s").
	HeartbeatTTL string `json:"heartbeat_ttl,omitempty"`
}

// NodeHeartbeatRequest is the body of POST /v1/nodes/heartbeat (mutual TLS).
type NodeHeartbeatRequest struct {
	Addr         string            `json:"addr"`
	Labels       map[string]string `json:"labels,omitempty"`
	HeartbeatTTL string            `json:"heartbeat_ttl"`
	// HostCert is the host certificate the node serves now (authorized_keys form); a
	// new one is sent back when it is due for renewal.
	HostCert string `json:"host_cert,omitempty"`
}

// NodeCredentials answer a join (everything) and a heartbeat (what is trusted now, and
// certificates that were due for renewal).
type NodeCredentials struct {
	ClusterName string `json:"cluster_name"`
	// HostCert is the node's SSH host certificate (authorized_keys form), when issued.
	HostCert string `json:"host_cert,omitempty"`
	// TLSCert is the node's X.509 client certificate (PEM), when issued.
	TLSCert string `json:"tls_cert,omitempty"`
	// TLSCAs are the cluster's TLS CA certificates (PEM).
	TLSCAs string `json:"tls_cas"`
	// NodeCAs are the public keys of the cluster's openssh CA (authorized_keys form),
	// signing key and rotation keys: the only keys the node accepts user certificates of.
	// The openssh CA signs only the enforcement point's per-connection certificates, so a
	// user's login certificate (user CA) never opens a node. (Before the openssh CA the
	// node trusted the user CA, as "user_cas"; an identity saved then is refreshed by the
	// first heartbeat.)
	NodeCAs []string `json:"node_cas"`
	// HostCAs are the public keys of the cluster's host CA, for clients' known_hosts.
	HostCAs []string `json:"host_cas"`
}

type nodeClaim struct {
	// Key is the SHA256 fingerprint of the node key that holds the name.
	Key string `json:"key"`
	// TokenLabels are the labels of the token the node joined with; they win over the
	// node's own.
	TokenLabels map[string]string `json:"token_labels,omitempty"`
}

type nodeHeartbeatData struct {
	Addr        string            `json:"addr"`
	Labels      map[string]string `json:"labels,omitempty"`
	OnlineUntil time.Time         `json:"online_until"`
}

func nodeClaimKey(name string) string { return nodeClaimsPrefix + name }

// NodeURI is the URI SAN of a node's client certificate: tether://node/NAME.
func NodeURI(name string) *url.URL { return &url.URL{Scheme: "tether", Host: "node", Path: "/" + name} }

// NodeNameOf returns the node a client certificate names, or false. The caller has
// verified the certificate's chain.
func NodeNameOf(cert *x509.Certificate) (string, bool) {
	name, ok := strings.CutPrefix(cert.Subject.CommonName, NodeCommonNamePrefix)
	if !ok || name == "" {
		return "", false
	}
	want := NodeURI(name).String()
	for _, u := range cert.URIs {
		if u.String() == want {
			return name, true
		}
	}
	return "", false
}

// nodeResource checks a node's name, address and labels as a node resource would be.
// checkNodeName refuses, on write, a node name a root would refuse in this cluster's node
// list (frame.ValidNodeName: an IP address, a path, a leading '_' or '.'): one such node
// made the root refuse the whole list, so no user of the root could list or find this
// cluster's nodes. Node names are host names besides (resource.CheckClusterName).
func checkNodeName(name string) error { return CheckNodeName(name) }

// CheckNodeName is the rule a node's name meets on write (checkNodeName), for the tools
// that certify a name before any node is written (tetherctl auth sign --host).
func CheckNodeName(name string) error {
	if err := resource.CheckClusterName(name); err != nil {
		return errorf(ErrBadRequest, "node name %s: %v (node names are host names)", strconv.QuoteToASCII(name), err)
	}
	if err := frame.ValidNodeName(name); err != nil {
		return errorf(ErrBadRequest, "node name %s: %v; a node name is a host name starting with a letter or digit, not an address (a root could not list this cluster's nodes)", strconv.QuoteToASCII(name), err)
	}
	// In normal form, whoever writes it: OpenSSH lowercases the name a user types and
	// tether drops a final dot, so "Web" beside "web" would be reached as "web", and
	// "db." never.
	if n := resource.NormalizeClusterName(name); n != name {
		return errorf(ErrBadRequest, "node name %q: write it as %q (lower case, no trailing dot)", name, n)
	}
	return nil
}

func (s *Service) nodeResource(name, addr string, labels, tokenLabels map[string]string) (*resource.Node, error) {
	if err := checkNodeName(name); err != nil {
		return nil, err
	}
	if addr == "" {
		return nil, errorf(ErrBadRequest, "node %q: the address its SSH server is reached at (host:port) is required", name)
	}
	// Whoever holds a node token or a node's key says what its labels are; every user's
	// tether ls prints them, and a root refuses a whole node list for one bad label.
	if err := CheckNodeLabels(labels); err != nil {
		return nil, errorf(ErrBadRequest, "node %q: %v: fix node.labels in the node's tether.yaml", name, err)
	}
	if err := CheckNodeLabels(tokenLabels); err != nil {
		return nil, errorf(ErrBadRequest, "node %q: its join token's labels: %v: join with a new token (tetherctl tokens add --type=node)", name, err)
	}
	all := map[string]string{}
	maps.Copy(all, labels)
	maps.Copy(all, tokenLabels)
	if len(all) > MaxNodeLabels { // each label is checked above; only the count is new
		return nil, errorf(ErrBadRequest, "node %q: node.labels and the join token's labels together: %d labels, more than %d", name, len(all), MaxNodeLabels)
	}
	if len(all) == 0 {
		all = nil
	}
	n := &resource.Node{
		Kind: resource.KindNode, Version: "v2",
		Metadata: resource.Metadata{Name: name, Labels: all},
		Spec:     resource.NodeSpec{Addr: addr, Hostname: name},
	}
	if err := n.Validate(); err != nil {
		return nil, errorf(ErrBadRequest, "%v", err)
	}
	return n, nil
}

func nodeHeartbeatTTL(s string) (time.Duration, error) {
	if s == "" {
		return 90 * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < MinNodeHeartbeatTTL || d > MaxNodeHeartbeatTTL {
		return 0, errorf(ErrBadRequest, "heartbeat_ttl %q: want a duration from %v to %v", s, MinNodeHeartbeatTTL, MaxNodeHeartbeatTTL)
	}
	return d, nil
}

// JoinNode registers a node agent. In order: the token must be a live node token (else
// ErrTokenRejected, whatever else is wrong); the name, address, labels and key must be
// well formed; the name must be free or held by this same key (ErrAlreadyExists
// otherwise, also for a node an admin registered by hand). Then it stores the node
// resource and a first heartbeat and answers with the node's credentials. A refused
// call changes nothing. remote is the caller's address, for the audit.
func (s *Service) JoinNode(ctx context.Context, req NodeJoinRequest, remote string) (*NodeCredentials, error) {
	info, ok, err := s.checkToken(ctx, req.Token, resource.TokenRoleNode)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrTokenRejected
	}
	refuse := func(err error) (*NodeCredentials, error) {
		s.log.Info("node join refused", "node", req.Name, "remote", remote, "token", info.Display(), "reason", err)
		s.Audit(ctx, AuditEvent{Type: AuditNodeJoinRefused, Fields: map[string]any{
			"node": req.Name, "remote": remote, "token": info.Display(), "reason": err.Error()}})
		return nil, err
	}
	n, err := s.nodeResource(req.Name, req.Addr, req.Labels, info.Labels)
	if err != nil {
		return refuse(err)
	}
	ttl, err := nodeHeartbeatTTL(req.HeartbeatTTL)
	if err != nil {
		return refuse(err)
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(req.PublicKey))
	if err != nil {
		return refuse(errorf(ErrBadRequest, "public_key: %v", err))
	}
	if _, ok := key.(ssh.CryptoPublicKey); !ok || key.Type() == ssh.KeyAlgoRSA || key.Type() == ssh.KeyAlgoDSA {
		return refuse(errorf(ErrBadRequest, "public_key: a %s key cannot be a node key; use ed25519 or ecdsa", key.Type()))
	}
	fp := ssh.FingerprintSHA256(key)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	taken := func() (*NodeCredentials, error) {
		return refuse(errorf(ErrAlreadyExists, "node %q is already registered with another key; a node name is claimed once. If this is the same server with a new identity, an admin must first remove it: tetherctl rm node/%s", n.Metadata.Name, n.Metadata.Name))
	}
	var claim nodeClaim
	claimed := false // this call created the claim
	it, err := s.cfg.Store.Get(ctx, nodeClaimKey(n.Metadata.Name))
	switch {
	case errors.Is(err, state.ErrNotFound):
		if ok, err := s.exists(ctx, resourceKey(resource.KindNode, n.Metadata.Name)); err != nil {
			return nil, err
		} else if ok {
			return taken() // registered by hand (an OpenSSH server)
		}
		claim = nodeClaim{Key: fp, TokenLabels: info.Labels}
		data, err := json.Marshal(claim)
		if err != nil {
			return nil, err
		}
		// Creating the claim takes the name, atomically across replicas.
		if _, err := s.cfg.Store.Create(ctx, state.Item{Key: nodeClaimKey(n.Metadata.Name), Value: data}); err != nil {
			if errors.Is(err, state.ErrAlreadyExists) {
				return taken()
			}
			return nil, fmt.Errorf("claiming node name %q: %w", n.Metadata.Name, err)
		}
		claimed = true
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(it.Value, &claim); err != nil {
			return nil, fmt.Errorf("reading the claim of node %q: %w", n.Metadata.Name, err)
		}
		if claim.Key != fp {
			return taken()
		}
		// The same node joining again (its client certificate ran out): the new
		// token's labels apply from now on.
		claim.TokenLabels = info.Labels
		if err := s.putJSON(ctx, nodeClaimKey(n.Metadata.Name), claim); err != nil {
			return nil, err
		}
	}
	creds, err := s.nodeCredentials(n, key, true, true)
	if err == nil {
		err = s.put(ctx, resourceKey(resource.KindNode, n.Metadata.Name), n)
	}
	if err == nil {
		err = s.putNodeHeartbeat(ctx, n, ttl)
	}
	if err != nil {
		if !claimed {
			return nil, err
		}
		// A failed first join must not leave the name claimed by a node that never got
		// its credentials.
		if derr := s.cfg.Store.Delete(ctx, nodeClaimKey(n.Metadata.Name)); derr != nil && !errors.Is(derr, state.ErrNotFound) {
			s.log.Error("a failed node join left its name claimed; remove it with tetherctl rm node/"+n.Metadata.Name, "err", derr)
		}
		_ = s.cfg.Store.Delete(ctx, resourceKey(resource.KindNode, n.Metadata.Name))
		return nil, err
	}
	s.log.Info("node joined", "node", n.Metadata.Name, "addr", n.Spec.Addr, "remote", remote, "token", info.Display(), "key", fp)
	s.Audit(ctx, AuditEvent{Type: AuditNodeJoin, Fields: map[string]any{
		"node": n.Metadata.Name, "addr": n.Spec.Addr, "remote": remote, "token_prefix": info.Display(), "key": fp}})
	return creds, nil
}

// NodeHeartbeat records that the node named by a verified client certificate is alive,
// re-asserts its address and labels, and answers with what it must trust now plus any
// certificate due for renewal. A node whose claim is gone or held by another key gets
// ErrNodeNotRegistered.
func (s *Service) NodeHeartbeat(ctx context.Context, name string, peer *x509.Certificate, req NodeHeartbeatRequest) (*NodeCredentials, error) {
	cryptoKey, ok := peer.PublicKey.(crypto.PublicKey)
	if !ok {
		return nil, errorf(ErrBadRequest, "client certificate without a public key")
	}
	key, err := ssh.NewPublicKey(cryptoKey)
	if err != nil {
		return nil, errorf(ErrBadRequest, "client certificate key: %v", err)
	}
	fp := ssh.FingerprintSHA256(key)
	claim, err := s.nodeClaimOf(ctx, name)
	if err != nil {
		return nil, err
	}
	if claim.Key != fp {
		return nil, fmt.Errorf("%w: node %q is registered with another key", ErrNodeNotRegistered, name)
	}
	n, err := s.nodeResource(name, req.Addr, req.Labels, claim.TokenLabels)
	if err != nil {
		return nil, err
	}
	ttl, err := nodeHeartbeatTTL(req.HeartbeatTTL)
	if err != nil {
		return nil, err
	}
	if err := s.updateNodeResource(ctx, n, fp); err != nil {
		return nil, err
	}
	if err := s.putNodeHeartbeat(ctx, n, ttl); err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	renewTLS := peer.NotAfter.Sub(now) < NodeTLSCertTTL/2 || !s.cfg.CA.TLS.IssuedBySigning(peer)
	return s.nodeCredentials(n, key, s.hostCertDue(req.HostCert, key, now), renewTLS)
}

// nodeClaimOf reads the claim on a node name; a missing one is ErrNodeNotRegistered.
func (s *Service) nodeClaimOf(ctx context.Context, name string) (nodeClaim, error) {
	var claim nodeClaim
	it, err := s.cfg.Store.Get(ctx, nodeClaimKey(name))
	if errors.Is(err, state.ErrNotFound) {
		return claim, fmt.Errorf("%w: node %q is not registered (an admin removed it?); join again with a new token (tetherctl tokens add --type=node)", ErrNodeNotRegistered, name)
	}
	if err != nil {
		return claim, err
	}
	if err := json.Unmarshal(it.Value, &claim); err != nil {
		return claim, fmt.Errorf("reading the claim of node %q: %w", name, err)
	}
	return claim, nil
}

// updateNodeResource writes n unless the stored node already says the same. The claim
// is checked again under the write lock, so that a heartbeat racing an admin's rm
// cannot bring the removed node back.
func (s *Service) updateNodeResource(ctx context.Context, n *resource.Node, fp string) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	claim, err := s.nodeClaimOf(ctx, n.Metadata.Name)
	if err != nil {
		return err
	}
	if claim.Key != fp {
		return fmt.Errorf("%w: node %q is registered with another key", ErrNodeNotRegistered, n.Metadata.Name)
	}
	old, err := s.get(ctx, resourceKey(resource.KindNode, n.Metadata.Name))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if o, ok := old.(*resource.Node); ok && o.Spec == n.Spec && maps.Equal(o.Metadata.Labels, n.Metadata.Labels) {
		return nil
	}
	return s.put(ctx, resourceKey(resource.KindNode, n.Metadata.Name), n)
}

// hostCertDue reports whether the node's current host certificate must be replaced: it
// is missing or unreadable, certifies another key, is not signed by the host CA's
// signing key now, or has less than half its lifetime left.
func (s *Service) hostCertDue(current string, key ssh.PublicKey, now time.Time) bool {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(current))
	if err != nil {
		return true
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok || cert.CertType != ssh.HostCert || string(cert.Key.Marshal()) != string(key.Marshal()) {
		return true
	}
	if string(cert.SignatureKey.Marshal()) != string(s.cfg.CA.Host.SigningKey().Marshal()) {
		return true
	}
	left := time.Unix(int64(cert.ValidBefore), 0).Sub(now)
	return left < NodeHostCertTTL/2
}

func (s *Service) putNodeHeartbeat(ctx context.Context, n *resource.Node, ttl time.Duration) error {
	data, err := json.Marshal(nodeHeartbeatData{Addr: n.Spec.Addr, Labels: n.Metadata.Labels, OnlineUntil: s.cfg.Now().Add(ttl).UTC()})
	if err != nil {
		return err
	}
	_, err = state.PutHeartbeat(ctx, s.cfg.Store, state.HeartbeatNode, n.Metadata.Name, max(ttl, nodeHeartbeatKeep), data)
	return err
}

// nodeCredentials issues what a node needs: the CAs it trusts, and the host and client
// certificates asked for.
func (s *Service) nodeCredentials(n *resource.Node, key ssh.PublicKey, hostCert, tlsCert bool) (*NodeCredentials, error) {
	out := &NodeCredentials{ClusterName: s.cfg.ClusterName, NodeCAs: []string{}, HostCAs: []string{}}
	for _, k := range s.cfg.CA.OpenSSH.TrustedKeys() {
		out.NodeCAs = append(out.NodeCAs, ca.AuthorizedKey(k.Key))
	}
	for _, k := range s.cfg.CA.Host.TrustedKeys() {
		out.HostCAs = append(out.HostCAs, ca.AuthorizedKey(k.Key))
	}
	var pemCAs strings.Builder
	for _, c := range s.cfg.CA.TLS.CACerts() {
		_ = pem.Encode(&pemCAs, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	out.TLSCAs = pemCAs.String()
	if hostCert {
		principals := []string{n.Metadata.Name}
		if h := hostOf(n.Spec.Addr); h != "" && h != n.Metadata.Name {
			principals = append(principals, h)
		}
		cert, err := s.cfg.CA.Host.IssueHost(ca.HostCertRequest{PublicKey: key, Principals: principals, KeyID: n.Metadata.Name, TTL: NodeHostCertTTL})
		if err != nil {
			return nil, err
		}
		out.HostCert = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert)))
	}
	if tlsCert {
		cert, err := s.cfg.CA.TLS.IssueTLS(ca.TLSCertRequest{
			PublicKey:  key.(ssh.CryptoPublicKey).CryptoPublicKey(),
			CommonName: NodeCommonNamePrefix + n.Metadata.Name,
			URIs:       []*url.URL{NodeURI(n.Metadata.Name)},
			Client:     true,
			TTL:        NodeTLSCertTTL,
		})
		if err != nil {
			return nil, err
		}
		out.TLSCert = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	}
	return out, nil
}

func hostOf(addr string) string {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return addr
	}
	return strings.Trim(addr[:i], "[]")
}

// fillNodeStatus sets the status of node resources from their heartbeats: online while
// heartbeats arrive within their TTL, offline after; empty for a node registered by hand
// (whatever its document said).
func (s *Service) fillNodeStatus(ctx context.Context, rs []resource.Resource) error {
	now := s.cfg.Now()
	for _, r := range rs {
		n, ok := r.(*resource.Node)
		if !ok {
			continue
		}
		n.Status = resource.NodeStatus{}
		if ok, err := s.exists(ctx, nodeClaimKey(n.Metadata.Name)); err != nil {
			return err
		} else if !ok {
			continue
		}
		n.Status.Connection = resource.ConnectionOffline
		hb, err := state.GetHeartbeat(ctx, s.cfg.Store, state.HeartbeatNode, n.Metadata.Name)
		if errors.Is(err, state.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		var d nodeHeartbeatData
		if err := json.Unmarshal(hb.Data, &d); err != nil {
			continue
		}
		n.Status.LastHeartbeat = hb.Time
		if now.Before(d.OnlineUntil) {
			n.Status.Connection = resource.ConnectionOnline
		}
	}
	return nil
}

// forgetNode removes a node agent's claim on its name once an admin removed the node:
// the name is free again, and the agent's client certificate no longer heartbeats.
func (s *Service) forgetNode(ctx context.Context, name string) error {
	if err := s.cfg.Store.Delete(ctx, nodeClaimKey(name)); err != nil && !errors.Is(err, state.ErrNotFound) {
		return fmt.Errorf("deleting the claim of node %q: %w", name, err)
	}
	return nil
}
