package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/proxy"
	"github.com/tetherproject/tether/gateway/tunnel"
	"github.com/tetherproject/tether/gateway/web"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/policy/decisionlog"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/transport"
	"github.com/tetherproject/tether/transport/frame"
)

// What a signed-in user asks about a cluster through the root: its node list and the
// roles it gives them. The root answers for itself from its own policy; for a leaf it
// decides cluster.route (a leaf the user may not see reads as one that does not exist),
// then asks the leaf through its tunnel, and the leaf answers from ITS policy after
// verifying the user's certificate itself.

// NodeListLogPath is the path of the decision-log event a node list writes: one event
// per list, for the one evaluation of access.node_logins that decided it.
const NodeListLogPath = "tether/access/node_logins"

// leafAskTimeout bounds one question to a leaf (the tunnel dial and the answer).
const leafAskTimeout = 20 * time.Second

// ownNodes lists this cluster's nodes that id may reach, with the logins it may use on
// each, in one Engine.NodeList evaluation, logged as one decision-log event.
func (g *Gateway) ownNodes(ctx context.Context, id policy.Cert, requestedBy string) ([]tunnel.LeafNode, error) {
	// Parsed documents kept by store revision: read fresh, parsed only when changed.
	res, err := g.auth.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	nodes := make([]policy.Node, len(res))
	for i, n := range res {
		nodes[i] = policy.Node{Name: n.Metadata.Name, Labels: n.Metadata.Labels}
	}
	in := &policy.Input{Action: policy.ActionNodeList, Cluster: g.cfg.ClusterName, Now: time.Now(), Cert: id}
	access, err := g.engine.NodeList(ctx, in, nodes)
	if err != nil {
		return nil, fmt.Errorf("deciding the node list: %w", err)
	}
	out := []tunnel.LeafNode{}
	for i, a := range access {
		if len(a.Logins) == 0 {
			continue
		}
		n := res[i]
		out = append(out, tunnel.LeafNode{Name: n.Metadata.Name, Addr: n.Spec.Addr, Hostname: n.Spec.Hostname, Labels: n.Metadata.Labels, Logins: a.Logins})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	g.logNodeList(in, len(nodes), out, requestedBy)
	if len(out) == 0 {
		if reasons, err := g.nodeListRefusal(ctx, id); err != nil {
			return nil, err
		} else if len(reasons) > 0 {
			return nil, &nodeListRefused{reasons: reasons}
		}
	}
	return out, nil
}

// nodeListRefused is an empty node list explained: the certificate itself is refused
// here (a lock on the user, an untrusted signer, nothing mapped), so no list could hold a
// node. The reasons are the policy's, for the user as a session denial shows them.
type nodeListRefused struct{ reasons []string }

func (e *nodeListRefused) Error() string { return strings.Join(e.reasons, "; ") }

// nodeListRefusal says why id could reach no node of this cluster whatever the node: the
// denial of a node.list request for no node in particular, reduced to the reasons that
// are the certificate's (policy.Decision.CertificateReasons). Nil when nothing about the
// certificate stands in the way (the list was empty because of labels or logins).
func (g *Gateway) nodeListRefusal(ctx context.Context, id policy.Cert) ([]string, error) {
	d, err := g.engine.Decide(ctx, &policy.Input{Action: policy.ActionNodeList, Cluster: g.cfg.ClusterName, Now: time.Now(), Cert: id, Node: &policy.Node{}})
	if err != nil {
		return nil, fmt.Errorf("deciding why the node list is empty: %w", err)
	}
	return d.CertificateReasons(), nil
}

// logNodeList writes the node list's decision-log event: the input without a node (and
// how many nodes were evaluated), the result the nodes reachable with their logins.
func (g *Gateway) logNodeList(in *policy.Input, evaluated int, reachable []tunnel.LeafNode, requestedBy string) {
	if g.declog == nil {
		return
	}
	input, err := in.JSON()
	if err != nil {
		g.log.Warn("encoding a node list's decision-log input", "err", err)
		return
	}
	input["node_count"] = evaluated
	type row struct {
		Name   string   `json:"name"`
		Logins []string `json:"logins"`
	}
	rows := make([]row, len(reachable))
	for i, n := range reachable {
		rows[i] = row{n.Name, n.Logins}
	}
	g.declog.Log(decisionlog.Event{
		Path:        NodeListLogPath,
		Input:       input,
		Result:      map[string]any{"nodes": rows},
		Bundles:     map[string]decisionlog.BundleInfo{"tether": {Revision: g.engine.Revision()}},
		Timestamp:   time.Now(),
		RequestedBy: requestedBy,
	})
}

// userNodes answers GET /webapi/nodes.
func (g *Gateway) userNodes(ctx context.Context, req web.UserRequest) ([]web.UserNode, error) {
	cluster := resource.NormalizeClusterName(req.Cluster)
	var nodes []tunnel.LeafNode
	if cluster == g.cfg.ClusterName {
		var err error
		if nodes, err = g.ownNodes(ctx, req.ID, req.ClientAddr); err != nil {
			var refused *nodeListRefused
			if errors.As(err, &refused) {
				return nil, &web.ClusterError{Status: http.StatusForbidden, Message: fmt.Sprintf("cluster %s refused to list its nodes: %s", cluster, refused)}
			}
			return nil, err
		}
	} else {
		data, err := g.askLeaf(ctx, req, cluster, frame.ServiceNodeList)
		if err != nil {
			return nil, err
		}
		if nodes, err = tunnel.DecodeNodeList(data); err != nil {
			g.log.Warn("a leaf's node list was refused", "leaf", cluster, "err", err)
			return nil, &web.ClusterError{Status: http.StatusBadGateway, Message: fmt.Sprintf("cluster %s sent a node list the root cannot read; ask its admins to check its version and logs", cluster)}
		}
	}
	out := make([]web.UserNode, len(nodes))
	for i, n := range nodes {
		out[i] = web.UserNode{Name: n.Name, Addr: n.Addr, Hostname: n.Hostname, Cluster: cluster, Labels: n.Labels, Logins: n.Logins}
	}
	return out, nil
}

// userRoles answers GET /webapi/roles: this cluster's roles are the certificate's; a
// leaf's are what its own role_map gives.
func (g *Gateway) userRoles(ctx context.Context, req web.UserRequest) (*web.UserRolesResponse, error) {
	cluster := resource.NormalizeClusterName(req.Cluster)
	if cluster == g.cfg.ClusterName {
		roles := req.ID.Roles
		if roles == nil {
			roles = []string{}
		}
		return &web.UserRolesResponse{Cluster: cluster, Roles: roles}, nil
	}
	data, err := g.askLeaf(ctx, req, cluster, frame.ServiceUserRoles)
	if err != nil {
		return nil, err
	}
	a, err := tunnel.DecodeUserRoles(data)
	if err != nil {
		g.log.Warn("a leaf's role answer was refused", "leaf", cluster, "err", err)
		return nil, &web.ClusterError{Status: http.StatusBadGateway, Message: fmt.Sprintf("cluster %s sent a role answer the root cannot read; ask its admins to check its version and logs", cluster)}
	}
	return &web.UserRolesResponse{Cluster: cluster, Roles: a.Roles, Notes: a.Notes}, nil
}

// askLeaf decides cluster.route for the user and, when allowed, asks the leaf for svc
// through its tunnel. Every refusal is a *web.ClusterError saying what to do next.
func (g *Gateway) askLeaf(ctx context.Context, req web.UserRequest, cluster string, svc frame.Service) ([]byte, error) {
	log := g.log.With("user", req.ID.Username, "target_cluster", cluster, "service", svc.String(), "client", req.ClientAddr)
	notFound := &web.ClusterError{Status: http.StatusNotFound, Message: fmt.Sprintf("cluster %s not found: run tether clusters to see the clusters you may reach", cluster)}
	rc, err := lookupRemoteCluster(g.auth)(ctx, cluster)
	if errors.Is(err, proxy.ErrClusterNotFound) {
		log.Info("cluster.route denied: no such cluster")
		return nil, notFound
	}
	if err != nil {
		return nil, fmt.Errorf("looking up cluster %s: %w", cluster, err)
	}
	d, err := g.engine.Decide(ctx, &policy.Input{
		Action: policy.ActionClusterRoute, Cluster: g.cfg.ClusterName, Now: time.Now(), Cert: req.ID,
		RemoteCluster: &policy.RemoteCluster{Name: rc.Metadata.Name, Labels: rc.Metadata.Labels},
	})
	if err != nil {
		return nil, fmt.Errorf("deciding cluster.route to %s: %w", cluster, err)
	}
	if !d.Allow {
		log.Info("cluster.route denied", "reasons", d.Reasons)
		if d.DeniedOnlyByLocks() {
			// As the proxy's route: a lock names the user, not the cluster, so saying so
			// reveals nothing of the cluster and tells the user why.
			return nil, &web.ClusterError{Status: http.StatusForbidden, Message: fmt.Sprintf("access to cluster %s denied: %s", cluster, strings.Join(d.Reasons, "; "))}
		}
		// The same answer as an unknown cluster: a hidden leaf's existence does not leak.
		return nil, notFound
	}
	ctx, cancel := context.WithTimeout(ctx, leafAskTimeout)
	defer cancel()
	data, err := g.tunnel.Ask(ctx, rc.Metadata.Name, svc, req.SSHCert, req.ClientAddr)
	if err == nil {
		return data, nil
	}
	log.Info("asking a leaf through its tunnel", "err", err)
	var offline *tunnel.OfflineError
	var elsewhere *tunnel.ElsewhereError
	var denied *transport.DialDeniedError
	switch {
	case errors.As(err, &offline):
		return nil, &web.ClusterError{Status: http.StatusServiceUnavailable, Message: fmt.Sprintf("cluster %s is offline: its tunnel to the root is down; try again later, or ask its admins (tether clusters shows its status)", cluster)}
	case errors.As(err, &elsewhere):
		return nil, &web.ClusterError{Status: http.StatusServiceUnavailable, Message: fmt.Sprintf("cluster %s is connected to another proxy replica (%s), which this one cannot relay to yet; try again", cluster, elsewhere.Replica)}
	case errors.As(err, &denied) && svc == frame.ServiceNodeList:
		return nil, &web.ClusterError{Status: http.StatusForbidden, Message: fmt.Sprintf("cluster %s refused to list its nodes: %s", cluster, denied.Reason)}
	case errors.As(err, &denied):
		return nil, &web.ClusterError{Status: http.StatusForbidden, Message: fmt.Sprintf("cluster %s refused: %s", cluster, denied.Reason)}
	case errors.Is(err, frame.ErrServiceUnsupported):
		return nil, &web.ClusterError{Status: http.StatusBadGateway, Message: fmt.Sprintf("cluster %s runs an older Tether that cannot answer this through the tunnel; ask its admins to upgrade it", cluster)}
	case errors.Is(err, tunnel.ErrBadAnswer):
		return nil, &web.ClusterError{Status: http.StatusBadGateway, Message: fmt.Sprintf("cluster %s sent an answer larger than the root accepts; ask its admins to check its logs", cluster)}
	case errors.Is(err, context.DeadlineExceeded):
		return nil, &web.ClusterError{Status: http.StatusGatewayTimeout, Message: fmt.Sprintf("cluster %s did not answer in time; try again", cluster)}
	}
	return nil, &web.ClusterError{Status: http.StatusBadGateway, Message: fmt.Sprintf("cluster %s could not be asked through its tunnel; try again", cluster)}
}

// leafNodesForRoot leaves out of a node list for a root the entries the root would refuse
// (tunnel.CheckLeafNode): it refuses a whole list for one of them, which would hide every
// node of this cluster from the root's users. Such a node (stored before names and labels
// were checked on write) is logged, to be renamed or relabelled by an admin.
func leafNodesForRoot(nodes []tunnel.LeafNode, log *slog.Logger) []tunnel.LeafNode {
	out := nodes[:0:0]
	for _, n := range nodes {
		if err := tunnel.CheckLeafNode(n); err != nil {
			log.Warn("a node left out of a root's node list: the root could not read it; rename or relabel it (tetherctl get node)", "node", n.Name, "reason", err)
			continue
		}
		out = append(out, n)
	}
	return out
}

// serveTunnelService answers a typed service request a root sent through its tunnel to
// this cluster (a leaf): the user's certificate must be signed by the user CA of that very
// root and be valid now, and the answer is this cluster's own policy's.
func (g *Gateway) serveTunnelService(ctx context.Context, root string, req *frame.DialRequest) ([]byte, error) {
	// The root stops waiting after leafAskTimeout; work it gave up on is not done.
	ctx, cancel := context.WithTimeout(ctx, leafAskTimeout)
	defer cancel()
	log := g.log.With("root", root, "service", req.Service.String(), "client", req.ClientAddr)
	id, err := g.tunnelUser(ctx, root, req.UserCert)
	if err != nil {
		log.Warn("refused a tunnel service request", "reason", err)
		return nil, transport.Deny(err.Error())
	}
	log = log.With("user", id.Username)
	switch req.Service {
	case frame.ServiceNodeList:
		nodes, err := g.ownNodes(ctx, id, req.ClientAddr+" via "+root)
		var refused *nodeListRefused
		if errors.As(err, &refused) {
			// The root shows it as this cluster's refusal (Gateway.askLeaf).
			log.Info("refused a node list through the tunnel", "reasons", refused.reasons)
			return nil, transport.Deny(refused.Error())
		}
		if err != nil {
			log.Error("listing nodes for a root's user", "err", err)
			return nil, transport.Deny("the leaf could not list its nodes now; try again")
		}
		nodes = leafNodesForRoot(nodes, log)
		log.Info("answered a node list through the tunnel", "nodes", len(nodes))
		return json.Marshal(tunnel.NodeListAnswer{Nodes: nodes})
	case frame.ServiceUserRoles:
		a, err := g.mappedRoles(ctx, id)
		if err != nil {
			log.Warn("mapping a root user's roles", "err", err)
			return nil, transport.Deny(err.Error())
		}
		log.Info("answered a user's mapped roles through the tunnel", "roles", a.Roles)
		return json.Marshal(a)
	}
	return nil, transport.Deny("unknown service " + req.Service.String())
}

// tunnelUser verifies a user certificate a root sent: only root's user CA (never this
// cluster's own, never another trusted root's) and only while it is valid. The policy
// decides the rest (trust enabled, role_map, locks) as for any certificate.
func (g *Gateway) tunnelUser(ctx context.Context, root string, raw []byte) (policy.Cert, error) {
	pub, err := ssh.ParsePublicKey(raw)
	if err != nil {
		return policy.Cert{}, errors.New("the request carries no readable user certificate")
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		return policy.Cert{}, errors.New("the request carries a plain key, not a user certificate")
	}
	all, err := userCAKeys(g.auth)(ctx)
	if err != nil {
		return policy.Cert{}, errors.New("the leaf cannot read its trusted user CAs now; try again")
	}
	var keys []ca.TrustedKey
	for _, k := range all {
		if k.Cluster == root {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return policy.Cert{}, fmt.Errorf("this cluster holds no user CA of %s (its trust is disabled or removed)", root)
	}
	signer, err := ca.VerifyUser(cert, keys)
	if err != nil {
		return policy.Cert{}, fmt.Errorf("the user certificate is not signed by the user CA of %s", root)
	}
	id, err := policy.CertFromSSH(cert, signer)
	if err != nil {
		return policy.Cert{}, errors.New("the user certificate cannot be read")
	}
	if now := time.Now(); now.Before(id.ValidAfter) || !now.Before(id.ValidBefore) {
		return policy.Cert{}, errors.New("the user certificate is expired or not yet valid: run tether login again")
	}
	return id, nil
}

// mappedRoles evaluates this cluster's identity stage for id: the local roles its
// role_map gives, and the notes on what was left out. A certificate the policy does not
// trust here is refused with the policy's reasons.
func (g *Gateway) mappedRoles(ctx context.Context, id policy.Cert) (*tunnel.UserRolesAnswer, error) {
	v, err := g.engine.Identity(ctx, &policy.Input{Action: policy.ActionNodeList, Cluster: g.cfg.ClusterName, Now: time.Now(), Cert: id})
	if err != nil {
		return nil, errors.New("the leaf could not evaluate its role_map now; try again")
	}
	m, _ := v.(map[string]any)
	strs := func(key string) []string {
		out := []string{}
		arr, _ := m[key].([]any)
		for _, x := range arr {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	if problems := strs("problems"); len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	a := &tunnel.UserRolesAnswer{Roles: strs("roles"), Notes: strs("notes")}
	if len(a.Notes) == 0 {
		a.Notes = nil
	}
	return a, nil
}
