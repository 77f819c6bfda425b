// Package web is a cluster's HTTPS web API on the proxy address:
//
//	GET  /webapi/ping                       cluster name, proxy addresses, version (public)
//	POST /webapi/trustedclusters/validate   the root's side of the trust handshake (public; token-authenticated)
//	     /v1/admin/...                      the admin API tetherctl uses (mutual TLS, admin identity only)
//
// Admin routes:
//
//	POST   /v1/admin/resources[?force=true]       body: resource YAML (one or more documents)
//	GET    /v1/admin/resources/{kind}[/{name}]    ?secrets=true for secrets
//	DELETE /v1/admin/resources/{kind}/{name}
//	PUT    /v1/admin/remoteclusters/{name}/labels body: {"labels": {...}}
//	POST   /v1/admin/tokens                        body: {"roles": [...], "ttl": "5m", "labels": {...}}
//	GET    /v1/admin/tokens
//	POST   /v1/admin/tokens/delete                 body: {"token": "..."} (a token never goes in a URL)
//
// Errors are {"error": "..."} with a status that says what kind: 400 bad input, 401 no,
// unknown or expired client certificate, 403 not an admin or a rejected token, 404, 409
// exists (a leaf name that has already joined), 413 too large, 429 too many handshake
// attempts from one address (with Retry-After).
//
// The handshake endpoint is rate-limited per client address, and its failures are
// reported as one summary line and audit event per period, never one line per attempt.
// Failed admin authentication is logged at warn level and audited, at most once per peer
// and window, with the number of failures suppressed in between.
package web

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/tetherproject/tether/bundles"
	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/audit"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/identity"
	"github.com/tetherproject/tether/gateway/trust"
	"github.com/tetherproject/tether/internal/startups"
	"github.com/tetherproject/tether/resource"
)

// Version is reported by /webapi/ping.
var Version = "0.1.0-dev"

// Config configures a Server.
type Config struct {
	Auth *auth.Service
	// PublicAddr and TunnelPublicAddr are what /webapi/ping advertises.
	PublicAddr, TunnelPublicAddr string
	// ServerNames are extra DNS names or IPs for the server certificate (the listen
	// host, localhost, ...); the public address's host is always included.
	ServerNames []string
	Logger      *slog.Logger

	// ValidateRate is how many handshake calls per second one client address may make
	// once its burst is spent; zero means DefaultValidateRate.
	ValidateRate float64
	// ValidateBurst is how many handshake calls one client address may make at once;
	// zero means DefaultValidateBurst.
	ValidateBurst int
	// FailureReportInterval is how often failed handshake attempts are summarised; zero
	// means DefaultFailureReportInterval.
	FailureReportInterval time.Duration
	// MaxConnectionsPerSource is how many connections one source (startups.Source) may
	// hold open at once, node streams included; more are closed unanswered. Zero means
	// DefaultMaxConnectionsPerSource.
	MaxConnectionsPerSource int
	// AdminFailureLogWindow is the least time between two warnings about failed admin
	// authentication from one peer; zero means DefaultAdminFailureLogWindow.
	AdminFailureLogWindow time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Defaults of Config.
const (
	DefaultValidateRate          = 1.0 / 6 // ten a minute
	DefaultValidateBurst         = 10
	DefaultFailureReportInterval = time.Minute
	// DefaultMaxConnectionsPerSource is Teleport's connection_limits.max_connections.
	DefaultMaxConnectionsPerSource = 1000
	DefaultAdminFailureLogWindow   = 10 * time.Second
)

// Server is the web API.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux

	mu   sync.Mutex
	cert *tls.Certificate

	validateLimit *rateLimiter
	failures      *failureCounter
	adminFailures *peerLog
}

// PingResponse is /webapi/ping's answer, the shape the seed guide's jq lines read.
type PingResponse struct {
	ClusterName   string    `json:"cluster_name"`
	Proxy         PingProxy `json:"proxy"`
	ServerVersion string    `json:"server_version"`
}

// PingProxy is the proxy part of PingResponse.
type PingProxy struct {
	SSH               PingSSH `json:"ssh"`
	TLSRoutingEnabled bool    `json:"tls_routing_enabled"`
}

// PingSSH holds the proxy's public addresses.
type PingSSH struct {
	PublicAddr          string `json:"public_addr"`
	SSHTunnelPublicAddr string `json:"ssh_tunnel_public_addr"`
}

// TokenRequest is the body of POST /v1/admin/tokens.
type TokenRequest struct {
	Roles  []string          `json:"roles"`
	TTL    string            `json:"ttl,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// Name binds a trusted_cluster token to the one leaf cluster name that may join with it.
	Name string `json:"name,omitempty"`
	// Value is the token to create; empty means a random one. It must carry at least
	// 128 bits (auth.MinTokenBits).
	Value string `json:"value,omitempty"`
}

// TokenResponse answers POST /v1/admin/tokens: the only time the token is shown.
type TokenResponse struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// TokenListItem is one row of GET /v1/admin/tokens.
type TokenListItem struct {
	Token  string            `json:"token"` // display prefix, e.g. "abcd…"
	Roles  []string          `json:"roles"`
	Labels map[string]string `json:"labels,omitempty"`
	// Name is the leaf cluster name a trusted_cluster token is bound to, if any.
	Name    string    `json:"name,omitempty"`
	Expires time.Time `json:"expires"`
}

// TokenDeleteRequest is the body of POST /v1/admin/tokens/delete.
type TokenDeleteRequest struct {
	Token string `json:"token"`
}

// LabelsRequest is the body of PUT /v1/admin/remoteclusters/{name}/labels.
type LabelsRequest struct {
	Labels map[string]string `json:"labels"`
}

// ResourcesResponse answers GET /v1/admin/resources: each resource as one YAML document.
type ResourcesResponse struct {
	Resources []string `json:"resources"`
}

// MessagesResponse answers writes with a line per change.
type MessagesResponse struct {
	Messages []string `json:"messages"`
}

// New returns the web API of cfg.Auth's cluster.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ValidateRate <= 0 {
		cfg.ValidateRate = DefaultValidateRate
	}
	if cfg.ValidateBurst <= 0 {
		cfg.ValidateBurst = DefaultValidateBurst
	}
	if cfg.FailureReportInterval <= 0 {
		cfg.FailureReportInterval = DefaultFailureReportInterval
	}
	if cfg.AdminFailureLogWindow <= 0 {
		cfg.AdminFailureLogWindow = DefaultAdminFailureLogWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger.With("component", "web"), mux: http.NewServeMux(),
		validateLimit: newRateLimiter(cfg.ValidateRate, cfg.ValidateBurst, cfg.Now),
		failures:      newFailureCounter(),
		adminFailures: newPeerLog(cfg.AdminFailureLogWindow, cfg.Now),
	}
	s.mux.HandleFunc("GET /webapi/ping", s.ping)
	s.mux.HandleFunc("POST "+trust.ValidatePath, s.validate)
	s.mux.Handle("POST /v1/admin/resources", s.admin(s.createResources))
	s.mux.Handle("GET /v1/admin/resources/{kind}", s.admin(s.getResources))
	s.mux.Handle("GET /v1/admin/resources/{kind}/{name...}", s.admin(s.getResources))
	s.mux.Handle("DELETE /v1/admin/resources/{kind}/{name...}", s.admin(s.deleteResource))
	s.mux.Handle("PUT /v1/admin/remoteclusters/{name}/labels", s.admin(s.setLabels))
	s.mux.Handle("POST /v1/admin/tokens", s.admin(s.addToken))
	s.mux.Handle("GET /v1/admin/tokens", s.admin(s.listTokens))
	s.mux.Handle("POST /v1/admin/tokens/delete", s.admin(s.deleteToken))
	s.mux.Handle("POST "+RotatePath, s.admin(s.rotate))
	s.mux.Handle("GET "+PolicyBundlePath, s.admin(s.policyBundle))
	return s
}

// Handler returns the API's handler (for tests that bring their own listener).
func (s *Server) Handler() http.Handler { return s.mux }

// TLSConfig is the server side: a certificate from the cluster's TLS CA for the public
// address, renewed before it expires. A client certificate is requested (the cluster's
// TLS CA is named as the acceptable issuer) but verified by the admin routes themselves,
// against the CA as it is at that moment, so that a failure is logged with its reason
// instead of ending in a handshake error nobody sees.
func (s *Server) TLSConfig() *tls.Config {
	pool := s.cfg.Auth.CA().TLS.CertPool()
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.certificate,
		ClientAuth:     tls.RequestClientCert,
		ClientCAs:      pool,
	}
}

func (s *Server) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Re-issued before it expires, and at once when the TLS CA's signing certificate
	// changed (a rotation), so clients that trust only the new CA accept it.
	if s.cert != nil && time.Until(s.cert.Leaf.NotAfter) > ca.MaxTLSTTL/4 && s.cfg.Auth.CA().TLS.IssuedBySigning(s.cert.Leaf) {
		return s.cert, nil
	}
	key, err := ca.GenerateKey(ca.Ed25519)
	if err != nil {
		return nil, err
	}
	var dns []string
	var ips []net.IP
	hosts := append([]string{hostOf(s.cfg.PublicAddr)}, s.cfg.ServerNames...)
	for _, h := range hosts {
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !ip.IsUnspecified() {
				ips = append(ips, ip)
			}
		} else {
			dns = append(dns, h)
		}
	}
	cluster := s.cfg.Auth.ClusterName()
	leaf, err := s.cfg.Auth.CA().TLS.IssueTLS(ca.TLSCertRequest{
		PublicKey:   key.Public(),
		CommonName:  hostOf(s.cfg.PublicAddr),
		DNSNames:    dns,
		IPAddresses: ips,
		URIs:        []*url.URL{ca.ClusterURI(cluster)},
		Server:      true,
		TTL:         ca.MaxTLSTTL,
	})
	if err != nil {
		return nil, err
	}
	s.cert = &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	return s.cert, nil
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

// Serve runs the HTTPS server on l until ctx ends, then shuts it down.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	perSource := s.cfg.MaxConnectionsPerSource
	if perSource <= 0 {
		perSource = DefaultMaxConnectionsPerSource
	}
	// Only the bound per source: the process's descriptors bound the total.
	l = startups.Bounded(l, startups.New(math.MaxInt32, perSource), s.log, "web_max_connections", "HTTPS connections")
	srv := &http.Server{
		Handler:   s.mux,
		TLSConfig: s.TLSConfig(),
		// Requests end with the server: a node stream outlives Shutdown, which does not
		// wait for the connections handlers took over.
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(l, "", "") }()
	rctx, stopReports := context.WithCancel(ctx)
	reported := make(chan struct{})
	go func() { defer close(reported); s.reportFailures(rctx, s.cfg.FailureReportInterval) }()
	defer func() { stopReports(); <-reported }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		return nil
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, trust.ErrorResponse{Error: msg})
}

// fail answers err with the status its kind calls for. An internal error's message goes
// to the caller: only admin routes use it.
func (s *Server) fail(w http.ResponseWriter, err error) {
	s.answer(w, err, false)
}

// failPublic is fail for the routes anyone may call: an internal error (the store
// unreachable, ...) is logged, and the caller reads only that the cluster could not
// answer, never the error chain (the backend, its address, the store's keys).
func (s *Server) failPublic(w http.ResponseWriter, err error) {
	s.answer(w, err, true)
}

// internalErrorMessage is what a public route's caller reads of an internal error.
const internalErrorMessage = "the cluster could not answer (an internal error, logged on its proxy); try again later"

func (s *Server) answer(w http.ResponseWriter, err error, public bool) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, auth.ErrTokenRejected):
		status = http.StatusForbidden
	case errors.Is(err, auth.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, auth.ErrAlreadyExists):
		status = http.StatusConflict
	case errors.Is(err, auth.ErrBadRequest):
		status = http.StatusBadRequest
	}
	if status == http.StatusInternalServerError {
		s.log.Error("request failed", "err", err)
		if public {
			writeError(w, status, internalErrorMessage)
			return
		}
	}
	writeError(w, status, err.Error())
}

func (s *Server) ping(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, PingResponse{
		ClusterName: s.cfg.Auth.ClusterName(),
		Proxy: PingProxy{SSH: PingSSH{
			PublicAddr:          s.cfg.PublicAddr,
			SSHTunnelPublicAddr: s.cfg.TunnelPublicAddr,
		}},
		ServerVersion: Version,
	})
}

func (s *Server) validate(w http.ResponseWriter, r *http.Request) {
	addr := clientKey(r.RemoteAddr)
	if ok, wait := s.validateLimit.allow(addr); !ok {
		s.failures.add(addr, "rate limited")
		secs := int64(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("too many trust requests from %s; retry in %d seconds", addr, max(secs, 1)))
		return
	}
	body := http.MaxBytesReader(w, r.Body, trust.MaxBodySize)
	req, hostCA, err := trust.DecodeValidateRequest(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.failures.add(addr, "oversize request")
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", trust.MaxBodySize))
			return
		}
		s.failures.add(addr, "malformed request")
		s.log.Debug("malformed trust request", "remote", r.RemoteAddr, "err", err)
		writeError(w, http.StatusBadRequest, "malformed trust request: "+err.Error())
		return
	}
	resp, err := s.cfg.Auth.ValidateLeaf(r.Context(), req.Token, hostCA, req.TLSCA(), r.RemoteAddr)
	if err != nil {
		switch {
		case errors.Is(err, auth.ErrTokenRejected):
			s.failures.add(addr, "rejected token")
			s.log.Debug("trust request with a rejected token", "remote", r.RemoteAddr, "leaf", hostCA.Spec.ClusterName)
			writeError(w, http.StatusForbidden, trust.RejectedTokenMessage)
			return
		case errors.Is(err, auth.ErrAlreadyExists):
			s.failures.add(addr, "leaf name already joined")
		case errors.Is(err, auth.ErrBadRequest):
			s.failures.add(addr, "refused")
		}
		s.failPublic(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// admin wraps a handler for the admin routes: the client must present a certificate of
// this cluster's TLS CA, valid now, for client authentication (else 401) that is an
// admin's (else 403). Every refusal is logged (rate-limited per peer) and audited.
func (s *Server) admin(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, reason, subject := s.authenticateAdmin(r)
		if status != http.StatusOK {
			s.adminAuthFailed(r.Context(), r.RemoteAddr, subject, reason)
			if status == http.StatusForbidden {
				writeError(w, status, "this certificate is not an admin identity of "+s.cfg.Auth.ClusterName())
				return
			}
			writeError(w, status, "the admin API needs the cluster's admin identity (tetherctl --data-dir, or -i identity-file): "+reason)
			return
		}
		// Audit events of the call (resource changes, trust changes) name the admin.
		h(w, r.WithContext(audit.WithUser(r.Context(), adminName(r))))
	})
}

// authenticateAdmin starts from "denied" and returns http.StatusOK only when the peer's
// certificate chains to this cluster's TLS CA now and names this cluster's admin; else
// the status, the reason and the certificate's subject (if any) for the log.
func (s *Server) authenticateAdmin(r *http.Request) (status int, reason, subject string) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return http.StatusUnauthorized, "no client certificate", ""
	}
	leaf := r.TLS.PeerCertificates[0]
	subject = leaf.Subject.String()
	inter := x509.NewCertPool()
	for _, c := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	now := s.cfg.Now()
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         s.cfg.Auth.CA().TLS.CertPool(),
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		var unknown x509.UnknownAuthorityError
		var invalid x509.CertificateInvalidError
		switch {
		case errors.As(err, &unknown):
			return http.StatusUnauthorized, "client certificate from an unknown CA", subject
		case errors.As(err, &invalid) && invalid.Reason == x509.Expired && now.After(leaf.NotAfter):
			return http.StatusUnauthorized, "expired client certificate (not after " + leaf.NotAfter.UTC().Format(time.RFC3339) + ")", subject
		case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
			return http.StatusUnauthorized, "client certificate not valid yet", subject
		}
		return http.StatusUnauthorized, "invalid client certificate: " + err.Error(), subject
	}
	if len(chains) == 0 || len(chains[0]) == 0 || !identity.IsAdmin(chains[0][0], s.cfg.Auth.ClusterName()) {
		return http.StatusForbidden, "not an admin identity of " + s.cfg.Auth.ClusterName(), subject
	}
	return http.StatusOK, "", subject
}

func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: decoding request: %v", auth.ErrBadRequest, err)
	}
	return nil
}

func (s *Server) createResources(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, resource.MaxInputSize))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("resource file is larger than %d bytes", resource.MaxInputSize))
		return
	}
	source := r.URL.Query().Get("source")
	if source == "" {
		source = "<input>"
	}
	rs, err := resource.Parse(data, source)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(rs) == 0 {
		writeError(w, http.StatusBadRequest, source+": no resources")
		return
	}
	msgs, err := s.cfg.Auth.Create(r.Context(), rs, r.URL.Query().Get("force") == "true")
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, MessagesResponse{Messages: msgs})
}

func (s *Server) getResources(w http.ResponseWriter, r *http.Request) {
	rs, err := s.cfg.Auth.Get(r.Context(), r.PathValue("kind"), r.PathValue("name"), r.URL.Query().Get("secrets") == "true")
	if err != nil {
		if errors.Is(err, auth.ErrNotFound) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("%s %q not found", r.PathValue("kind"), r.PathValue("name")))
			return
		}
		s.fail(w, err)
		return
	}
	out := ResourcesResponse{Resources: []string{}}
	for _, res := range rs {
		doc, err := resource.Marshal(res)
		if err != nil {
			s.fail(w, err)
			return
		}
		out.Resources = append(out.Resources, string(doc))
	}
	writeJSON(w, http.StatusOK, out)
}

// PolicyBundlePath serves the bundle the cluster decides with, as a .tar.gz in OPA's
// layout (tetherctl policy export); its revision is in RevisionHeader and the manifest.
const PolicyBundlePath = "/v1/admin/policy/bundle"

// RevisionHeader carries the exported bundle's revision.
const RevisionHeader = "X-Tether-Revision"

func (s *Server) policyBundle(w http.ResponseWriter, _ *http.Request) {
	b := s.cfg.Auth.LoadedBundle()
	if b == nil {
		writeError(w, http.StatusServiceUnavailable, "no policy bundle is loaded yet")
		return
	}
	var buf bytes.Buffer
	if err := bundles.WriteTarGz(&buf, b); err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set(RevisionHeader, b.Revision)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) deleteResource(w http.ResponseWriter, r *http.Request) {
	msg, err := s.cfg.Auth.Delete(r.Context(), r.PathValue("kind"), r.PathValue("name"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, MessagesResponse{Messages: []string{msg}})
}

func (s *Server) setLabels(w http.ResponseWriter, r *http.Request) {
	var req LabelsRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	name := r.PathValue("name")
	if err := s.cfg.Auth.SetRemoteClusterLabels(r.Context(), name, req.Labels); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, MessagesResponse{Messages: []string{fmt.Sprintf("remote cluster %q has been updated", name)}})
}

func (s *Server) addToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	var ttl time.Duration
	if req.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(req.TTL); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("ttl %q: %v", req.TTL, err))
			return
		}
	}
	token, info, err := s.cfg.Auth.AddToken(r.Context(), auth.TokenOptions{
		Roles: req.Roles, TTL: ttl, Labels: req.Labels, ClusterName: req.Name, Value: req.Value,
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, TokenResponse{Token: token, Expires: info.Expires})
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	toks, err := s.cfg.Auth.ListTokens(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	out := []TokenListItem{}
	for _, t := range toks {
		out = append(out, TokenListItem{Token: t.Display(), Roles: t.Roles, Labels: t.Labels, Name: t.ClusterName, Expires: t.Expires})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request) {
	var req TokenDeleteRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if err := s.cfg.Auth.DeleteToken(r.Context(), req.Token); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, MessagesResponse{Messages: []string{"Token has been deleted"}})
}

// adminName names the admin identity that made a call, for audit events.
func adminName(r *http.Request) string {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && r.TLS.PeerCertificates[0].Subject.CommonName != "" {
		return r.TLS.PeerCertificates[0].Subject.CommonName
	}
	return "admin"
}
