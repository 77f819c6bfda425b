package web

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/gateway/auth"
)

// Sign-in routes (HandleLogin):
//
//	POST /webapi/users/signup/info   body: {"token"}                        the TOTP enrolment of a sign-up token
//	POST /webapi/users/signup        body: {"token", "password", "otp"}     set the password, enrol TOTP, use the token up
//	POST /webapi/login               body: LoginRequest                     certificates for a user
//	POST /webapi/certs/reissue       body: ReissueRequest                   new certificates for a signed-in user's key
//	                                 (client certificate and SSH certificate header as below; no password)
//	GET  /webapi/clusters            the clusters the signed-in user may see (client certificate from login,
//	                                 and the SSH certificate in the Tether-SSH-Certificate header)
//	POST /v1/admin/users/{name}/signup  body: {"ttl"}                       (admin) a new sign-up token; clears the password
//
// Tokens and passwords only ever travel in bodies, never in URLs.
const (
	LoginPath         = "/webapi/login"
	ReissuePath       = "/webapi/certs/reissue"
	SignupInfoPath    = "/webapi/users/signup/info"
	SignupPath        = "/webapi/users/signup"
	ClustersPath      = "/webapi/clusters"
	SSHCertHeader     = "Tether-SSH-Certificate"
	adminSignupPrefix = "/v1/admin/users/"
)

// AdminSignupPath is the admin route that issues a sign-up token for user name.
func AdminSignupPath(name string) string { return adminSignupPrefix + name + "/signup" }

// SignupTokenRequest is the body of POST /v1/admin/users/{name}/signup.
type SignupTokenRequest struct {
	TTL string `json:"ttl,omitempty"`
}

// SignupTokenResponse answers it: the only time the token is shown.
type SignupTokenResponse struct {
	User    string    `json:"user"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
	// Proxy is the address users sign in at.
	Proxy string `json:"proxy"`
}

// SignupTokenBody carries a sign-up token.
type SignupTokenBody struct {
	Token string `json:"token"`
}

// SignupRequest completes a sign-up.
type SignupRequest struct {
	Token    string `json:"token"`
	Password string `json:"password"`
	OTP      string `json:"otp"`
}

// SignupResponse answers a completed sign-up.
type SignupResponse struct {
	User string `json:"user"`
}

// LoginRequest is the body of POST /webapi/login.
type LoginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
	OTP      string `json:"otp"`
	// PublicKey is the SSH public key to certify, authorized_keys format.
	PublicKey string `json:"public_key"`
	// TTL is a Go duration ("8h"); empty means the default (12h). The roles cap it.
	TTL            string `json:"ttl,omitempty"`
	RouteToCluster string `json:"route_to_cluster,omitempty"`
}

// ReissueRequest is the body of POST /webapi/certs/reissue: tether login CLUSTER with a
// valid sign-in. The answer is a LoginResponse whose certificates end when the presented
// ones do.
type ReissueRequest struct {
	RouteToCluster string `json:"route_to_cluster,omitempty"`
}

// HostCA is one cluster's SSH host CA keys (authorized_keys format).
type HostCA struct {
	Cluster string   `json:"cluster"`
	Keys    []string `json:"keys"`
}

// LoginResponse answers a successful sign-in.
type LoginResponse struct {
	Cluster string `json:"cluster"`
	// SSHCert is the user certificate, one authorized_keys line.
	SSHCert string `json:"ssh_cert"`
	// TLSCert is the client certificate for the web API, PEM.
	TLSCert string `json:"tls_cert"`
	// TLSCA is the cluster's TLS CA certificates, PEM.
	TLSCA string `json:"tls_ca"`
	// HostCAs are the SSH host CAs of this cluster and the clusters the user may see.
	HostCAs []HostCA `json:"host_cas"`
	// KnownHosts are HostCAs as OpenSSH known_hosts @cert-authority lines.
	KnownHosts  []string  `json:"known_hosts"`
	Roles       []string  `json:"roles"`
	Logins      []string  `json:"logins"`
	ValidBefore time.Time `json:"valid_before"`
}

// ClustersResponse answers GET /webapi/clusters.
type ClustersResponse struct {
	Clusters []auth.ClusterInfo `json:"clusters"`
}

// KnownHostsLine is the @cert-authority line trusting key for cluster's hosts
// (the cluster name and its subdomains) and any extra host patterns. Its comment is one
// word, Teleport's "clustername=NAME&type=host": x/crypto's ParseKnownHosts refuses a
// line of more than five fields, so a multi-word comment would break Go tools reading it.
func KnownHostsLine(cluster string, key ssh.PublicKey, extra ...string) string {
	patterns := append([]string{"*." + cluster, cluster}, extra...)
	return fmt.Sprintf("@cert-authority %s %s %s%s&type=host", strings.Join(patterns, ","),
		strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))), KnownHostsClusterPrefix, cluster)
}

// KnownHostsHostLine is an @cert-authority line trusting cluster's host CA key for the one
// host (the proxy's, when the cluster's own line negates it), with KnownHostsLine's comment.
func KnownHostsHostLine(cluster, host string, key ssh.PublicKey) string {
	return fmt.Sprintf("@cert-authority %s %s %s%s&type=host", host,
		strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))), KnownHostsClusterPrefix, cluster)
}

// KnownHostsExclusions are the negated patterns ("!*.NAME", "!NAME") a cluster's
// @cert-authority line needs so that it does not match the names of others under it: a
// leaf that joined as example.com must not vouch for the hosts of root.example.com, nor
// for a proxy host tether.example.com (OpenSSH, and tether, ignore a line when a negated
// pattern matches). others are the other clusters and hosts the same known_hosts names.
func KnownHostsExclusions(cluster string, others []string) []string {
	c := strings.ToLower(strings.TrimSuffix(cluster, "."))
	var out []string
	for _, o := range others {
		o = strings.ToLower(strings.TrimSuffix(o, "."))
		if o != c && strings.HasSuffix(o, "."+c) {
			out = append(out, "!*."+o, "!"+o)
		}
	}
	return out
}

// KnownHostsClusterPrefix starts the comment of a KnownHostsLine, before the cluster name.
const KnownHostsClusterPrefix = "clustername="

// HandleLogin adds the sign-in routes, served by users.
func (s *Server) HandleLogin(users *auth.Users) {
	signupLimit := newRateLimiter(s.cfg.ValidateRate, s.cfg.ValidateBurst, s.cfg.Now)
	limited := func(w http.ResponseWriter, r *http.Request) bool {
		if ok, wait := signupLimit.allow(clientKey(r.RemoteAddr)); !ok {
			tooMany(w, wait, "too many sign-up attempts from this address")
			return true
		}
		return false
	}
	s.mux.HandleFunc("POST "+SignupInfoPath, func(w http.ResponseWriter, r *http.Request) {
		if limited(w, r) {
			return
		}
		var req SignupTokenBody
		if err := decodeJSON(w, r, &req); err != nil {
			s.loginFail(w, err)
			return
		}
		info, err := users.SignupInfo(r.Context(), req.Token, clientKey(r.RemoteAddr))
		if err != nil {
			s.loginFail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, info)
	})
	s.mux.HandleFunc("POST "+SignupPath, func(w http.ResponseWriter, r *http.Request) {
		if limited(w, r) {
			return
		}
		var req SignupRequest
		if err := decodeJSON(w, r, &req); err != nil {
			s.loginFail(w, err)
			return
		}
		user, err := users.CompleteSignup(r.Context(), req.Token, req.Password, req.OTP, clientKey(r.RemoteAddr))
		if err != nil {
			s.loginFail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, SignupResponse{User: user})
	})
	s.mux.HandleFunc("POST "+LoginPath, func(w http.ResponseWriter, r *http.Request) {
		var req LoginRequest
		if err := decodeJSON(w, r, &req); err != nil {
			s.loginFail(w, err)
			return
		}
		var ttl time.Duration
		if req.TTL != "" {
			d, err := time.ParseDuration(req.TTL)
			if err != nil || d <= 0 {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("ttl %q is not a positive duration such as 8h", req.TTL))
				return
			}
			ttl = d
		}
		res, err := users.Login(r.Context(), auth.LoginRequest{
			User: req.User, Password: req.Password, OTP: req.OTP, PublicKey: req.PublicKey,
			TTL: ttl, RouteToCluster: req.RouteToCluster, Remote: clientKey(r.RemoteAddr),
		})
		if err != nil {
			s.loginFail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, loginResponse(res))
	})
	s.mux.HandleFunc("POST "+ReissuePath, func(w http.ResponseWriter, r *http.Request) {
		var req ReissueRequest
		if err := decodeJSON(w, r, &req); err != nil {
			s.loginFail(w, err)
			return
		}
		var peer []*x509.Certificate
		if r.TLS != nil {
			peer = r.TLS.PeerCertificates
		}
		id, err := users.AuthenticateUser(peer, r.Header.Get(SSHCertHeader))
		if err != nil {
			s.log.Debug("certificate reissue without a valid user identity", "remote", r.RemoteAddr, "err", err)
			s.loginFail(w, err)
			return
		}
		pub, err := ssh.NewPublicKey(peer[0].PublicKey)
		if err != nil {
			s.loginFail(w, fmt.Errorf("%w: unreadable client key", auth.ErrUnauthenticated))
			return
		}
		res, err := users.Reissue(r.Context(), id, pub, req.RouteToCluster, clientKey(r.RemoteAddr))
		if err != nil {
			s.loginFail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, loginResponse(res))
	})
	s.mux.HandleFunc("GET "+ClustersPath, func(w http.ResponseWriter, r *http.Request) {
		var peer []*x509.Certificate
		if r.TLS != nil {
			peer = r.TLS.PeerCertificates
		}
		id, err := users.AuthenticateUser(peer, r.Header.Get(SSHCertHeader))
		if err != nil {
			s.log.Debug("cluster list without a valid user identity", "remote", r.RemoteAddr, "err", err)
			s.loginFail(w, err)
			return
		}
		clusters, err := users.Clusters(r.Context(), id, s.cfg.Now())
		if err != nil {
			s.loginFail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, ClustersResponse{Clusters: clusters})
	})
	s.mux.Handle("POST "+adminSignupPrefix+"{name}/signup", s.admin(func(w http.ResponseWriter, r *http.Request) {
		var req SignupTokenRequest
		if err := decodeJSON(w, r, &req); err != nil {
			s.fail(w, err)
			return
		}
		var ttl time.Duration
		if req.TTL != "" {
			d, err := time.ParseDuration(req.TTL)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("ttl %q is not a duration such as 1h", req.TTL))
				return
			}
			ttl = d
		}
		name := r.PathValue("name")
		token, expires, err := users.IssueSignup(r.Context(), name, ttl)
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, SignupTokenResponse{User: name, Token: token, Expires: expires.UTC(), Proxy: users.PublicAddr()})
	}))
}

func tooMany(w http.ResponseWriter, wait time.Duration, msg string) {
	secs := max(int64(math.Ceil(wait.Seconds())), 1)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeError(w, http.StatusTooManyRequests, fmt.Sprintf("%s; try again in %d seconds", msg, secs))
}

// loginFail answers a sign-in route's error: the message of the sentinel only, never
// what is behind it.
func (s *Server) loginFail(w http.ResponseWriter, err error) {
	var rl *auth.RateLimitedError
	switch {
	case errors.As(err, &rl):
		tooMany(w, rl.RetryAfter, "too many failed sign-in attempts")
	case errors.Is(err, auth.ErrLoginFailed):
		writeError(w, http.StatusUnauthorized, auth.ErrLoginFailed.Error())
	case errors.Is(err, auth.ErrUnauthenticated):
		writeError(w, http.StatusUnauthorized, "not signed in, or the sign-in has expired: run tether login again")
	case errors.Is(err, auth.ErrSignupRejected):
		writeError(w, http.StatusForbidden, auth.ErrSignupRejected.Error())
	case errors.Is(err, auth.ErrAccessDenied):
		writeError(w, http.StatusForbidden, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The caller went away while its password waited to be checked (auth.argon2id):
		// nobody reads the answer, and it is no internal error to log.
		writeError(w, http.StatusServiceUnavailable, "the sign-in was not checked in time; try again")
	default:
		s.failPublic(w, err)
	}
}

// loginResponse is what a sign-in or a reissue answers: the certificates, the TLS CA and
// the host CAs as known_hosts lines.
func loginResponse(res *auth.LoginResult) LoginResponse {
	out := LoginResponse{
		Cluster: res.Cluster, Roles: res.Roles, Logins: res.Logins,
		SSHCert:     strings.TrimSpace(string(ssh.MarshalAuthorizedKey(res.SSHCert))),
		TLSCert:     string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: res.TLSCert.Raw})),
		ValidBefore: time.Unix(int64(res.SSHCert.ValidBefore), 0).UTC(),
		HostCAs:     []HostCA{}, KnownHosts: []string{},
	}
	if out.Roles == nil {
		out.Roles = []string{}
	}
	for _, c := range res.TLSCAs {
		out.TLSCA += string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	var clusters []string
	for _, h := range res.HostCAs {
		clusters = append(clusters, h.Cluster)
	}
	for _, h := range res.HostCAs {
		hc := HostCA{Cluster: h.Cluster, Keys: []string{}}
		for _, k := range h.Keys {
			hc.Keys = append(hc.Keys, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))))
			out.KnownHosts = append(out.KnownHosts, KnownHostsLine(h.Cluster, k, KnownHostsExclusions(h.Cluster, clusters)...))
		}
		out.HostCAs = append(out.HostCAs, hc)
	}
	return out
}
