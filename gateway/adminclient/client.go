// Package adminclient is tetherctl's side of a cluster's admin API (package web): an
// HTTPS client that authenticates with the admin identity and verifies the server
// against the cluster's TLS CA from the same identity file.
package adminclient

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
	"net/url"
	"strings"
	"time"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/identity"
	"github.com/tetherproject/tether/gateway/trust"
	"github.com/tetherproject/tether/gateway/web"
)

// DefaultTimeout bounds one admin call. Creating a trusted_cluster waits for the
// handshake with the root, so it is longer than the root's own trust timeout.
const DefaultTimeout = 60 * time.Second

// Client calls one cluster's admin API.
type Client struct {
	base string
	http *http.Client
}

// New returns a client for the auth server at addr (host:port; empty: the identity's).
func New(id *identity.Identity, addr string) (*Client, error) {
	if addr == "" {
		addr = id.AuthServer
	}
	if addr == "" {
		return nil, fmt.Errorf("no auth server address: give --auth-server host:port")
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("auth server %q: want host:port", addr)
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			RootCAs:      id.RootCAs,
			Certificates: []tls.Certificate{id.Cert},
			ServerName:   host,
		},
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: DefaultTimeout,
	}
	return &Client{base: "https://" + addr, http: &http.Client{Transport: tr, Timeout: DefaultTimeout}}, nil
}

// callError says what a failed call means and what to check; the cause stays wrapped
// for callers that branch on it.
func (c *Client) callError(err error) error {
	addr := strings.TrimPrefix(c.base, "https://")
	var unknownCA x509.UnknownAuthorityError
	var certInvalid x509.CertificateInvalidError
	var wrongHost x509.HostnameError
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case errors.As(err, &unknownCA):
		return explained(fmt.Sprintf("the auth server at %s is not the cluster of the identity file: its TLS certificate is not from that cluster's CA; check -i (or --data-dir) and --auth-server", addr), err)
	case errors.As(err, &wrongHost):
		return explained(fmt.Sprintf("the auth server's TLS certificate does not name the host of %s; give --auth-server the address the cluster serves (its public_addr or listen address)", addr), err)
	case errors.As(err, &certInvalid):
		return explained(fmt.Sprintf("the auth server at %s has a TLS certificate tetherctl cannot accept (expired, or not for servers); check the cluster's clock and CAs", addr), err)
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return explained(fmt.Sprintf("cannot reach the auth server at %s: is tetherd running there, and is the address right?", addr), err)
	case errors.As(err, &netErr) && netErr.Timeout():
		return explained(fmt.Sprintf("the auth server at %s did not answer in time; try again, or check that it is a Tether cluster's web address", addr), err)
	}
	return fmt.Errorf("calling the auth server at %s: %w", addr, err)
}

// explained is an error whose message is msg alone; the cause stays for errors.Is/As.
func explained(msg string, cause error) error { return &explainedError{msg, cause} }

type explainedError struct {
	msg   string
	cause error
}

func (e *explainedError) Error() string { return e.msg }
func (e *explainedError) Unwrap() error { return e.cause }

// Error is a non-2xx answer.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	data, err := c.send(ctx, method, path, body, contentType, nil)
	if err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding the auth server's answer: %w", err)
		}
	}
	return nil
}

// raw makes a call without a body and returns the answer's bytes; head sees its headers.
func (c *Client) raw(ctx context.Context, method, path string, head func(http.Header)) ([]byte, error) {
	return c.send(ctx, method, path, nil, "", head)
}

// MaxAnswer is the largest answer a Client reads, in bytes; a larger one is an error.
const MaxAnswer = 64 << 20

// send makes one call and returns the body of a 2xx answer (at most MaxAnswer), or the
// server's error as an *Error.
func (c *Client) send(ctx context.Context, method, path string, body io.Reader, contentType string, head func(http.Header)) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.callError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("reading the auth server's answer: %w", err)
	}
	if len(data) > MaxAnswer {
		// Never a part of the answer as if it were all of it.
		return nil, fmt.Errorf("the auth server's answer is larger than %d MiB, more than tetherctl reads; ask for less (one kind or one name at a time)", MaxAnswer>>20)
	}
	if resp.StatusCode/100 != 2 {
		var e trust.ErrorResponse
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(data)))
		}
		return nil, &Error{Status: resp.StatusCode, Message: e.Error}
	}
	if head != nil {
		head(resp.Header)
	}
	return data, nil
}

// PolicyBundle downloads the bundle the cluster decides with (.tar.gz) and its revision.
func (c *Client) PolicyBundle(ctx context.Context) ([]byte, string, error) {
	var rev string
	data, err := c.raw(ctx, http.MethodGet, web.PolicyBundlePath, func(h http.Header) { rev = h.Get(web.RevisionHeader) })
	return data, rev, err
}

func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	return c.do(ctx, method, path, body, "application/json", out)
}

// Create sends a resource file (one or more YAML documents); source names it in errors.
func (c *Client) Create(ctx context.Context, data []byte, source string, force bool) ([]string, error) {
	q := url.Values{"source": {source}}
	if force {
		q.Set("force", "true")
	}
	var out web.MessagesResponse
	err := c.do(ctx, http.MethodPost, "/v1/admin/resources?"+q.Encode(), bytes.NewReader(data), "application/yaml", &out)
	return out.Messages, err
}

// Get returns resources of kind (canonical, e.g. remote_cluster), or the one named name,
// each as a YAML document.
func (c *Client) Get(ctx context.Context, kind, name string, withSecrets bool) ([]string, error) {
	p := "/v1/admin/resources/" + url.PathEscape(kind)
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	if withSecrets {
		p += "?secrets=true"
	}
	var out web.ResourcesResponse
	err := c.doJSON(ctx, http.MethodGet, p, nil, &out)
	return out.Resources, err
}

// Delete removes a resource.
func (c *Client) Delete(ctx context.Context, kind, name string) (string, error) {
	var out web.MessagesResponse
	err := c.doJSON(ctx, http.MethodDelete, "/v1/admin/resources/"+url.PathEscape(kind)+"/"+url.PathEscape(name), nil, &out)
	return strings.Join(out.Messages, "\n"), err
}

// SetRemoteClusterLabels replaces a remote cluster's labels.
func (c *Client) SetRemoteClusterLabels(ctx context.Context, name string, labels map[string]string) error {
	return c.doJSON(ctx, http.MethodPut, "/v1/admin/remoteclusters/"+url.PathEscape(name)+"/labels", web.LabelsRequest{Labels: labels}, nil)
}

// AddToken creates a token.
func (c *Client) AddToken(ctx context.Context, req web.TokenRequest) (web.TokenResponse, error) {
	var out web.TokenResponse
	err := c.doJSON(ctx, http.MethodPost, "/v1/admin/tokens", req, &out)
	return out, err
}

// ListTokens lists live tokens (by prefix).
func (c *Client) ListTokens(ctx context.Context) ([]web.TokenListItem, error) {
	var out []web.TokenListItem
	err := c.doJSON(ctx, http.MethodGet, "/v1/admin/tokens", nil, &out)
	return out, err
}

// DeleteToken removes a token by value or listed prefix.
func (c *Client) DeleteToken(ctx context.Context, token string) error {
	return c.doJSON(ctx, http.MethodPost, "/v1/admin/tokens/delete", web.TokenDeleteRequest{Token: token}, nil)
}

// RotateCA moves one of the cluster's CAs (user, host, tls or openssh) to a rotation phase and
// returns its state after the move.
func (c *Client) RotateCA(ctx context.Context, typ, phase string) (auth.CAStatus, error) {
	var out auth.CAStatus
	err := c.doJSON(ctx, http.MethodPost, web.RotatePath, web.RotateRequest{Type: typ, Phase: phase}, &out)
	return out, err
}
