package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tetherproject/tether/gateway/auth"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/forward"
	"github.com/tetherproject/tether/gateway/proxy"
	"github.com/tetherproject/tether/resource"
)

// exitError ends tether with Code and no message of its own (the remote command's exit
// status, or 255 for an SSH failure already reported).
type exitError struct{ Code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// sshFailure is a failure of tether ssh itself, not of the remote command (not signed in, a
// bad option, the node not found, the login denied): tether exits 255 with it, as OpenSSH's
// ssh does, so scripts tell it from a command's own status. Its message is err's.
type sshFailure struct{ err error }

func (e *sshFailure) Error() string { return e.err.Error() }
func (e *sshFailure) Unwrap() error { return e.err }

// userSigner is the profile's key with its SSH certificate.
func userSigner(p *Profile) (ssh.Signer, *ssh.Certificate, error) {
	again := fmt.Sprintf("run tether login --proxy=%s --user=%s again", p.Proxy, p.User)
	keyPEM, err := os.ReadFile(p.KeyPath())
	if err != nil {
		return nil, nil, fmt.Errorf("reading your key: %v; %s", err, again)
	}
	key, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("your key %s is unreadable; %s", p.KeyPath(), again)
	}
	certLine, err := os.ReadFile(p.CertPath())
	if err != nil {
		return nil, nil, fmt.Errorf("reading your certificate: %v; %s", err, again)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(certLine)
	cert, ok := pub.(*ssh.Certificate)
	if err != nil || !ok {
		return nil, nil, fmt.Errorf("your certificate %s is unreadable; %s", p.CertPath(), again)
	}
	signer, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		return nil, nil, fmt.Errorf("your certificate is not for your key; %s", again)
	}
	return signer, cert, nil
}

// knownHostCAs reads the @cert-authority lines of the profile's known_hosts and returns
// the keys whose host patterns match host.
func knownHostCAs(p *Profile, host string) ([]ca.TrustedKey, error) {
	data, err := os.ReadFile(p.KnownHostsPath())
	if err != nil {
		return nil, fmt.Errorf("reading %s: %v; run tether login again", p.KnownHostsPath(), err)
	}
	var out []ca.TrustedKey
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "@cert-authority" {
			continue
		}
		if !matchesPatterns(host, strings.Split(f[1], ",")) {
			continue
		}
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.Join(f[2:], " ")))
		if err != nil {
			continue
		}
		out = append(out, ca.TrustedKey{Type: ca.HostCA, Key: key})
	}
	return out, nil
}

// matchesPatterns is known_hosts matching for the patterns tether writes: a name, or
// "*." followed by a domain, each possibly negated with "!" (as in OpenSSH, a host that
// matches a negated pattern does not match the line, whatever else it matches).
func matchesPatterns(host string, patterns []string) bool {
	host = strings.ToLower(host)
	for _, pat := range patterns {
		if neg, ok := strings.CutPrefix(pat, "!"); ok && matchesPatterns(host, []string{neg}) {
			return false
		}
	}
	for _, pat := range patterns {
		pat = strings.ToLower(pat)
		if strings.HasPrefix(pat, "!") {
			continue
		}
		if suffix, ok := strings.CutPrefix(pat, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
			continue
		}
		if pat == host {
			return true
		}
	}
	return false
}

// dialProxy opens an SSH connection to the proxy, authenticated with the profile's
// certificate, verifying the proxy's host certificate against the root's host CA.
func dialProxy(ctx context.Context, p *Profile, signer ssh.Signer) (*ssh.Client, error) {
	host := proxyHost(p.Proxy)
	cas, err := knownHostCAs(p, host)
	if err != nil {
		return nil, err
	}
	if len(cas) == 0 {
		return nil, fmt.Errorf("no host CA for the proxy %s in %s: run tether login again", host, p.KnownHostsPath())
	}
	conn, err := dialRoot(ctx, &net.Dialer{Timeout: 15 * time.Second}, p.Proxy)
	if err != nil {
		var perr *proxyError
		if errors.As(err, &perr) {
			return nil, err
		}
		return nil, fmt.Errorf("cannot reach the proxy at %s: check that the cluster is running, then try again", p.Proxy)
	}
	hostKey := &hostKeyCheck{check: forward.HostKeyCallback(cas, []string{host}, time.Now)}
	cfg := &ssh.ClientConfig{
		User:            p.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKey.callback,
		Timeout:         15 * time.Second,
	}
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	cc, chans, reqs, err := ssh.NewClientConn(conn, p.Proxy, cfg)
	if err != nil {
		conn.Close()
		if herr := hostKey.failure(); herr != nil {
			return nil, hostKeyError("the proxy "+p.Proxy, p, herr)
		}
		return nil, describeSSHError("the proxy "+p.Proxy, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(cc, chans, reqs), nil
}

// hostKeyCheck remembers why a host key was refused, so that the refusal is reported
// as what it is (a possible man in the middle) and not as a generic connection failure.
type hostKeyCheck struct {
	check ssh.HostKeyCallback
	mu    sync.Mutex
	err   error
}

func (h *hostKeyCheck) callback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := h.check(hostname, remote, key)
	if err != nil {
		h.mu.Lock()
		h.err = err
		h.mu.Unlock()
	}
	return err
}

func (h *hostKeyCheck) failure() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// hostKeyError is OpenSSH's "Host key verification failed", with the reason and what to
// do: never "try again", since trying again is what an attacker in the middle wants.
func hostKeyError(what string, p *Profile, err error) error {
	return fmt.Errorf("host key verification failed for %s: %v. Someone may be intercepting the connection, or the cluster's host CA changed: do not retry blindly; if your administrator confirms a change, run tether login again to refresh %s", what, err, p.KnownHostsPath())
}

func describeSSHError(what string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "unable to authenticate"):
		return fmt.Errorf("%s refused your certificate (expired, or from another cluster): run tether login again", what)
	case strings.Contains(msg, ca.ErrUnknownAuthority.Error()):
		return fmt.Errorf("%s presented a host certificate of a CA your profile does not trust (the cluster's host CA was rotated?): run tether login again", what)
	case strings.Contains(msg, "no host CA for cluster"):
		return errors.New(msg[strings.Index(msg, "no host CA for cluster"):])
	case strings.Contains(msg, "host certificate") || strings.Contains(msg, "host presented"):
		return fmt.Errorf("%s could not be verified: %v", what, err)
	}
	return fmt.Errorf("the SSH connection to %s failed; try again", what)
}

// nodeStream opens the proxy's subsystem for node:port@cluster and returns it as a
// connection. What the proxy writes to the channel's stderr (a refusal) goes to stderr;
// exit receives the subsystem's exit status when it ends.
func nodeStream(client *ssh.Client, node string, port int, cluster string, stderr io.Writer) (net.Conn, <-chan int, error) {
	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		return nil, nil, fmt.Errorf("the proxy refused the connection: %v", err)
	}
	name := proxy.SubsystemPrefix + net.JoinHostPort(node, strconv.Itoa(port)) + "@" + cluster
	exit := make(chan int, 1)
	errDone := make(chan struct{})
	go func() {
		code := 255
		for r := range reqs {
			if r.Type == "exit-status" && len(r.Payload) >= 4 {
				code = int(binary.BigEndian.Uint32(r.Payload))
			}
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
		// Whatever the proxy said on stderr is printed before the status is reported.
		select {
		case <-errDone:
		case <-time.After(2 * time.Second):
		}
		exit <- code
	}()
	ok, err := ch.SendRequest("subsystem", true, ssh.Marshal(struct{ Name string }{name}))
	if err != nil || !ok {
		close(errDone)
		ch.Close()
		return nil, nil, errors.New("the proxy does not serve node connections (is it a Tether proxy of this version?)")
	}
	go func() {
		defer close(errDone)
		copyEscaped(stderr, ch.Stderr())
	}()
	return &proxy.ChannelConn{Channel: ch, Local: client.LocalAddr(), Remote: client.RemoteAddr()}, exit, nil
}

// copyEscaped copies the proxy's stderr to w line by line, each line terminal-safe: it
// says the cluster's reasons (a lock's message, an operator module's deny message), text
// others wrote, and tether proxy ssh's stderr is the user's terminal under OpenSSH too.
func copyEscaped(w io.Writer, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		_, _ = fmt.Fprintln(w, auth.TerminalSafe(sc.Text()))
	}
	// A line too long for the scanner: the rest is dropped, not written raw.
	_, _ = io.Copy(io.Discard, r)
}

// dialNode connects to login@node in cluster through the proxy, verifying the node's
// host certificate against the cluster's host CA.
func dialNode(ctx context.Context, p *Profile, login, node string, port int, cluster string) (*ssh.Client, func(), error) {
	// As the proxy routes it: --cluster=LEAF. is leaf's, whose host CA checks the node.
	cluster = resource.NormalizeClusterName(cluster)
	signer, _, err := userSigner(p)
	if err != nil {
		return nil, nil, err
	}
	fqdn := node + "." + cluster
	cas, err := knownHostCAs(p, fqdn)
	if err != nil {
		return nil, nil, err
	}
	// The proxy decides the route first (an unknown or hidden cluster, an offline leaf);
	// the host CA is needed only once a node answers.
	hostKey := forward.HostKeyCallback(cas, []string{fqdn, node}, time.Now)
	noCA := len(cas) == 0
	if noCA {
		hostKey = func(string, net.Addr, ssh.PublicKey) error {
			return fmt.Errorf("no host CA for cluster %s in %s (it joined after you signed in?): run tether login again", cluster, p.KnownHostsPath())
		}
	}
	check := &hostKeyCheck{check: hostKey}
	conn, exit, closeProxy, err := proxyNodeConn(ctx, p, signer, node, port, cluster, os.Stderr)
	if err != nil {
		return nil, nil, err
	}
	// The enforcement point refuses a login it does not allow at authentication, saying
	// why in a banner (as sshd's "Permission denied", with the reason).
	var banner strings.Builder
	cfg := &ssh.ClientConfig{
		User:            login,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: check.callback,
		BannerCallback: func(msg string) error {
			if banner.Len() < 4096 {
				banner.WriteString(msg)
			}
			return nil
		},
	}
	type result struct {
		c   *ssh.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		cc, chans, reqs, err := ssh.NewClientConn(conn, net.JoinHostPort(fqdn, strconv.Itoa(port)), cfg)
		if err != nil {
			done <- result{nil, err}
			return
		}
		done <- result{ssh.NewClient(cc, chans, reqs), nil}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			closeProxy()
			// The node answered and its host key was refused: say so whatever status
			// the proxy's subsystem ends with.
			if herr := check.failure(); herr != nil {
				if noCA {
					return nil, nil, herr
				}
				return nil, nil, hostKeyError(fmt.Sprintf("node %s in cluster %s", node, cluster), p, herr)
			}
			if msg := strings.TrimSpace(banner.String()); msg != "" {
				lines := strings.Split(msg, "\n")
				for i, l := range lines {
					lines[i] = auth.TerminalSafe(strings.TrimRight(l, "\r"))
				}
				return nil, nil, &sshFailure{errors.New(strings.Join(lines, "\n"))}
			}
			// The proxy said why on stderr (already printed) when it refused the route.
			select {
			case code := <-exit:
				return nil, nil, &exitError{Code: max(code, 1)}
			case <-time.After(2 * time.Second):
			}
			return nil, nil, describeSSHError(fmt.Sprintf("node %s in cluster %s", node, cluster), r.err)
		}
		return r.c, func() { r.c.Close(); closeProxy() }, nil
	case <-ctx.Done():
		closeProxy()
		return nil, nil, ctx.Err()
	case <-time.After(30 * time.Second):
		closeProxy()
		return nil, nil, fmt.Errorf("node %s in cluster %s did not answer in time; try again", node, cluster)
	}
}
