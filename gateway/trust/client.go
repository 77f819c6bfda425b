package trust

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/tetherproject/tether/resource"
)

// ErrTokenRejected is returned by Client.Validate when the root refused the token.
var ErrTokenRejected = errors.New(RejectedTokenMessage)

// Client calls a root's handshake endpoint. Its zero value verifies the root against the
// system roots with a 30 second timeout.
type Client struct {
	// RootCAs, when set, replaces the system roots for verifying the root's web proxy.
	RootCAs *x509.CertPool
	// Insecure skips verifying the root's certificate. For tests only.
	Insecure bool
	// Timeout bounds the whole call, answer included. Default 30s.
	Timeout time.Duration
}

// Validate sends req to https://webProxyAddr/webapi/trustedclusters/validate and returns
// the root's CAs (host and user, both of cluster root).
func (c Client) Validate(ctx context.Context, webProxyAddr, root string, req ValidateRequest) ([]*resource.CertAuthority, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	u := "https://" + webProxyAddr + ValidatePath
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("contacting the root at %s: %w", webProxyAddr, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	tr := &http.Transport{
		TLSClientConfig:       &tls.Config{RootCAs: c.RootCAs, InsecureSkipVerify: c.Insecure, MinVersion: tls.VersionTLS12}, //nolint:gosec // Insecure is an explicit, loudly logged test option
		DialContext:           (&net.Dialer{Timeout: timeout}).DialContext,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		DisableKeepAlives:     true,
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: timeout}).Do(hreq)
	if err != nil {
		var uerr x509.UnknownAuthorityError
		if errors.As(err, &uerr) || strings.Contains(err.Error(), "certificate") {
			return nil, fmt.Errorf("the trusted cluster uses a misconfigured HTTP/TLS certificate (%w); give tetherd the root's CA with root_ca_file, or --insecure for testing only", err)
		}
		return nil, fmt.Errorf("contacting the root at %s: %w", webProxyAddr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e ErrorResponse
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = http.StatusText(resp.StatusCode)
		}
		if resp.StatusCode == http.StatusForbidden && e.Error == RejectedTokenMessage {
			return nil, ErrTokenRejected
		}
		return nil, fmt.Errorf("the root at %s refused the trust request: %s (HTTP %d)", webProxyAddr, e.Error, resp.StatusCode)
	}
	cas, err := DecodeValidateResponse(resp.Body, root)
	if err != nil {
		return nil, fmt.Errorf("reading the answer of the root at %s: %w", webProxyAddr, err)
	}
	return cas, nil
}
