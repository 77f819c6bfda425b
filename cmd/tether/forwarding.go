package main

import (
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
	"golang.org/x/crypto/ssh/agent"
)

// Port forwarding for tether ssh, as OpenSSH's -L, -R and -D do it. Every forwarded
// connection is a direct-tcpip channel (or, for -R, a tcpip-forward request) on the SSH
// connection to the node, which the cluster that owns the node decides (ssh.port_forward
// in its policy) before its node sees it.

// forwardSpec is one -L, -R or -D argument.
type forwardSpec struct {
	Kind     string // "L", "R" or "D"
	BindAddr string // where to listen; default loopback, as OpenSSH with GatewayPorts no
	BindPort int
	Host     string // -L, -R: where the other side connects
	HostPort int
}

func (f forwardSpec) bind() string { return net.JoinHostPort(f.BindAddr, strconv.Itoa(f.BindPort)) }

func (f forwardSpec) dest() string { return net.JoinHostPort(f.Host, strconv.Itoa(f.HostPort)) }

// splitForward splits an OpenSSH forwarding argument at colons, keeping [IPv6]
// addresses whole (their brackets removed).
func splitForward(s string) ([]string, error) {
	var parts []string
	for s != "" {
		if s[0] == '[' {
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return nil, errors.New("unclosed [ in an address")
			}
			parts = append(parts, s[1:end])
			s = s[end+1:]
			if s != "" {
				if s[0] != ':' {
					return nil, errors.New("expected : after ]")
				}
				s = s[1:]
				if s == "" {
					parts = append(parts, "")
				}
			}
			continue
		}
		i := strings.IndexByte(s, ':')
		if i < 0 {
			parts = append(parts, s)
			break
		}
		parts = append(parts, s[:i])
		s = s[i+1:]
		if s == "" {
			parts = append(parts, "")
		}
	}
	return parts, nil
}

func parsePort(s string, zeroOK bool) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 0 || p > 65535 || (p == 0 && !zeroOK) {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	return p, nil
}

// parseForward reads -L/-R "[bind_address:]port:host:hostport" and -D
// "[bind_address:]port", as OpenSSH does.
func parseForward(kind, s string) (forwardSpec, error) {
	usage := map[string]string{
		"L": "-L [bind_address:]port:host:hostport",
		"R": "-R [bind_address:]port:host:hostport",
		"D": "-D [bind_address:]port",
	}[kind]
	bad := func(err error) (forwardSpec, error) {
		return forwardSpec{}, fmt.Errorf("bad forwarding specification %q (%v): use %s", s, err, usage)
	}
	parts, err := splitForward(s)
	if err != nil {
		return bad(err)
	}
	f := forwardSpec{Kind: kind, BindAddr: "127.0.0.1"}
	var port string
	switch {
	case kind == "D" && len(parts) == 1:
		port = parts[0]
	case kind == "D" && len(parts) == 2:
		f.BindAddr, port = parts[0], parts[1]
	case kind != "D" && len(parts) == 3:
		port, f.Host = parts[0], parts[1]
		if f.HostPort, err = parsePort(parts[2], false); err != nil {
			return bad(err)
		}
	case kind != "D" && len(parts) == 4:
		f.BindAddr, port, f.Host = parts[0], parts[1], parts[2]
		if f.HostPort, err = parsePort(parts[3], false); err != nil {
			return bad(err)
		}
	case kind == "R" && len(parts) <= 2:
		return bad(errors.New("remote dynamic forwarding (-R [bind:]port alone) is not supported"))
	default:
		return bad(errors.New("wrong number of fields"))
	}
	// -R port 0 asks the node to pick one, as OpenSSH allows.
	if f.BindPort, err = parsePort(port, kind == "R"); err != nil {
		return bad(err)
	}
	switch f.BindAddr {
	case "", "*":
		f.BindAddr = "0.0.0.0"
	case "localhost":
		f.BindAddr = "127.0.0.1"
	}
	if kind != "D" && f.Host == "" {
		return bad(errors.New("no host to connect to"))
	}
	if strings.ContainsAny(f.BindAddr+f.Host, " \t/") {
		return bad(errors.New("not an address"))
	}
	return f, nil
}

// forwarder runs a connection's forwards until ctx ends, and reports per-connection
// failures on stderr (as OpenSSH's "channel N: open failed").
type forwarder struct {
	client  *ssh.Client
	stderr  io.Writer
	cluster string
	wg      sync.WaitGroup
}

// start opens every forward; a listener that cannot be opened (a local port taken, a
// remote forward the cluster refuses) is an error, as with ExitOnForwardFailure.
func (fw *forwarder) start(ctx context.Context, specs []forwardSpec) error {
	for _, f := range specs {
		var l net.Listener
		var err error
		switch f.Kind {
		case "L", "D":
			if l, err = net.Listen("tcp", f.bind()); err != nil {
				return fmt.Errorf("cannot listen on %s for -%s: %v", f.bind(), f.Kind, err)
			}
		case "R":
			if l, err = fw.client.Listen("tcp", f.bind()); err != nil {
				return fmt.Errorf("remote port forwarding of %s was refused by cluster %s (its policy: options.port_forwarding, or the port is taken, or below 1024 for a login that is not root)", f.bind(), fw.cluster)
			}
			// Port 0: the node picked one; say which, as OpenSSH does.
			if a, ok := l.Addr().(*net.TCPAddr); ok && f.BindPort == 0 && fw.stderr != nil {
				fmt.Fprintf(fw.stderr, "Allocated port %d for remote forward to %s\n", a.Port, f.dest())
			}
		}
		fw.wg.Add(2)
		go func() {
			defer fw.wg.Done()
			<-ctx.Done()
			l.Close()
		}()
		go func() {
			defer fw.wg.Done()
			fw.serve(ctx, f, l)
		}()
	}
	return nil
}

func (fw *forwarder) serve(ctx context.Context, f forwardSpec, l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			switch f.Kind {
			case "L":
				fw.toNode(c, f.dest())
			case "D":
				fw.socks(c)
			case "R":
				d := net.Dialer{Timeout: 10 * time.Second}
				local, err := d.DialContext(ctx, "tcp", f.dest())
				if err != nil {
					fmt.Fprintf(fw.stderr, "tether: -R %s: connecting to %s failed: %v\n", f.bind(), f.dest(), err)
					return
				}
				defer local.Close()
				pipeBoth(c, local)
			}
		}()
	}
}

// toNode opens a direct-tcpip channel to dest and pipes c through it.
func (fw *forwarder) toNode(c net.Conn, dest string) {
	remote, err := fw.client.Dial("tcp", dest)
	if err != nil {
		fmt.Fprintf(fw.stderr, "tether: forwarding to %s refused: %s\n", dest, openFailure(err))
		return
	}
	defer remote.Close()
	pipeBoth(c, remote)
}

// openFailure is the refusal's own message (the cluster's reasons), without x/crypto's
// framing, escaped for the terminal: the node's cluster wrote it.
func openFailure(err error) string {
	var oe *ssh.OpenChannelError
	if errors.As(err, &oe) && oe.Message != "" {
		return auth.TerminalSafe(oe.Message)
	}
	return auth.TerminalSafe(err.Error())
}

func pipeBoth(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
}

// socks serves one SOCKS connection (-D): SOCKS5 (no authentication, CONNECT) and
// SOCKS4/4a, as OpenSSH's dynamic forwarding does.
func (fw *forwarder) socks(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	req, err := readSOCKSRequest(c)
	if err != nil {
		fmt.Fprintf(fw.stderr, "tether: -D: %v\n", err)
		return
	}
	remote, err := fw.client.Dial("tcp", req.dest)
	if err != nil {
		fmt.Fprintf(fw.stderr, "tether: forwarding to %s refused: %s\n", req.dest, openFailure(err))
		_, _ = c.Write(req.reply(false))
		return
	}
	defer remote.Close()
	if _, err := c.Write(req.reply(true)); err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	pipeBoth(c, remote)
}

// socksRequest is a client's CONNECT request.
type socksRequest struct {
	version byte
	dest    string
}

// reply is the server's answer: success, or a general failure.
func (r socksRequest) reply(ok bool) []byte {
	if r.version == 4 {
		code := byte(0x5b)
		if ok {
			code = 0x5a
		}
		return []byte{0, code, 0, 0, 0, 0, 0, 0}
	}
	code := byte(0x01)
	if ok {
		code = 0x00
	}
	return []byte{5, code, 0, 1, 0, 0, 0, 0, 0, 0}
}

// maxSOCKSField bounds what a SOCKS4 user id or 4a host name may take.
const maxSOCKSField = 255

// readSOCKSRequest reads a SOCKS5 greeting and CONNECT request (answering the greeting
// with "no authentication"), or a SOCKS4/4a CONNECT request, and returns the
// destination. Anything else is an error saying what was wrong.
func readSOCKSRequest(rw io.ReadWriter) (socksRequest, error) {
	var ver [1]byte
	if _, err := io.ReadFull(rw, ver[:]); err != nil {
		return socksRequest{}, fmt.Errorf("reading the SOCKS version: %v", err)
	}
	switch ver[0] {
	case 4:
		return readSOCKS4(rw)
	case 5:
		return readSOCKS5(rw)
	}
	return socksRequest{}, fmt.Errorf("not a SOCKS4 or SOCKS5 client (first byte %#x)", ver[0])
}

func readSOCKS4(r io.Reader) (socksRequest, error) {
	var h [7]byte // command, port, IPv4
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return socksRequest{}, fmt.Errorf("reading a SOCKS4 request: %v", err)
	}
	if h[0] != 1 {
		return socksRequest{}, fmt.Errorf("SOCKS4 command %d is not supported (only CONNECT)", h[0])
	}
	port := binary.BigEndian.Uint16(h[1:3])
	if _, err := readCString(r); err != nil { // user id
		return socksRequest{}, err
	}
	host := net.IP(h[3:7]).String()
	if h[3] == 0 && h[4] == 0 && h[5] == 0 && h[6] != 0 { // SOCKS4a: the name follows
		name, err := readCString(r)
		if err != nil {
			return socksRequest{}, err
		}
		if name == "" {
			return socksRequest{}, errors.New("SOCKS4a request without a host name")
		}
		host = name
	}
	return socksRequest{version: 4, dest: net.JoinHostPort(host, strconv.Itoa(int(port)))}, nil
}

func readCString(r io.Reader) (string, error) {
	var b [1]byte
	var out []byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", fmt.Errorf("reading a SOCKS4 field: %v", err)
		}
		if b[0] == 0 {
			return string(out), nil
		}
		if len(out) == maxSOCKSField {
			return "", errors.New("SOCKS4 field too long")
		}
		out = append(out, b[0])
	}
}

func readSOCKS5(rw io.ReadWriter) (socksRequest, error) {
	var n [1]byte
	if _, err := io.ReadFull(rw, n[:]); err != nil {
		return socksRequest{}, fmt.Errorf("reading the SOCKS5 methods: %v", err)
	}
	methods := make([]byte, n[0])
	if _, err := io.ReadFull(rw, methods); err != nil {
		return socksRequest{}, fmt.Errorf("reading the SOCKS5 methods: %v", err)
	}
	noAuth := false
	for _, m := range methods {
		noAuth = noAuth || m == 0
	}
	if !noAuth {
		_, _ = rw.Write([]byte{5, 0xff})
		return socksRequest{}, errors.New("the SOCKS5 client offers no method without authentication")
	}
	if _, err := rw.Write([]byte{5, 0}); err != nil {
		return socksRequest{}, err
	}
	var h [4]byte // version, command, reserved, address type
	if _, err := io.ReadFull(rw, h[:]); err != nil {
		return socksRequest{}, fmt.Errorf("reading a SOCKS5 request: %v", err)
	}
	if h[0] != 5 {
		return socksRequest{}, fmt.Errorf("SOCKS5 request with version %d", h[0])
	}
	if h[1] != 1 {
		_, _ = rw.Write([]byte{5, 7, 0, 1, 0, 0, 0, 0, 0, 0})
		return socksRequest{}, fmt.Errorf("SOCKS5 command %d is not supported (only CONNECT)", h[1])
	}
	var host string
	switch h[3] {
	case 1, 4:
		ip := make(net.IP, map[byte]int{1: 4, 4: 16}[h[3]])
		if _, err := io.ReadFull(rw, ip); err != nil {
			return socksRequest{}, fmt.Errorf("reading a SOCKS5 address: %v", err)
		}
		host = ip.String()
	case 3:
		if _, err := io.ReadFull(rw, n[:]); err != nil {
			return socksRequest{}, fmt.Errorf("reading a SOCKS5 host name: %v", err)
		}
		name := make([]byte, n[0])
		if _, err := io.ReadFull(rw, name); err != nil {
			return socksRequest{}, fmt.Errorf("reading a SOCKS5 host name: %v", err)
		}
		if len(name) == 0 {
			return socksRequest{}, errors.New("SOCKS5 request with an empty host name")
		}
		host = string(name)
	default:
		return socksRequest{}, fmt.Errorf("SOCKS5 address type %d is not supported", h[3])
	}
	var port [2]byte
	if _, err := io.ReadFull(rw, port[:]); err != nil {
		return socksRequest{}, fmt.Errorf("reading a SOCKS5 port: %v", err)
	}
	return socksRequest{version: 5, dest: net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port[:]))))}, nil
}

// forwardAgent serves the node's agent channels from the agent at SSH_AUTH_SOCK (-A).
func forwardAgent(client *ssh.Client) error {
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return errors.New("-A forwards your SSH agent, but SSH_AUTH_SOCK is not set: start ssh-agent and add your keys (ssh-add), or leave out -A")
	}
	if _, err := os.Stat(sock); err != nil {
		return fmt.Errorf("-A: SSH_AUTH_SOCK %s is not usable (%v): start ssh-agent again, or leave out -A", sock, err)
	}
	return agent.ForwardToRemote(client, sock)
}
