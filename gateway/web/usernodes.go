package web

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/policy"
)

const (
	// UserNodesPath lists the nodes a signed-in user may reach (GET, ?cluster=NAME).
	UserNodesPath = "/webapi/nodes"
	// UserRolesPath answers which roles a cluster gives the signed-in user (GET,
	// ?cluster=NAME): for a leaf, what the leaf's own role_map maps the user to.
	UserRolesPath = "/webapi/roles"
)

// UserNode is one row of a user's node list: a node and the logins the user may use there.
type UserNode struct {
	Name     string            `json:"name"`
	Addr     string            `json:"addr,omitempty"`
	Hostname string            `json:"hostname,omitempty"`
	Cluster  string            `json:"cluster"`
	Labels   map[string]string `json:"labels,omitempty"`
	Logins   []string          `json:"logins"`
}

// UserNodesResponse answers GET /webapi/nodes.
type UserNodesResponse struct {
	Nodes []UserNode `json:"nodes"`
}

// UserRolesResponse answers GET /webapi/roles.
type UserRolesResponse struct {
	Cluster string   `json:"cluster"`
	Roles   []string `json:"roles"`
	// Notes say why roles were left out (no role_map rule matched, a mapped role the
	// leaf does not have).
	Notes []string `json:"notes,omitempty"`
}

// ErrNodesUnavailable is what a UserNodeLister returns for a cluster whose nodes it
// cannot list; its message reaches the user (404).
var ErrNodesUnavailable = errors.New("node list unavailable")

// ClusterError is a refusal about one cluster whose message reaches the user as is:
// not found (404, also for a cluster the user may not see), offline (503), or the leaf's
// own refusal (403) or unreadable answer (502).
type ClusterError struct {
	Status  int
	Message string
}

func (e *ClusterError) Error() string { return e.Message }

// UserRequest is a signed-in user's request about a cluster, as the web API
// authenticated it.
type UserRequest struct {
	// ID is the user's SSH certificate as the decision input reads it.
	ID policy.Cert
	// SSHCert is the same certificate in SSH wire form, for a leaf to verify itself.
	SSHCert []byte
	// ClientAddr is the user's address.
	ClientAddr string
	// Cluster is the cluster asked about (this cluster when the query names none).
	Cluster string
}

// UserNodeLister lists the nodes of req.Cluster that the user may reach.
type UserNodeLister func(ctx context.Context, req UserRequest) ([]UserNode, error)

// UserRolesLister says which roles req.Cluster gives the user.
type UserRolesLister func(ctx context.Context, req UserRequest) (*UserRolesResponse, error)

// userRequest authenticates the caller as the cluster list does; on failure it has
// answered.
func (s *Server) userRequest(w http.ResponseWriter, r *http.Request, users *auth.Users) (UserRequest, bool) {
	var peer []*x509.Certificate
	if r.TLS != nil {
		peer = r.TLS.PeerCertificates
	}
	header := r.Header.Get(SSHCertHeader)
	id, err := users.AuthenticateUser(peer, header)
	if err != nil {
		s.loginFail(w, err)
		return UserRequest{}, false
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(header))
	if err != nil {
		s.loginFail(w, auth.ErrUnauthenticated)
		return UserRequest{}, false
	}
	cluster := r.URL.Query().Get("cluster")
	if cluster == "" {
		cluster = s.cfg.Auth.ClusterName()
	}
	return UserRequest{ID: id, SSHCert: pub.Marshal(), ClientAddr: r.RemoteAddr, Cluster: cluster}, true
}

func (s *Server) clusterFail(w http.ResponseWriter, err error) {
	var ce *ClusterError
	switch {
	case errors.As(err, &ce):
		writeError(w, ce.Status, ce.Message)
	case errors.Is(err, ErrNodesUnavailable):
		writeError(w, http.StatusNotFound, err.Error())
	default:
		s.failPublic(w, err)
	}
}

// HandleUserNodes adds GET /webapi/nodes: the user authenticates as for the cluster list,
// list answers.
func (s *Server) HandleUserNodes(users *auth.Users, list UserNodeLister) {
	s.mux.HandleFunc("GET "+UserNodesPath, func(w http.ResponseWriter, r *http.Request) {
		req, ok := s.userRequest(w, r, users)
		if !ok {
			return
		}
		nodes, err := list(r.Context(), req)
		if err != nil {
			s.clusterFail(w, err)
			return
		}
		if nodes == nil {
			nodes = []UserNode{}
		}
		writeJSON(w, http.StatusOK, UserNodesResponse{Nodes: nodes})
	})
}

// HandleUserRoles adds GET /webapi/roles: the user authenticates as for the cluster list,
// roles answers.
func (s *Server) HandleUserRoles(users *auth.Users, roles UserRolesLister) {
	s.mux.HandleFunc("GET "+UserRolesPath, func(w http.ResponseWriter, r *http.Request) {
		req, ok := s.userRequest(w, r, users)
		if !ok {
			return
		}
		resp, err := roles(r.Context(), req)
		if err != nil {
			s.clusterFail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
}
