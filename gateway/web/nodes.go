package web

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/tetherproject/tether/gateway/auth"
)

// Routes of node agents (gateway/node).
const (
	// NodeJoinPath is where a node joins with a node token (public; token-authenticated;
	// rate-limited per client address like the trust handshake).
	NodeJoinPath = "/v1/nodes/join"
	// NodeHeartbeatPath is where a joined node heartbeats (mutual TLS with the client
	// certificate the join gave it).
	NodeHeartbeatPath = "/v1/nodes/heartbeat"
)

// maxNodeBody bounds a node request: a key, an address and labels.
const maxNodeBody = 64 << 10

// HandleNodes adds the node agents' routes: POST NodeJoinPath and POST NodeHeartbeatPath.
func (s *Server) HandleNodes() {
	limit := newRateLimiter(s.cfg.ValidateRate, s.cfg.ValidateBurst, s.cfg.Now)
	s.mux.HandleFunc("POST "+NodeJoinPath, func(w http.ResponseWriter, r *http.Request) {
		addr := clientKey(r.RemoteAddr)
		if ok, wait := limit.allow(addr); !ok {
			s.failures.add(addr, "node join rate limited")
			secs := max(int64(math.Ceil(wait.Seconds())), 1)
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
			writeError(w, http.StatusTooManyRequests, fmt.Sprintf("too many node join requests from %s; retry in %d seconds", addr, secs))
			return
		}
		var req auth.NodeJoinRequest
		if err := decodeNodeJSON(w, r, &req); err != nil {
			s.failures.add(addr, "malformed node join")
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		creds, err := s.cfg.Auth.JoinNode(r.Context(), req, r.RemoteAddr)
		if err != nil {
			switch {
			case errors.Is(err, auth.ErrTokenRejected):
				s.failures.add(addr, "node join with a rejected token")
				writeError(w, http.StatusForbidden, "the node token was rejected: it is wrong, expired or not a node token; ask the cluster's admin for a new one (tetherctl tokens add --type=node)")
				return
			case errors.Is(err, auth.ErrAlreadyExists):
				s.failures.add(addr, "node name already registered")
			case errors.Is(err, auth.ErrBadRequest):
				s.failures.add(addr, "node join refused")
			}
			s.failPublic(w, err)
			return
		}
		writeJSON(w, http.StatusOK, creds)
	})
	s.mux.HandleFunc("POST "+NodeHeartbeatPath, func(w http.ResponseWriter, r *http.Request) {
		name, peer, reason := s.authenticateNode(r)
		if reason != "" {
			if write, suppressed := s.adminFailures.note(clientKey(r.RemoteAddr)); write {
				s.log.Warn("node heartbeat authentication failed", "peer", r.RemoteAddr, "reason", reason, "suppressed", suppressed)
			}
			writeError(w, http.StatusUnauthorized, "node heartbeat refused: "+reason)
			return
		}
		var req auth.NodeHeartbeatRequest
		if err := decodeNodeJSON(w, r, &req); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		creds, err := s.cfg.Auth.NodeHeartbeat(r.Context(), name, peer, req)
		if err != nil {
			if errors.Is(err, auth.ErrNodeNotRegistered) {
				s.log.Warn("heartbeat from a node that is not registered", "node", name, "remote", r.RemoteAddr, "err", err)
				writeError(w, http.StatusForbidden, err.Error())
				return
			}
			s.failPublic(w, err)
			return
		}
		writeJSON(w, http.StatusOK, creds)
	})
}

func decodeNodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxNodeBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed node request: %v", err)
	}
	return nil
}

// authenticateNode starts from "refused" and returns the node's name and certificate
// with an empty reason only when the peer's certificate chains to this cluster's TLS CA
// now, for client authentication, and names a node.
func (s *Server) authenticateNode(r *http.Request) (name string, cert *x509.Certificate, reason string) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", nil, "no client certificate"
	}
	leaf := r.TLS.PeerCertificates[0]
	now := s.cfg.Now()
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:       s.cfg.Auth.CA().TLS.CertPool(),
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		var invalid x509.CertificateInvalidError
		if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
			return "", nil, "the node's client certificate expired (not after " + leaf.NotAfter.UTC().Format(time.RFC3339) + "); join again with a new token"
		}
		return "", nil, "invalid client certificate: " + err.Error()
	}
	name, ok := auth.NodeNameOf(leaf)
	if !ok {
		return "", nil, "the client certificate is not a node's"
	}
	return name, leaf, ""
}
