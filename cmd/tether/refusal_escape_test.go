package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"unicode"

	"github.com/tetherproject/tether/gateway/auth"

	"golang.org/x/crypto/ssh"
)

// evilRefusal is what a node (its direct-tcpip refusal, relayed by the cluster as
// 'node "n" could not connect to ...: MESSAGE') or a leaf's SSH entry (its session
// refusal) may put in an SSH channel-open failure: a window title, a screen clear and an
// OSC 52 clipboard write, then a C1 CSI.
const evilRefusal = "no\x1b]0;PWNED\x07\x1b[2J\x1b]52;c;cm0gLXJmIH4K\x07\u009b31m"

// refusingServer is an in-process SSH server on loopback that refuses every channel with
// evilRefusal, and the client connected to it.
func refusingServer(t *testing.T) *ssh.Client {
	t.Helper()
	return sshServerWith(t, func(nc ssh.NewChannel) { _ = nc.Reject(ssh.Prohibited, evilRefusal) })
}

// sshServerWith is an in-process SSH server on loopback whose channels handle answers
// (fakeSSHServer), and the client connected to it.
func sshServerWith(t *testing.T, handle func(ssh.NewChannel)) *ssh.Client {
	t.Helper()
	return fakeSSHServer(t, func(chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) {
		go ssh.DiscardRequests(reqs)
		for nc := range chans {
			go handle(nc)
		}
	})
}

// assertNoTerminalControls fails when out holds a byte a terminal acts on (other than
// the line end).
func assertNoTerminalControls(t *testing.T, what, out string) {
	t.Helper()
	t.Logf("%s: %q", what, out)
	if !strings.Contains(out, "no") {
		t.Fatalf("%s: the refusal is not said at all: %q", what, out)
	}
	if !isTerminalSafe(strings.TrimRight(out, "\n")) {
		t.Errorf("%s: the refusal reached the terminal with its control characters: %q", what, out)
	}
}

// isTerminalSafe is auth.TerminalSafe's own test: nothing auth.TerminalSafe would escape.
func isTerminalSafe(s string) bool { return auth.TerminalSafe(s) == s }

// A channel refusal's message is the other side's text (a node's, through the cluster's
// port forwarding; a leaf's SSH entry): tether writes it to the terminal escaped, as it
// does a node's file names in scp and as OpenSSH's client sanitises what it logs
// ("channel 2: open failed: ..."). It wrote both raw.
func TestChannelRefusalsReachTheTerminalEscaped(t *testing.T) {
	t.Run("port_forward_refused_by_the_node", func(t *testing.T) {
		client := refusingServer(t)
		var stderr bytes.Buffer
		fw := &forwarder{client: client, stderr: &stderr, cluster: "leaf"}
		local, remote := net.Pipe()
		defer local.Close()
		fw.toNode(remote, "127.0.0.1:5432")
		assertNoTerminalControls(t, "-L refusal", stderr.String())
	})
	t.Run("session_refused", func(t *testing.T) {
		client := refusingServer(t)
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		saved := os.Stderr
		os.Stderr = w
		err = runSession(client, "true", false, true, false, "visitor", "node", "leaf", io.Discard)
		os.Stderr = saved
		w.Close()
		out, _ := io.ReadAll(r)
		r.Close()
		if err == nil {
			t.Fatal("a refused session succeeded")
		}
		assertNoTerminalControls(t, "session refusal", string(out))
	}) // The proxy's refusals carry others' text too: the node list's refusal (new today)
	// says a lock's message, cluster.route's says an operator module's deny message.
	t.Run("proxy_refusal", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "cluster root refused to list its nodes: locked by lock \"l\": " + evilRefusal})
		}))
		defer srv.Close()
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		c := newAPIClient(strings.TrimPrefix(srv.URL, "https://"), &tls.Config{RootCAs: pool})
		err := c.call(context.Background(), http.MethodGet, "/webapi/nodes", nil, nil, nil)
		if err == nil {
			t.Fatal("a 403 was no error")
		}
		assertNoTerminalControls(t, "proxy refusal", "ERROR: "+err.Error())
	}) // The proxy's own refusal of a node connection is written on the subsystem's stderr,
	// which tether ssh and tether proxy ssh (OpenSSH's ProxyCommand: its stderr is the
	// user's terminal) copied as is: cluster.route's reasons (a lock's message, an
	// operator module's deny message).
	t.Run("proxy_subsystem_stderr", func(t *testing.T) {
		client := sshServerWith(t, func(nc ssh.NewChannel) {
			ch, reqs, err := nc.Accept()
			if err != nil {
				return
			}
			for r := range reqs {
				_ = r.Reply(r.Type == "subsystem", nil)
				if r.Type == "subsystem" {
					_, _ = io.WriteString(ch.Stderr(), "ERROR: access to cluster leaf denied: locked by lock \"l\": "+evilRefusal+"\nsecond line\n")
					_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ C uint32 }{1}))
					ch.Close()
					return
				}
			}
		})
		var stderr bytes.Buffer
		_, exit, err := nodeStream(client, "node", 22, "leaf", &stderr)
		if err != nil {
			t.Fatal(err)
		}
		if code := <-exit; code != 1 {
			t.Fatalf("exit status %d, want 1", code)
		}
		out := stderr.String()
		if !strings.HasSuffix(out, "\nsecond line\n") {
			t.Errorf("the proxy's lines are not kept as lines: %q", out)
		}
		assertNoTerminalControls(t, "proxy stderr", strings.ReplaceAll(out, "\n", " "))
	})
}

// A node's labels (its agent's word, every heartbeat) may hold any printable character,
// bidirectional controls too: U+202E (right-to-left override) makes a terminal that
// applies the Unicode bidi algorithm (VTE's, GNOME Terminal's) show "env=\u202edorp" as
// "env=prod", so a node could pass for another in tether ls. They reach the terminal
// escaped, as the C0 and C1 controls do (attacker review).
func TestTablesNeverReorderTheTerminalsText(t *testing.T) {
	var out strings.Builder
	printTable(&out, []string{"Node Name", "Labels"}, [][]string{
		{"n1", "env=\u202edorp"},
		{"n2", "team=\u2067ops\u2069,x=\u200f"},
		{"n3", "lang=עברית"},
	})
	got := out.String()
	t.Logf("%q", got)
	if strings.ContainsFunc(got, func(r rune) bool { return unicode.Is(unicode.Bidi_Control, r) }) {
		t.Fatalf("a bidirectional control reached the terminal: %q", got)
	}
	for _, want := range []string{`env=\u202edorp`, `team=\u2067ops\u2069,x=\u200f`, "lang=עברית"} {
		if !strings.Contains(got, want) {
			t.Errorf("table %q does not show %q", got, want)
		}
	}
}
