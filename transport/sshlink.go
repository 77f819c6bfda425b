package transport

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSH names of the fallback's requests and channels.
const (
	sshRootRequest    = "tether-x509-root@tether" // the leaf asks for the root's chain first
	sshBindRequest    = "tether-x509@tether"      // then presents its own
	sshControlChannel = "tether-control@tether"
	sshDialChannel    = "tether-dial@tether"
	sshServerVersion  = "SSH-2.0-tether-tunnel"
	maxChainCerts     = 4
	maxCertBytes      = 16 << 10
)

// sshCiphers puts AES-GCM first: with AES-NI it is the fastest on the machines we run on,
// and it is OpenSSH's own first choice there.
var sshCiphers = []string{"aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com"}

// SSHCipher names the ciphers an SSH connection negotiated, as "aes128-gcm@openssh.com",
// or "read / write" when the directions differ, for the log.
func SSHCipher(c ssh.Conn) string {
	switch v := c.(type) {
	case *ssh.ServerConn:
		c = v.Conn
	case *ssh.Client:
		c = v.Conn
	}
	a, ok := c.(ssh.AlgorithmsConnMetadata)
	if !ok {
		return "unknown"
	}
	alg := a.Algorithms()
	cipher := func(d ssh.DirectionAlgorithms) string {
		if strings.Contains(d.Cipher, "gcm") || strings.Contains(d.Cipher, "poly1305") {
			return d.Cipher
		}
		return d.Cipher + " " + d.MAC
	}
	r, w := cipher(alg.Read), cipher(alg.Write)
	if r == w {
		return r
	}
	return r + " / " + w
}

// sshLink is a link over one SSH connection on TCP.
type sshLink struct {
	conn    ssh.Conn
	tcp     net.Conn
	chain   []*x509.Certificate
	streams chan ssh.NewChannel // root: the control channel; leaf: dial channels
	closed  chan struct{}
	once    sync.Once
}

func newSSHLink(conn ssh.Conn, tcp net.Conn, chain []*x509.Certificate, chans <-chan ssh.NewChannel, want string) *sshLink {
	l := &sshLink{conn: conn, tcp: tcp, chain: chain, streams: make(chan ssh.NewChannel, 64), closed: make(chan struct{})}
	go func() {
		defer l.markClosed()
		for nc := range chans {
			if nc.ChannelType() != want {
				_ = nc.Reject(ssh.UnknownChannelType, "unexpected channel type")
				continue
			}
			// A full queue holds the peer back (flow control), never drops its stream.
			select {
			case l.streams <- nc:
			case <-l.closed:
				_ = nc.Reject(ssh.ConnectionFailed, "tunnel closing")
			}
		}
	}()
	go func() {
		_ = conn.Wait()
		l.markClosed()
	}()
	return l
}

func (l *sshLink) markClosed() { l.once.Do(func() { close(l.closed); l.conn.Close() }) }

func (l *sshLink) accept(ctx context.Context) (stream, error) {
	select {
	case nc := <-l.streams:
		extra := nc.ExtraData()
		ch, reqs, err := nc.Accept()
		if err != nil {
			return nil, err
		}
		go ssh.DiscardRequests(reqs)
		st := &sshStream{Channel: ch}
		if len(extra) > 0 {
			st.r = io.MultiReader(bytes.NewReader(extra), ch)
		}
		return st, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *sshLink) open(ctx context.Context, kind string, first []byte) (stream, error) {
	type result struct {
		ch  ssh.Channel
		err error
	}
	res := make(chan result, 1)
	go func() {
		ch, reqs, err := l.conn.OpenChannel(kind, first)
		if err == nil {
			go ssh.DiscardRequests(reqs)
		}
		res <- result{ch, err}
	}()
	select {
	case r := <-res:
		if r.err != nil {
			return nil, r.err
		}
		return &sshStream{Channel: r.ch}, nil
	case <-ctx.Done():
		go func() {
			if r := <-res; r.ch != nil {
				r.ch.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

func (l *sshLink) openControl(ctx context.Context) (stream, error) {
	return l.open(ctx, sshControlChannel, nil)
}
func (l *sshLink) acceptControl(ctx context.Context) (stream, error) { return l.accept(ctx) }
func (l *sshLink) openStream(ctx context.Context, first []byte) (stream, error) {
	return l.open(ctx, sshDialChannel, first)
}
func (l *sshLink) acceptStream(ctx context.Context) (stream, error) { return l.accept(ctx) }
func (l *sshLink) peerChain() []*x509.Certificate                   { return l.chain }
func (l *sshLink) close(code uint64, reason string)                 { l.markClosed() }
func (l *sshLink) received() uint64                                 { return 0 }
func (l *sshLink) closeErr() error                                  { return nil }
func (l *sshLink) done() <-chan struct{}                            { return l.closed }
func (l *sshLink) transport() Transport                             { return SSH }
func (l *sshLink) cipher() string                                   { return SSHCipher(l.conn) }
func (l *sshLink) localAddr() net.Addr                              { return l.tcp.LocalAddr() }
func (l *sshLink) remoteAddr() net.Addr                             { return l.tcp.RemoteAddr() }

// sshStream is an SSH channel; r, when set, first yields the bytes that came with the
// channel-open message.
type sshStream struct {
	ssh.Channel
	r io.Reader
}

func (s *sshStream) Read(p []byte) (int, error) {
	if s.r != nil {
		return s.r.Read(p)
	}
	return s.Channel.Read(p)
}

func (s *sshStream) cutRead() { s.Channel.Close() }

// encodeChain and decodeChain carry a DER certificate chain in the binding request:
// each certificate as a uint32 length and its bytes.
func encodeChain(chain [][]byte) []byte {
	var b []byte
	for _, c := range chain {
		b = binary.BigEndian.AppendUint32(b, uint32(len(c)))
		b = append(b, c...)
	}
	return b
}

func decodeChain(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for len(b) > 0 {
		if len(out) == maxChainCerts {
			return nil, fmt.Errorf("certificate chain longer than %d", maxChainCerts)
		}
		if len(b) < 4 {
			return nil, errors.New("truncated certificate chain")
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if n > maxCertBytes || int(n) > len(b) {
			return nil, errors.New("certificate in chain too large or truncated")
		}
		c, err := x509.ParseCertificate(b[:n])
		if err != nil {
			return nil, fmt.Errorf("parsing certificate in chain: %w", err)
		}
		out = append(out, c)
		b = b[n:]
	}
	if len(out) == 0 {
		return nil, errors.New("empty certificate chain")
	}
	return out, nil
}

// sshSigner turns a TLS certificate's private key into the SSH key that proves it.
func sshSigner(cert *tls.Certificate) (ssh.Signer, error) {
	if cert == nil || len(cert.Certificate) == 0 {
		return nil, errors.New("no certificate")
	}
	priv, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("certificate's private key cannot sign")
	}
	return ssh.NewSignerFromSigner(priv)
}

// sameKey reports whether the certificate certifies the SSH key.
func sameKey(cert *x509.Certificate, key ssh.PublicKey) bool {
	k, err := ssh.NewPublicKey(cert.PublicKey)
	return err == nil && bytes.Equal(k.Marshal(), key.Marshal())
}

// acceptSSH runs the root's side of the fallback handshake on an accepted TCP connection:
// SSH with the root certificate's key as host key, public-key authentication of the
// leaf's key, then the chain exchange: the root sends its chain when asked (the leaf checks
// it before showing its own), then the leaf's chain must certify the key it authenticated
// with and pass verify. Nothing else is served before; the whole handshake must finish
// within timeout.
func acceptSSH(tcp net.Conn, cert *tls.Certificate, verify func([]*x509.Certificate) (string, error), timeout time.Duration) (*sshLink, string, error) {
	_ = tcp.SetDeadline(time.Now().Add(timeout))
	hostKey, err := sshSigner(cert)
	if err != nil {
		return nil, "", fmt.Errorf("root tunnel certificate: %w", err)
	}
	cfg := &ssh.ServerConfig{
		ServerVersion: sshServerVersion,
		// Authentication proves possession of the key; which cluster the key speaks for
		// is decided by the chain exchange below, before anything is served.
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			return &ssh.Permissions{Extensions: map[string]string{"key": string(key.Marshal())}}, nil
		},
	}
	cfg.Ciphers = sshCiphers
	cfg.AddHostKey(hostKey)
	sconn, chans, reqs, err := ssh.NewServerConn(tcp, cfg)
	if err != nil {
		tcp.Close()
		return nil, "", fmt.Errorf("SSH handshake: %w", err)
	}
	leafKey, err := ssh.ParsePublicKey([]byte(sconn.Permissions.Extensions["key"]))
	if err != nil {
		sconn.Close()
		return nil, "", err
	}
	expire := time.After(timeout)
	next := func() *ssh.Request {
		select {
		case r := <-reqs:
			return r
		case <-expire:
			return nil
		}
	}
	var req *ssh.Request
	fail := func(reason string, err error) (*sshLink, string, error) {
		if req != nil && req.WantReply {
			_ = req.Reply(false, []byte(reason))
		}
		sconn.Close()
		return nil, "", err
	}
	// First the root proves who it is, so the leaf shows its certificate only to a root it
	// pins; then the leaf presents its chain.
	if req = next(); req == nil || req.Type != sshRootRequest {
		return fail("expected the certificate exchange", errors.New("leaf did not ask for the root's certificate chain"))
	}
	if err := req.Reply(true, encodeChain(cert.Certificate)); err != nil {
		sconn.Close()
		return nil, "", err
	}
	if req = next(); req == nil || req.Type != sshBindRequest {
		return fail("expected the certificate exchange", errors.New("leaf did not present its certificate chain"))
	}
	chain, err := decodeChain(req.Payload)
	if err != nil {
		return fail("bad certificate chain", fmt.Errorf("leaf certificate chain: %w", err))
	}
	if !sameKey(chain[0], leafKey) {
		return fail("certificate does not certify the SSH key", errors.New("leaf certificate does not certify the key it authenticated with"))
	}
	cluster, err := verify(chain)
	if err != nil {
		return fail("certificate refused", fmt.Errorf("verifying leaf certificate: %w", err))
	}
	if err := req.Reply(true, nil); err != nil {
		sconn.Close()
		return nil, "", err
	}
	go ssh.DiscardRequests(reqs)
	_ = tcp.SetDeadline(time.Time{})
	return newSSHLink(sconn, tcp, chain, chans, sshControlChannel), cluster, nil
}

// SSHClientVersion is the SSH version line a leaf's tunnel agent sends. A root serving
// its tunnel on its web port routes SSH connections that start with it to the tunnel
// server (which still demands the leaf's credentials) and every other SSH client to the
// user SSH entry.
const SSHClientVersion = "SSH-2.0-tether-tunnel-agent"

// dialSSH runs the leaf's side: TCP to the root's port, SSH with the leaf certificate's
// key, then the chain exchange: the root's chain must verify against the pinned pool for
// serverName and certify the host key the SSH handshake proved; only then does the leaf
// present its own chain.
func dialSSH(ctx context.Context, addr string, cert *tls.Certificate, roots *x509.CertPool, serverName, user string, timeout time.Duration) (*sshLink, error) {
	signer, err := sshSigner(cert)
	if err != nil {
		return nil, fmt.Errorf("leaf tunnel certificate: %w", err)
	}
	d := net.Dialer{Timeout: timeout, KeepAlive: 15 * time.Second}
	tcp, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := tcp.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = tcp.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = tcp.SetDeadline(time.Now()) })
	defer stop()
	var hostKey ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User: user,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		// The host key is checked against the root's certificate chain right after the
		// handshake, before the tunnel is used.
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error { hostKey = key; return nil },
		Timeout:         timeout,
		// The root's web port routes on it (one port for web, user SSH and tunnels).
		ClientVersion: SSHClientVersion,
	}
	cfg.Ciphers = sshCiphers
	cconn, chans, reqs, err := ssh.NewClientConn(tcp, addr, cfg)
	if err != nil {
		tcp.Close()
		return nil, fmt.Errorf("SSH handshake: %w", err)
	}
	go ssh.DiscardRequests(reqs)
	ok, reply, err := cconn.SendRequest(sshRootRequest, true, nil)
	if err == nil && !ok {
		err = fmt.Errorf("root refused the certificate exchange: %s", printable(reply))
	}
	var chain []*x509.Certificate
	if err == nil {
		chain, err = decodeChain(reply)
	}
	if err == nil && !sameKey(chain[0], hostKey) {
		err = errors.New("root certificate does not certify its SSH host key")
	}
	if err == nil {
		err = verifyRoot(chain, roots, serverName)
	}
	if err != nil {
		cconn.Close()
		return nil, fmt.Errorf("verifying root: %w", err)
	}
	ok, reply, err = cconn.SendRequest(sshBindRequest, true, encodeChain(cert.Certificate))
	if err != nil || !ok {
		cconn.Close()
		if err == nil {
			err = fmt.Errorf("root refused the leaf certificate: %s", printable(reply))
		}
		return nil, err
	}
	_ = tcp.SetDeadline(time.Time{})
	return newSSHLink(cconn, tcp, chain, chans, sshDialChannel), nil
}

// verifyRoot checks a root chain as a TLS client would: against the pinned pool, for
// server authentication, naming serverName.
func verifyRoot(chain []*x509.Certificate, roots *x509.CertPool, serverName string) error {
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: serverName, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

func printable(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return fmt.Sprintf("%q", b)
}
