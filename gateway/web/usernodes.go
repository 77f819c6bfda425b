package web

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/policy"
)

// UserNodesPath lists the nodes a signed-in user may reach (GET, ?cluster=NAME).
const UserNodesPath = "/webapi/nodes"

// UserNode is one row of a user's node list: a node and the logins the user may use there.
type UserNode struct {
	Name     string            `json:"name"`
	Hostname string            `json:"hostname,omitempty"`
	Cluster  string            `json:"cluster"`
	Labels   map[string]string `json:"labels,omitempty"`
	Logins   []string          `json:"logins"`
}

// UserNodesResponse answers GET /webapi/nodes.
type UserNodesResponse struct {
	Nodes []UserNode `json:"nodes"`
}

// ErrNodesUnavailable is what a UserNodeLister returns for a cluster whose nodes it
// cannot list; its message reaches the user.
var ErrNodesUnavailable = errors.New("node list unavailable")

// UserNodeLister lists the nodes of cluster that the user id may reach.
type UserNodeLister func(ctx context.Context, id policy.Cert, cluster string) ([]UserNode, error)

// HandleUserNodes adds GET /webapi/nodes: the user authenticates as for the cluster list,
// list answers.
func (s *Server) HandleUserNodes(users *auth.Users, list UserNodeLister) {
	s.mux.HandleFunc("GET "+UserNodesPath, func(w http.ResponseWriter, r *http.Request) {
		var peer []*x509.Certificate
		if r.TLS != nil {
			peer = r.TLS.PeerCertificates
		}
		id, err := users.AuthenticateUser(peer, r.Header.Get(SSHCertHeader))
		if err != nil {
			s.loginFail(w, err)
			return
		}
		cluster := r.URL.Query().Get("cluster")
		if cluster == "" {
			cluster = s.cfg.Auth.ClusterName()
		}
		nodes, err := list(r.Context(), id, cluster)
		if errors.Is(err, ErrNodesUnavailable) {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		if err != nil {
			s.fail(w, err)
			return
		}
		if nodes == nil {
			nodes = []UserNode{}
		}
		writeJSON(w, http.StatusOK, UserNodesResponse{Nodes: nodes})
	})
}
