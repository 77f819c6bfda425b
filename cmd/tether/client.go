package main

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

	"github.com/tetherproject/tether/gateway/auth"

	"github.com/tetherproject/tether/gateway/trust"
)

// apiClient calls one proxy's web API.
type apiClient struct {
	proxy string
	http  *http.Client
}

func newAPIClient(proxy string, cfg *tls.Config) *apiClient {
	return &apiClient{proxy: proxy, http: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: cfg, Proxy: http.ProxyFromEnvironment},
	}}
}

// apiError is a refusal of the proxy: its status and the message it gave.
type apiError struct {
	Status     int
	Message    string
	RetryAfter string
}

func (e *apiError) Error() string { return e.Message }

func (c *apiClient) call(ctx context.Context, method, path string, in, out any, header http.Header) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+c.proxy+path, body)
	if err != nil {
		return fmt.Errorf("the proxy address %q is not HOST:PORT", c.proxy)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return describeDialError(c.proxy, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("reading the answer of %s failed; try again", c.proxy)
	}
	if resp.StatusCode/100 != 2 {
		var e trust.ErrorResponse
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s answered HTTP %d; is it a Tether proxy?", c.proxy, resp.StatusCode)
		}
		// The message may carry others' text (a lock's message, an operator's deny
		// message, a leaf's reason): it reaches the terminal escaped.
		return &apiError{Status: resp.StatusCode, Message: auth.TerminalSafe(e.Error), RetryAfter: resp.Header.Get("Retry-After")}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s sent an answer tether cannot read; is it a Tether proxy of this version?", c.proxy)
		}
	}
	return nil
}

// describeDialError turns a transport failure into what to do next.
func describeDialError(proxy string, err error) error {
	var unknown x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &unknown) || errors.As(err, &verr) && errors.As(verr.Err, &unknown):
		return fmt.Errorf("the TLS certificate of %s is not signed by a CA tether trusts: give the cluster's TLS CA with --ca-file (tetherctl status prints its file on the cluster)", proxy)
	case errors.As(err, &hostErr):
		return fmt.Errorf("the TLS certificate of %s is not valid for that name: use the proxy's public address, as tetherctl status prints it", proxy)
	case errors.As(err, &invalid):
		return fmt.Errorf("the TLS certificate of %s is not valid now (expired, or a clock is wrong); check the clocks and the proxy", proxy)
	case errors.As(err, &verr):
		return fmt.Errorf("the TLS certificate of %s could not be verified; give the cluster's TLS CA with --ca-file", proxy)
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) || strings.Contains(err.Error(), "connection refused") {
		return fmt.Errorf("cannot reach the proxy at %s: check the address and that the cluster is running", proxy)
	}
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Timeout") {
		return fmt.Errorf("the proxy at %s did not answer in time; check the address and try again", proxy)
	}
	return fmt.Errorf("cannot talk to the proxy at %s over HTTPS; check the address (HOST:PORT of the web API)", proxy)
}
