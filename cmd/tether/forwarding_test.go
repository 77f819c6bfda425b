package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestParseForward(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind, arg string
		want      forwardSpec
		err       string
	}{
		{"L", "8080:db.internal:5432", forwardSpec{Kind: "L", BindAddr: "127.0.0.1", BindPort: 8080, Host: "db.internal", HostPort: 5432}, ""},
		{"L", "0.0.0.0:8080:db:5432", forwardSpec{Kind: "L", BindAddr: "0.0.0.0", BindPort: 8080, Host: "db", HostPort: 5432}, ""},
		{"L", "*:8080:db:5432", forwardSpec{Kind: "L", BindAddr: "0.0.0.0", BindPort: 8080, Host: "db", HostPort: 5432}, ""},
		{"L", "localhost:8080:[::1]:22", forwardSpec{Kind: "L", BindAddr: "127.0.0.1", BindPort: 8080, Host: "::1", HostPort: 22}, ""},
		{"L", "[::1]:8080:db:22", forwardSpec{Kind: "L", BindAddr: "::1", BindPort: 8080, Host: "db", HostPort: 22}, ""},
		{"R", "0:localhost:80", forwardSpec{Kind: "R", BindAddr: "127.0.0.1", BindPort: 0, Host: "localhost", HostPort: 80}, ""},
		{"D", "1080", forwardSpec{Kind: "D", BindAddr: "127.0.0.1", BindPort: 1080}, ""},
		{"D", "127.0.0.1:1080", forwardSpec{Kind: "D", BindAddr: "127.0.0.1", BindPort: 1080}, ""},
		{"L", "8080", forwardSpec{}, "wrong number of fields"},
		{"L", "0:db:22", forwardSpec{}, `"0" is not a port number`},
		{"L", "8080:db:70000", forwardSpec{}, `"70000" is not a port number`},
		{"L", "8080::22", forwardSpec{}, "no host to connect to"},
		{"R", "8080", forwardSpec{}, "remote dynamic forwarding"},
		{"D", "a:b:c", forwardSpec{}, "wrong number of fields"},
		{"L", "[::1:8080:db:22", forwardSpec{}, "unclosed ["},
		{"L", "8080:db/x:22", forwardSpec{}, "not an address"},
	} {
		got, err := parseForward(tc.kind, tc.arg)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "use -"+tc.kind) {
				t.Errorf("-%s %s: %v, want an error with %q and the usage", tc.kind, tc.arg, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("-%s %s: %+v %v, want %+v", tc.kind, tc.arg, got, err, tc.want)
		}
	}
}

func FuzzParseForward(f *testing.F) {
	for _, s := range []string{"8080:db:5432", "[::1]:1:[fe80::1]:2", "*:0:h:1", "1080", "a:b", ":::", "[", "[]:"} {
		f.Add("L", s)
		f.Add("D", s)
		f.Add("R", s)
	}
	f.Fuzz(func(t *testing.T, kind, s string) {
		if kind != "L" && kind != "R" && kind != "D" {
			return
		}
		spec, err := parseForward(kind, s)
		if err != nil {
			return
		}
		if spec.BindPort < 0 || spec.BindPort > 65535 || (kind != "R" && spec.BindPort == 0) {
			t.Fatalf("%q: bind port %d", s, spec.BindPort)
		}
		if kind != "D" && (spec.Host == "" || spec.HostPort < 1 || spec.HostPort > 65535) {
			t.Fatalf("%q: destination %q %d", s, spec.Host, spec.HostPort)
		}
	})
}

// rw is a SOCKS client's bytes in, the server's answers out.
type rw struct {
	io.Reader
	out bytes.Buffer
}

func (r *rw) Write(p []byte) (int, error) { return r.out.Write(p) }

func TestReadSOCKSRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   []byte
		dest string
		err  string
	}{
		{"socks5_ipv4", []byte{5, 1, 0, 5, 1, 0, 1, 10, 0, 0, 7, 0x1f, 0x90}, "10.0.0.7:8080", ""},
		{"socks5_name", append(append([]byte{5, 2, 2, 0, 5, 1, 0, 3, 7}, "db.test"...), 0, 22), "db.test:22", ""},
		{"socks5_ipv6", append(append([]byte{5, 1, 0, 5, 1, 0, 4}, make([]byte, 15)...), 1, 0, 80), "[::1]:80", ""},
		{"socks4", append([]byte{4, 1, 0, 80, 192, 168, 1, 2}, "user\x00"...), "192.168.1.2:80", ""},
		{"socks4a", append([]byte{4, 1, 0, 80, 0, 0, 0, 1}, "\x00example.test\x00"...), "example.test:80", ""},
		{"socks5_auth_only", []byte{5, 1, 2}, "", "no method without authentication"},
		{"socks5_bind", []byte{5, 1, 0, 5, 2, 0, 1, 1, 2, 3, 4, 0, 1}, "", "only CONNECT"},
		{"socks5_empty_name", []byte{5, 1, 0, 5, 1, 0, 3, 0, 0, 22}, "", "empty host name"},
		{"socks4_bind", []byte{4, 2, 0, 80, 1, 2, 3, 4, 0}, "", "only CONNECT"},
		{"socks4_endless_user", append([]byte{4, 1, 0, 80, 1, 2, 3, 4}, bytes.Repeat([]byte{'a'}, 300)...), "", "too long"},
		{"http", []byte("GET / HTTP/1.1\r\n"), "", "not a SOCKS4 or SOCKS5 client"},
		{"truncated", []byte{5, 1, 0, 5, 1, 0, 1, 10}, "", "reading a SOCKS5 address"},
	} {
		req, err := readSOCKSRequest(&rw{Reader: bytes.NewReader(tc.in)})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || req.dest != tc.dest {
			t.Errorf("%s: %q %v, want %q", tc.name, req.dest, err, tc.dest)
		}
	}
}

func FuzzReadSOCKSRequest(f *testing.F) {
	f.Add([]byte{5, 1, 0, 5, 1, 0, 1, 10, 0, 0, 7, 0x1f, 0x90})
	f.Add(append(append([]byte{5, 1, 0, 5, 1, 0, 3, 7}, "db.test"...), 0, 22))
	f.Add(append([]byte{4, 1, 0, 80, 0, 0, 0, 1}, "\x00example.test\x00"...))
	f.Fuzz(func(t *testing.T, in []byte) {
		req, err := readSOCKSRequest(&rw{Reader: bytes.NewReader(in)})
		if err != nil {
			return
		}
		if req.dest == "" || (req.version != 4 && req.version != 5) {
			t.Fatalf("accepted %+v", req)
		}
	})
}

func TestParseSCPPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want scpPath
		err  string
	}{
		{"root@node1:/tmp/x", scpPath{Login: "root", Node: "node1", Path: "/tmp/x", Remote: true}, ""},
		{"root@node1.leaf.example.com:", scpPath{Login: "root", Node: "node1.leaf.example.com", Path: ".", Remote: true}, ""},
		{"./a:b", scpPath{Path: "./a:b"}, ""},
		{"file.txt", scpPath{Path: "file.txt"}, ""},
		{"node1:/tmp", scpPath{}, "login@node:path"},
		{"@node1:/tmp", scpPath{}, "login@node:path"},
		{"a@b@c:/tmp", scpPath{}, "login@node:path"},
		{"", scpPath{}, "empty path"},
	} {
		got, err := parseSCPPath(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v %v, want %+v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseSCPPath(f *testing.F) {
	for _, s := range []string{"root@node1:/tmp/x", "./a:b", "a@b:", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseSCPPath(s)
		if err != nil {
			return
		}
		if p.Remote && (p.Login == "" || p.Node == "" || p.Path == "" || strings.Contains(p.Node, "@")) {
			t.Fatalf("%q: %+v", s, p)
		}
	})
}

// -R with port 0 lets the node pick the port; tether ssh says which, as OpenSSH does
// ("Allocated port N for remote forward to host:port"): it said nothing, so the port was
// unknown to the user. The node here answers tcpip-forward with port 40123.
func TestRemoteForwardOnPortZeroSaysTheAllocatedPort(t *testing.T) {
	client := fakeSSHServer(t, func(chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) {
		go func() {
			for nc := range chans {
				_ = nc.Reject(ssh.Prohibited, "no")
			}
		}()
		for r := range reqs {
			if r.Type == "tcpip-forward" {
				_ = r.Reply(true, ssh.Marshal(struct{ Port uint32 }{40123}))
				continue
			}
			_ = r.Reply(false, nil)
		}
	})
	var stderr strings.Builder
	fw := &forwarder{client: client, stderr: &stderr, cluster: "leaf"}
	ctx, cancel := context.WithCancel(context.Background())
	spec, err := parseForward("R", "0:127.0.0.1:22")
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.start(ctx, []forwardSpec{spec}); err != nil {
		t.Fatal(err)
	}
	cancel()
	fw.wg.Wait()
	if want := "Allocated port 40123 for remote forward to 127.0.0.1:22\n"; stderr.String() != want {
		t.Fatalf("stderr %q, want %q", stderr.String(), want)
	}
}

// fakeSSHServer serves one SSH connection on a loopback port with serve (any client is
// let in) and returns a client connected to it, closed when the test ends.
func fakeSSHServer(t *testing.T, serve func(chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request)) *ssh.Client {
	t.Helper()
	hostKey, _ := newTestSigner(t)
	cfg := &ssh.ServerConfig{NoClientAuth: true}
	cfg.AddHostKey(hostKey)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, chans, reqs, err := ssh.NewServerConn(c, cfg)
		if err != nil {
			return
		}
		serve(chans, reqs)
	}()
	client, err := ssh.Dial("tcp", l.Addr().String(), &ssh.ClientConfig{User: "visitor", HostKeyCallback: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// A refusal's text comes from the node's cluster (a leaf's lock message, its reasons): it
// reaches the terminal escaped, in tether ssh's session and forwarding errors as in tether
// scp's (a leaf could write a screen clear or OSC 52 there).
func TestOpenFailureIsEscapedForTheTerminal(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", &ssh.OpenChannelError{Reason: ssh.Prohibited, Message: "locked by lock \"l1\"\x1b]52;c;ZXZpbA==\a\u009b2J"})
	if got, want := openFailure(err), `locked by lock "l1"\x1b]52;c;ZXZpbA==\a\u009b2J`; got != want {
		t.Fatalf("openFailure = %q, want %q", got, want)
	}
	if got := openFailure(errors.New("plain\x1b[2J")); got != `plain\x1b[2J` {
		t.Fatalf("openFailure of a plain error = %q", got)
	}
}
