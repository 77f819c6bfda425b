package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/net/http/httpproxy"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/trust"
	"github.com/tetherproject/tether/gateway/web"
)

// nodeStreamEnv chooses how tether reaches a node through the proxy: unset or "tls", the
// web API's node stream (web.NodeStreamPath), falling back to the SSH entry when the proxy
// does not serve it (an earlier version); "ssh", the SSH entry's proxy: subsystem only
// (to compare the two, or to work around a fault in the stream).
const nodeStreamEnv = "TETHER_NODE_STREAM"

// errNoNodeStream is a proxy that does not serve node streams.
var errNoNodeStream = errors.New("the proxy serves no node stream")

// proxyNodeConn opens a connection to node:port in cluster through the proxy, ready for
// the user's SSH connection: the proxy decides the route first. What the proxy says goes
// to stderr; exit receives its status once the connection ends; closeAll ends the
// connection and whatever carries it.
func proxyNodeConn(ctx context.Context, p *Profile, signer ssh.Signer, node string, port int, cluster string, stderr io.Writer) (conn net.Conn, exit <-chan int, closeAll func(), err error) {
	switch mode := os.Getenv(nodeStreamEnv); mode {
	case "", "tls":
		conn, exit, err := tlsNodeStream(ctx, p, node, port, cluster, stderr)
		if !errors.Is(err, errNoNodeStream) {
			if err != nil {
				return nil, nil, nil, err
			}
			return conn, exit, func() { conn.Close() }, nil
		}
	case "ssh":
	default:
		return nil, nil, nil, fmt.Errorf("%s=%q: give tls or ssh", nodeStreamEnv, mode)
	}
	client, err := dialProxy(ctx, p, signer)
	if err != nil {
		return nil, nil, nil, err
	}
	conn, exit, err = nodeStream(client, node, port, cluster, stderr)
	if err != nil {
		client.Close()
		return nil, nil, nil, err
	}
	return conn, exit, func() { conn.Close(); client.Close() }, nil
}

// tlsNodeStream opens the web API's node stream to node:port in cluster with the
// profile's certificates. A route the proxy refuses is printed to stderr as the SSH
// entry's refusals are and returned as exit status 1.
func tlsNodeStream(ctx context.Context, p *Profile, node string, port int, cluster string, stderr io.Writer) (net.Conn, <-chan int, error) {
	cfg, err := p.clientTLS()
	if err != nil {
		return nil, nil, err
	}
	sshCert, err := os.ReadFile(p.CertPath())
	if err != nil {
		return nil, nil, fmt.Errorf("reading your SSH certificate: %v; run tether login again", err)
	}
	req, err := web.NodeStreamRequest(p.Proxy, net.JoinHostPort(node, strconv.Itoa(port))+"@"+cluster, string(sshCert))
	if err != nil {
		return nil, nil, fmt.Errorf("the proxy address %q is not HOST:PORT", p.Proxy)
	}
	raw, err := dialWebPort(ctx, p.Proxy, cfg)
	if err != nil {
		var perr *proxyError
		if errors.As(err, &perr) {
			return nil, nil, err
		}
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			// Signed in, the proxy's certificate no longer checks: OpenSSH's "Host key
			// verification failed", never "try again".
			return nil, nil, fmt.Errorf("TLS certificate verification failed for the proxy %s: %v. Someone may be intercepting the connection, or the cluster's TLS CA changed: do not retry blindly; if your administrator confirms a change, run tether login again", p.Proxy, verr.Err)
		}
		return nil, nil, describeDialError(p.Proxy, err)
	}
	conn := raw
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReaderSize(conn, 64<<10)
	var resp *http.Response
	if err = req.Write(conn); err == nil {
		resp, err = http.ReadResponse(br, req)
	}
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("the proxy %s did not answer the connection request; try again", p.Proxy)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer conn.Close()
		return nil, nil, nodeStreamRefusal(resp, stderr)
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), web.NodeStreamProtocol) {
		conn.Close()
		return nil, nil, fmt.Errorf("the proxy %s answered the connection request with another protocol (%q)", p.Proxy, resp.Header.Get("Upgrade"))
	}
	_ = conn.SetDeadline(time.Time{})
	c := &streamConn{Conn: conn, r: web.NewStreamReader(br), stderr: stderr, exit: make(chan int, 1)}
	return c, c.exit, nil
}

// nodeStreamRefusal is the error for a proxy's answer other than 101: errNoNodeStream for
// a proxy without the route; a route refused (403) printed to stderr, as the SSH entry
// prints it, and exit status 1; otherwise what to do next.
func nodeStreamRefusal(resp *http.Response, stderr io.Writer) error {
	defer resp.Body.Close()
	var e trust.ErrorResponse
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
	msg := auth.TerminalSafe(e.Error)
	switch resp.StatusCode {
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return errNoNodeStream
	case http.StatusForbidden:
		fmt.Fprintln(stderr, "ERROR:", msg)
		return &exitError{Code: 1}
	case http.StatusUnauthorized:
		return errors.New("the proxy refused your certificate (expired, or from another cluster): run tether login again")
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return fmt.Errorf("the proxy is busy (%s); try again", msg)
	}
	if msg == "" {
		msg = resp.Status
	}
	return fmt.Errorf("the proxy refused the connection: %s", msg)
}

// streamConn is the user's side of a node stream: writes go to the proxy as they are,
// reads come from its frames. When the stream ends, what the proxy said is printed and
// its exit status sent on exit (255 for a stream that broke off, as for an SSH
// connection without an exit status).
type streamConn struct {
	*tls.Conn
	r      *web.StreamReader
	stderr io.Writer
	exit   chan int
	once   sync.Once
}

func (c *streamConn) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if err != nil {
		c.finish(err)
	}
	return n, err
}

func (c *streamConn) Close() error {
	c.finish(net.ErrClosed)
	return c.Conn.Close()
}

func (c *streamConn) finish(err error) {
	c.once.Do(func() {
		code := 255
		switch end := c.r.End(); {
		case end != nil:
			code = end.Code
			if end.Message != "" {
				fmt.Fprintln(c.stderr, "ERROR:", auth.TerminalSafe(end.Message))
			}
		case errors.Is(err, web.ErrBadStreamFrame):
			fmt.Fprintln(c.stderr, "ERROR: the proxy's stream broke the format:", auth.TerminalSafe(err.Error()))
		}
		c.exit <- code
	})
}

// dialWebPort opens a TLS connection to addr with cfg: directly, or through the HTTP proxy
// the environment names for https://addr (HTTPS_PROXY, NO_PROXY, as for tether's other
// calls to the web API; loopback addresses never go through one) with HTTP CONNECT, as tsh
// reaches a proxy from behind a corporate one.
func dialWebPort(ctx context.Context, addr string, cfg *tls.Config) (*tls.Conn, error) {
	raw, err := dialRoot(ctx, &net.Dialer{Timeout: 15 * time.Second}, addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

// dialRoot opens a TCP connection to addr, one of the root proxy's ports: directly, or
// through the HTTP proxy the environment names for https://addr (HTTPS_PROXY, NO_PROXY;
// loopback addresses never go through one) with HTTP CONNECT. The SSH entry goes the same
// way as the web port, as tsh takes HTTPS_PROXY for both.
func dialRoot(ctx context.Context, d *net.Dialer, addr string) (net.Conn, error) {
	via, err := httpproxy.FromEnvironment().ProxyFunc()(&url.URL{Scheme: "https", Host: addr})
	if err != nil {
		return nil, &proxyError{fmt.Errorf("the HTTPS_PROXY setting is not a URL (%v): fix or unset it", err)}
	}
	if via == nil {
		return d.DialContext(ctx, "tcp", addr)
	}
	return connectVia(ctx, d, via, addr)
}

// proxyError is a failure of the HTTP proxy tether was told to go through, said as is.
type proxyError struct{ err error }

func (e *proxyError) Error() string { return e.err.Error() }
func (e *proxyError) Unwrap() error { return e.err }

// connectVia opens a tunnel to addr through the HTTP proxy at via with CONNECT (Basic
// credentials from the URL's user information, as curl sends them).
func connectVia(ctx context.Context, d *net.Dialer, via *url.URL, addr string) (net.Conn, error) {
	if via.Scheme != "http" {
		return nil, &proxyError{fmt.Errorf("the HTTPS proxy %s is not an http:// proxy: tether reaches proxies with HTTP CONNECT only", via.Redacted())}
	}
	hostport := via.Host
	if via.Port() == "" {
		hostport = net.JoinHostPort(via.Hostname(), "80")
	}
	c, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, &proxyError{fmt.Errorf("cannot reach the HTTPS proxy %s: check HTTPS_PROXY", via.Redacted())}
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: addr}, Host: addr, Header: http.Header{}}
	if u := via.User; u != nil {
		pass, _ := u.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pass)))
	}
	br := bufio.NewReader(c)
	var resp *http.Response
	if err = req.Write(c); err == nil {
		resp, err = http.ReadResponse(br, req)
	}
	if err != nil {
		c.Close()
		return nil, &proxyError{fmt.Errorf("the HTTPS proxy %s did not answer the CONNECT request: check HTTPS_PROXY", via.Redacted())}
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, &proxyError{fmt.Errorf("the HTTPS proxy %s refused to connect to %s: %s", via.Redacted(), addr, auth.TerminalSafe(resp.Status))}
	}
	_ = c.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: c, r: br}, nil
	}
	return c, nil
}

// bufferedConn reads what a reader buffered before the rest of the connection.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }
