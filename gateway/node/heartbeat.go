package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/web"
)

// heartbeatClient dials the cluster with the node's client certificate, trusting the
// pinned CAs and the TLS CAs the cluster sent (never any certificate, even with
// Insecure: that covers the join only).
func (a *Agent) heartbeatClient() *http.Client {
	tc := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The pool changes with the identity (CA rotation), so the chain is verified
		// here against the CAs as they are at each handshake.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		VerifyConnection:   a.verifyCluster,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := a.identity().tlsCertificate()
			if err != nil {
				return nil, err
			}
			return &c, nil
		},
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
}

func (a *Agent) verifyCluster(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the cluster presented no certificate")
	}
	pool := x509.NewCertPool()
	if a.cfg.RootCAs != nil {
		pool = a.cfg.RootCAs.Clone()
	}
	for _, c := range a.identity().tlsCAs() {
		pool.AddCert(c)
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		DNSName: cs.ServerName, Roots: pool, Intermediates: inter, CurrentTime: a.cfg.Now(),
	})
	return err
}

// heartbeatLoop heartbeats every interval, jittered, until ctx ends.
func (a *Agent) heartbeatLoop(ctx context.Context) {
	defer a.client.CloseIdleConnections()
	for {
		if err := a.heartbeat(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("heartbeat failed; serving with the CAs last received", "err", err)
		}
		iv := a.cfg.HeartbeatInterval
		wait := iv - time.Duration(rand.Int64N(int64(iv)/10+1))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// heartbeat sends one heartbeat and applies the answer: the openssh CA keys as they are
// now, and renewed certificates.
func (a *Agent) heartbeat(ctx context.Context) error {
	cur := a.identity()
	req := auth.NodeHeartbeatRequest{
		Addr: a.cfg.PublicAddr, Labels: a.cfg.Labels,
		HeartbeatTTL: (3 * a.cfg.HeartbeatInterval).String(), HostCert: cur.HostCert,
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var creds auth.NodeCredentials
	if err := postJSON(ctx, a.client, "https://"+a.cfg.AuthServer+web.NodeHeartbeatPath, req, &creds); err != nil {
		var se *statusError
		if errors.As(err, &se) && se.Status == http.StatusForbidden {
			if !a.removed.Swap(true) {
				a.log.Error("the cluster no longer knows this node: it refuses every login from now on. To join again, put a new node token (tetherctl tokens add --type=node) in node.token and restart", "err", err)
			}
		}
		return err
	}
	a.removed.Store(false)
	next := &identity{Name: cur.Name, TokenSHA256: cur.TokenSHA256, NodeCredentials: creds}
	if next.HostCert == "" {
		next.HostCert = cur.HostCert
	}
	if next.TLSCert == "" {
		next.TLSCert = cur.TLSCert
	}
	if err := next.checkAnswer(cur.key); err != nil {
		return err
	}
	changed := next.HostCert != cur.HostCert || next.TLSCert != cur.TLSCert ||
		!slices.Equal(next.NodeCAs, cur.NodeCAs) || next.TLSCAs != cur.TLSCAs || !slices.Equal(next.HostCAs, cur.HostCAs)
	if !changed {
		return nil
	}
	if err := next.save(a.cfg.Dir); err != nil {
		return err
	}
	a.mu.Lock()
	a.id = next
	a.mu.Unlock()
	if next.TLSCert != cur.TLSCert {
		// The client certificate is sent at the handshake only: a kept-alive connection
		// would go on presenting the old one (until it expires, or its CA is dropped by a
		// rotation, and every heartbeat is refused).
		a.client.CloseIdleConnections()
	}
	a.log.Info("node credentials updated by the cluster", "openssh_cas", len(next.NodeCAs))
	return nil
}
