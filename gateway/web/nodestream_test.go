package web

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/trust"
)

// echoRoute is a route whose node echoes what it reads, upper-cased, until the user's
// side ends; with cut set it ends the route with that reason after the first read.
type echoRoute struct {
	cut    string
	closed bool
}

func (e *echoRoute) Carry(_ context.Context, user io.ReadWriter, say func(string)) bool {
	buf := make([]byte, 3*MaxStreamFrame)
	for {
		n, err := user.Read(buf)
		if n > 0 {
			if _, werr := user.Write(bytes.ToUpper(buf[:n])); werr != nil {
				return false
			}
			if e.cut != "" {
				say(e.cut)
				return true
			}
		}
		if err != nil {
			return false
		}
	}
}

func (e *echoRoute) Close() { e.closed = true }

// streamOpener records what it was asked; it refuses targets beginning with "refused".
type streamOpener struct {
	mu    sync.Mutex
	calls []UserRequest
	cut   string
}

func (o *streamOpener) open(_ context.Context, req UserRequest, target string) (NodeRoute, string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, req)
	if strings.HasPrefix(target, "refused") {
		return nil, "cluster leaf-east is offline"
	}
	return &echoRoute{cut: o.cut}, ""
}

func (o *streamOpener) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.calls)
}

// startStreams is a web API serving node streams through a recording opener, and a
// client without a certificate (to sign users in with).
func startStreams(t *testing.T) (*loginFixture, *streamOpener, *http.Client) {
	t.Helper()
	f := startLogin(t, auth.UsersConfig{})
	o := &streamOpener{}
	f.web.HandleNodeStreams(f.users, o.open)
	return f, o, f.clientFrom("127.0.0.1", nil)
}

// openStream sends the node stream request on a new TLS connection with cert (nil for
// none) and sshCert; edit may change the request first.
func openStream(t *testing.T, f *loginFixture, cert *tls.Certificate, sshCert, target string, edit func(*http.Request)) (*tls.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	cfg := &tls.Config{RootCAs: f.auth.CA().TLS.CertPool(), ServerName: "127.0.0.1"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", f.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	req, err := NodeStreamRequest(f.addr, target, sshCert)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(req)
	}
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	return conn, br, resp
}

func errorOf(resp *http.Response) string {
	defer resp.Body.Close()
	var e trust.ErrorResponse
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return e.Error
}

// The attacker's side first: the route is opened for nobody the web API did not
// authenticate, and a refusal says why without opening anything.
func TestNodeStreamOpensRoutesForSignedInUsersOnly(t *testing.T) {
	t.Parallel()
	f, o, c := startStreams(t)
	alice, aliceLogin := f.signIn(t, c, "alice")
	_, bobLogin := f.signIn(t, c, "bob")

	for _, tc := range []struct {
		name    string
		cert    *tls.Certificate
		sshCert string
		edit    func(*http.Request)
		status  int
		want    string
	}{
		{"no client certificate", nil, aliceLogin.SSHCert, nil, http.StatusUnauthorized, "run tether login again"},
		{"no SSH certificate", alice, "", nil, http.StatusUnauthorized, "run tether login again"},
		{"another user's SSH certificate", alice, bobLogin.SSHCert, nil, http.StatusUnauthorized, "run tether login again"},
		{"a plain key as the SSH certificate", alice, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl", nil, http.StatusUnauthorized, "run tether login again"},
		{"no upgrade", alice, aliceLogin.SSHCert, func(r *http.Request) { r.Header.Del("Upgrade") }, http.StatusUpgradeRequired, NodeStreamProtocol},
		{"another protocol", alice, aliceLogin.SSHCert, func(r *http.Request) { r.Header.Set("Upgrade", "websocket") }, http.StatusUpgradeRequired, NodeStreamProtocol},
		{"no Connection: Upgrade", alice, aliceLogin.SSHCert, func(r *http.Request) { r.Header.Set("Connection", "keep-alive") }, http.StatusUpgradeRequired, NodeStreamProtocol},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			_, _, resp := openStream(t, f, tc.cert, tc.sshCert, "node:22@root.example.com", tc.edit)
			if msg := errorOf(resp); resp.StatusCode != tc.status || !strings.Contains(msg, tc.want) {
				t.Fatalf("HTTP %d %q, want %d saying %q", resp.StatusCode, msg, tc.status, tc.want)
			}
		})
	}
	if n := o.count(); n != 0 {
		t.Fatalf("the route was asked for %d times for requests that did not authenticate", n)
	}

	_, _, resp := openStream(t, f, alice, aliceLogin.SSHCert, "refused:22@leaf-east", nil)
	if msg := errorOf(resp); resp.StatusCode != http.StatusForbidden || msg != "cluster leaf-east is offline" {
		t.Fatalf("a refused route: HTTP %d %q", resp.StatusCode, msg)
	}
	if n := o.count(); n != 1 || o.calls[0].ID.Username != "alice" || o.calls[0].ClientAddr == "" || len(o.calls[0].SSHCert) == 0 {
		t.Fatalf("the route was asked for %d times: %+v", n, o.calls)
	}
}

func TestNodeStreamCarriesBothWaysAndSaysHowItEnded(t *testing.T) {
	t.Parallel()
	f, o, c := startStreams(t)
	alice, lr := f.signIn(t, c, "alice")

	t.Run("data_larger_than_a_frame_then_the_end", func(t *testing.T) {
		conn, br, resp := openStream(t, f, alice, lr.SSHCert, "node:22@root.example.com", nil)
		if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != NodeStreamProtocol {
			t.Fatalf("HTTP %d %q", resp.StatusCode, errorOf(resp))
		}
		sent := bytes.Repeat([]byte("abcdefgh"), (MaxStreamFrame+MaxStreamFrame/2)/8)
		go func() {
			_, _ = conn.Write(sent)
			_ = conn.CloseWrite()
		}()
		sr := NewStreamReader(br)
		got, err := io.ReadAll(sr)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, bytes.ToUpper(sent)) {
			t.Fatalf("read %d bytes back, want %d upper-cased", len(got), len(sent))
		}
		if end := sr.End(); end == nil || end.Code != 0 || end.Message != "" {
			t.Fatalf("end %+v, want status 0 and no message", end)
		}
	})
	t.Run("a_cut_route_ends_with_status_1_and_the_reason", func(t *testing.T) {
		o.mu.Lock()
		o.cut = "lock \"incident\" is in force"
		o.mu.Unlock()
		conn, br, resp := openStream(t, f, alice, lr.SSHCert, "db:22@leaf-east", nil)
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("HTTP %d %q", resp.StatusCode, errorOf(resp))
		}
		if _, err := conn.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		sr := NewStreamReader(br)
		got, err := io.ReadAll(sr)
		end := sr.End()
		if err != nil || string(got) != "X" || end == nil || end.Code != 1 ||
			end.Message != `lock "incident" is in force` {
			t.Fatalf("read %q, %v, end %+v", got, err, end)
		}
	})
}

// The reader's promises on any input: no panic, never more data than was sent, and an
// end frame's status and message within bounds; frames the proxy writes read back as
// they were written.
func FuzzStreamReader(f *testing.F) {
	var valid bytes.Buffer
	fw := &frameWriter{w: &valid}
	_, _ = fw.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
	_ = writeEndFrame(&valid, 1, "the session was ended")
	f.Add(valid.Bytes(), []byte("hello"), uint8(0), "")
	f.Add([]byte{'D', 0, 0, 0, 0}, []byte{}, uint8(255), strings.Repeat("x", MaxStreamEndMessage+10))
	f.Add([]byte{'D', 0xff, 0xff, 0xff, 0xff, 1}, []byte("a"), uint8(3), "é\x1b[2J")
	f.Add([]byte{'E', 0, 0, 0, 5, 0, 0, 1, 0, 'x'}, []byte(nil), uint8(1), "x")
	f.Fuzz(func(t *testing.T, raw, data []byte, code uint8, msg string) {
		sr := NewStreamReader(bufio.NewReader(bytes.NewReader(raw)))
		got, err := io.ReadAll(sr)
		if len(got) > len(raw) {
			t.Fatalf("read %d bytes from %d", len(got), len(raw))
		}
		if end := sr.End(); end != nil {
			if err != nil || end.Code < 0 || end.Code > 255 || len(end.Message) > MaxStreamEndMessage {
				t.Fatalf("end %+v, err %v", end, err)
			}
		} else if err == nil {
			t.Fatal("a stream without an end frame read as complete")
		}

		var buf bytes.Buffer
		w := &frameWriter{w: &buf}
		if n, err := w.Write(data); err != nil || n != len(data) {
			t.Fatalf("wrote %d of %d: %v", n, len(data), err)
		}
		if err := writeEndFrame(&buf, uint32(code), msg); err != nil {
			t.Fatal(err)
		}
		sr = NewStreamReader(bufio.NewReader(&buf))
		got, err = io.ReadAll(sr)
		want := msg[:min(len(msg), MaxStreamEndMessage)]
		if err != nil || !bytes.Equal(got, data) || sr.End() == nil || sr.End().Code != int(code) || sr.End().Message != want {
			t.Fatalf("round trip: %q %v %+v", got, err, sr.End())
		}
		if _, err := sr.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("a read after the end: %v", err)
		}
	})
}
