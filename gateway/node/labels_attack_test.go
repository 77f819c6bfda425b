package node_test

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/gateway"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/node"
	"github.com/tetherproject/tether/gateway/web"
	"github.com/tetherproject/tether/resource"
)

// nodeTLSCert is the client certificate a joined node keeps in dir, as an attacker holding
// that node's files would use it.
func nodeTLSCert(t *testing.T, dir string) tls.Certificate {
	t.Helper()
	var saved struct {
		TLSCert string `json:"tls_cert"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "identity.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &saved); err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "key"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ssh.ParseRawPrivateKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(saved.TLSCert))
	return tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: *raw.(*ed25519.PrivateKey)}
}

// callCluster makes one HTTPS call to g with cert as client certificate (none when it is
// the zero value) and returns the status and body.
func callCluster(t *testing.T, g *gateway.Gateway, cert tls.Certificate, method, path, body string) (int, string) {
	t.Helper()
	cfg := &tls.Config{RootCAs: g.Auth().CA().TLS.CertPool()}
	if cert.PrivateKey != nil {
		cfg.Certificates = []tls.Certificate{cert}
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest(method, "https://"+g.Addr()+path, strings.NewReader(body))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// badLabelSets are labels a node must not get: each would reach every user's terminal
// through tether ls (an escape sequence that retitles the window, clears the screen or
// rewrites what was printed), or make the root refuse the whole cluster's node list.
var badLabelSets = map[string]map[string]string{
	"osc_title_in_value":  {"env": "prod\x1b]0;owned\x07"},
	"csi_in_key":          {"env\x1b[2J": "x"},
	"c1_csi_in_value":     {"env": "a\u009b31mred"},
	"newline_in_value":    {"env": "a\nroot@node-b  10.0.0.1:22"},
	"not_utf8":            {"env": "\xff\xfe"},
	"empty_key":           {"": "x"},
	"value_too_long":      {"env": strings.Repeat("a", auth.MaxNodeLabelBytes+1)},
	"too_many_labels":     manyLabels(auth.MaxNodeLabels + 1),
	"carriage_return_key": {"a\rb": "c"},
}

func manyLabels(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	return m
}

// TestANodeCannotGiveItselfLabelsATerminalWouldActOn: whoever holds a node token, or a
// joined node's key, can say what labels the node has; labels a terminal would act on, or
// that the root would refuse the whole node list for, are refused at the join and at
// every heartbeat, and the node keeps the labels it had. The node agent refuses them in
// its own configuration before it calls anyone, and a node token cannot carry them.
func TestANodeCannotGiveItselfLabelsATerminalWouldActOn(t *testing.T) {
	g := startCluster(t)
	ctx := context.Background()
	tok := nodeToken(t, g, auth.TokenOptions{})

	// A joined node whose key the attacker holds.
	dir := t.TempDir()
	a, err := node.New(ctx, nodeConfig(t, g, "victim", tok, dir))
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	cert := nodeTLSCert(t, dir)

	for name, labels := range badLabelSets {
		t.Run(name, func(t *testing.T) {

			// Join with the attacker's own client (joins are rate-limited per address, so
			// one over HTTP; the rest straight to the service every transport calls).
			_, priv, _ := ed25519.GenerateKey(nil)
			sp, _ := ssh.NewPublicKey(priv.Public())
			req := auth.NodeJoinRequest{Token: tok, Name: "evil-" + strings.ReplaceAll(name, "_", "-"), Addr: "127.0.0.1:2022",
				Labels: labels, PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))}
			if name == "osc_title_in_value" {
				body, _ := json.Marshal(req)
				code, answer := callCluster(t, g, tls.Certificate{}, http.MethodPost, web.NodeJoinPath, string(body))
				if code != http.StatusBadRequest || !strings.Contains(answer, "node.labels") {
					t.Fatalf("join over HTTPS with labels %q: %d %.300s, want 400 naming node.labels", labels, code, answer)
				}
			}
			if _, err := g.Auth().JoinNode(ctx, req, "attacker"); !errors.Is(err, auth.ErrBadRequest) || !strings.Contains(err.Error(), "label") {
				t.Fatalf("join with labels %q: %v, want a bad request naming the label", labels, err)
			}
			if _, err := g.Auth().Get(ctx, resource.KindNode, req.Name, false); err == nil {
				t.Fatal("the refused node was stored")
			}

			// A node token carrying them.
			if _, _, err := g.Auth().AddToken(ctx, auth.TokenOptions{Roles: []string{resource.TokenRoleNode}, Labels: labels}); err == nil {
				t.Fatalf("a node token with labels %q was made", labels)
			}

			// The agent's own configuration.
			cfg := nodeConfig(t, g, "conf-"+strings.ReplaceAll(name, "_", "-"), tok, t.TempDir())
			cfg.Labels = labels
			if _, err := node.New(ctx, cfg); err == nil || !strings.Contains(err.Error(), "node.labels") {
				t.Fatalf("node.New with labels %q: %v, want an error naming node.labels", labels, err)
			}
			// Heartbeat of the joined node. (JSON carries no invalid UTF-8: both ends
			// replace it with U+FFFD, a printable label.)
			if !utf8.ValidString(fmt.Sprint(labels)) {
				return
			}
			hb, _ := json.Marshal(auth.NodeHeartbeatRequest{Addr: "127.0.0.1:2022", HeartbeatTTL: "60s", Labels: labels})
			code, body := callCluster(t, g, cert, http.MethodPost, web.NodeHeartbeatPath, string(hb))
			if code != http.StatusBadRequest || !strings.Contains(body, "label") {
				t.Fatalf("heartbeat with labels %q: %d %.300s, want 400 naming the label", labels, code, body)
			}
			if got := getNode(t, g.Auth(), "victim").Metadata.Labels; len(got) != 1 || got["env"] != "test" {
				t.Fatalf("the node's labels became %q", got)
			}

		})
	}
}
