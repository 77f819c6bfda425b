package web

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/trust"
	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/resource"
)

// clientFrom is an HTTPS client whose connections leave from the loopback address src,
// so that one test can be two client addresses.
func (f *fixture) clientFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext:     d.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: f.auth.CA().TLS.CertPool(), ServerName: "127.0.0.1"},
	}}
}

func validateBody(t *testing.T, token, leaf string) []byte {
	t.Helper()
	c, err := ca.NewCluster(leaf, "")
	if err != nil {
		t.Fatal(err)
	}
	h, _ := c.Host.Resource(false)
	b, _ := json.Marshal(trust.ValidateRequest{Token: token, CAs: []trust.CA{trust.FromResource(h)}})
	return b
}

func post(t *testing.T, c *http.Client, url string, body []byte) (*http.Response, string) {
	t.Helper()
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

func logTo(buf *testenv.Buffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// lines returns the JSON log records of buf whose msg is msg.
func lines(buf *testenv.Buffer, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(buf.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func TestValidateIsRateLimitedPerClientAddress(t *testing.T) {
	var logs testenv.Buffer
	root := start(t, "root.example.com", func(a *auth.Config, w *Config) {
		w.ValidateBurst, w.ValidateRate = 3, 1.0/3600
		w.FailureReportInterval = 200 * time.Millisecond
		w.Logger, a.Logger = logTo(&logs), logTo(&logs)
	})
	url := "https://" + root.addr + trust.ValidatePath
	attacker, leaf := root.clientFrom("127.0.0.2"), root.clientFrom("127.0.0.1")
	// The attacker guesses tokens.
	for i := range 3 {
		resp, _ := post(t, attacker, url, validateBody(t, fmt.Sprintf("guess-%02d-0123456789abcdef0123456789", i), "evil.example.com"))
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("guess %d: HTTP %d", i, resp.StatusCode)
		}
	}
	resp, body := post(t, attacker, url, validateBody(t, "guess-99-0123456789abcdef0123456789", "evil.example.com"))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "too many") {
		t.Fatalf("4th guess: HTTP %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// A valid token does not get past the limit either.
	tok, _, err := root.auth.AddToken(context.Background(), auth.TokenOptions{Roles: []string{"trusted_cluster"}, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := post(t, attacker, url, validateBody(t, tok, "evil.example.com")); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("limited address with a valid token: HTTP %d", resp.StatusCode)
	}
	// A legitimate leaf from another address is unaffected.
	if resp, body := post(t, leaf, url, validateBody(t, tok, "leaf.example.com")); resp.StatusCode != http.StatusOK {
		t.Fatalf("leaf from another address: HTTP %d %s", resp.StatusCode, body)
	}

	t.Run("failures_are_one_summary_line_and_one_audit_event", func(t *testing.T) {
		testenv.Eventually(t, 10*time.Second, func() error {
			if len(lines(&logs, "failed trust handshake attempts")) == 0 {
				return errors.New("no summary yet")
			}
			return nil
		})
		sum := lines(&logs, "failed trust handshake attempts")
		if len(sum) != 1 || sum[0]["level"] != "WARN" || sum[0]["failures"] != float64(5) {
			t.Fatalf("summaries: %v", sum)
		}
		byReason := sum[0]["by_reason"].(map[string]any)
		byAddr := sum[0]["by_address"].(map[string]any)
		if byReason["rejected token"] != float64(3) || byReason["rate limited"] != float64(2) || byAddr["127.0.0.2"] != float64(5) {
			t.Fatalf("summary: %v", sum[0])
		}
		var audits int
		for _, rec := range lines(&logs, "audit event") {
			if rec["audit"] == true && rec["event"] == auth.AuditTrustFailures {
				audits++
			}
		}
		if audits != 1 {
			t.Fatalf("%d audit events\n%s", audits, logs.String())
		}
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, `"level":"WARN"`) && !strings.Contains(l, "failed trust handshake attempts") {
				t.Fatalf("a warning per attempt: %s", l)
			}
		}
	})
}

func TestRateLimiterRefills(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newRateLimiter(0.5, 2, func() time.Time { return now })
	for i := range 2 {
		if ok, _ := l.allow("a"); !ok {
			t.Fatalf("request %d refused", i)
		}
	}
	ok, wait := l.allow("a")
	if ok || wait != 2*time.Second {
		t.Fatalf("got %v %v", ok, wait)
	}
	now = now.Add(2 * time.Second)
	if ok, _ := l.allow("a"); !ok {
		t.Fatal("not refilled")
	}
	if clientKey("[2001:db8::1]:443") != clientKey("[2001:db8::2]:443") || clientKey("127.0.0.1:1") == clientKey("127.0.0.2:1") {
		t.Fatal("client keys: an IPv6 /64 is one client, two IPv4 addresses are two")
	}
}

func TestFailedAdminAuthenticationIsVisible(t *testing.T) {
	var logs testenv.Buffer
	var skew atomic.Int64
	f := start(t, "root.example.com", func(a *auth.Config, w *Config) {
		w.Logger, a.Logger = logTo(&logs), logTo(&logs)
		w.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	other, _ := ca.NewCluster("other.example.com", "")
	url := "https://" + f.addr + "/v1/admin/tokens"
	// from dials from src and always presents cert (if any), whatever CAs the server asks for.
	from := func(src string, cert *tls.Certificate) *http.Client {
		cfg := &tls.Config{RootCAs: f.auth.CA().TLS.CertPool(), ServerName: "127.0.0.1"}
		if cert != nil {
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, TLSClientConfig: cfg}}
	}
	admin := clientCert(t, f.auth.CA(), true)
	for _, tc := range []struct {
		name   string
		src    string
		cert   *tls.Certificate
		skew   time.Duration
		status int
		reason string
	}{
		{"no_client_certificate", "127.0.0.3", nil, 0, 401, "no client certificate"},
		{"unknown_CA", "127.0.0.4", clientCert(t, other, true), 0, 401, "unknown CA"},
		{"expired_certificate", "127.0.0.5", admin, 48 * time.Hour, 401, "expired client certificate"},
		{"non_admin_identity", "127.0.0.6", clientCert(t, f.auth.CA(), false), 0, 403, "not an admin identity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			skew.Store(int64(tc.skew))
			defer skew.Store(0)
			client := from(tc.src, tc.cert)
			for range 3 { // one line for three failures of one peer in a window
				resp, err := client.Get(url)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.status {
					t.Fatalf("HTTP %d, want %d", resp.StatusCode, tc.status)
				}
			}
			var got []map[string]any
			for _, rec := range lines(&logs, "admin API authentication failed") {
				if strings.HasPrefix(rec["peer"].(string), tc.src+":") {
					got = append(got, rec)
				}
			}
			if len(got) != 1 {
				t.Fatalf("%d warning lines for three failures of %s:\n%s", len(got), tc.src, logs.String())
			}
			if got[0]["level"] != "WARN" || !strings.Contains(got[0]["reason"].(string), tc.reason) {
				t.Fatalf("line: %v", got[0])
			}
		})
	}
	t.Run("each_logged_line_is_an_audit_event", func(t *testing.T) {
		var audits []map[string]any
		for _, rec := range lines(&logs, "audit event") {
			if rec["event"] == auth.AuditAdminAuthFailed && rec["audit"] == true {
				audits = append(audits, rec)
			}
		}
		if n := len(lines(&logs, "admin API authentication failed")); len(audits) != n || n == 0 {
			t.Fatalf("%d audit events for %d warnings", len(audits), n)
		}
	})
	t.Run("admin_still_gets_in", func(t *testing.T) {
		resp, err := f.client(admin).Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTP %d", resp.StatusCode)
		}
	})
}

func TestPeerLogSuppressesAndCounts(t *testing.T) {
	now := time.Unix(1000, 0)
	p := newPeerLog(10*time.Second, func() time.Time { return now })
	if ok, n := p.note("a"); !ok || n != 0 {
		t.Fatal("first failure not written")
	}
	for range 4 {
		if ok, _ := p.note("a"); ok {
			t.Fatal("written within the window")
		}
	}
	if ok, _ := p.note("b"); !ok {
		t.Fatal("another peer suppressed")
	}
	now = now.Add(10 * time.Second)
	if ok, n := p.note("a"); !ok || n != 4 {
		t.Fatalf("after the window: %v, %d suppressed", ok, n)
	}
}

// fakeRoot answers the handshake with the CAs answer returns.
func fakeRoot(t *testing.T, answer func() []trust.CA) string {
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(trust.ValidateResponse{CAs: answer()})
	}))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "https://")
}

func caOf(t *testing.T, a *ca.Authority) trust.CA {
	r, err := a.Resource(false)
	if err != nil {
		t.Fatal(err)
	}
	return trust.FromResource(r)
}

// as is c presented as cluster's CA of type typ.
func as(c trust.CA, cluster, typ string) trust.CA {
	c.ClusterName, c.Type, c.TLSCerts = cluster, typ, nil
	return c
}

func tcDoc(name, token, addr string, enabled bool) []resource.Resource {
	return []resource.Resource{&resource.TrustedCluster{Kind: "trusted_cluster", Version: "v2",
		Metadata: resource.Metadata{Name: name},
		Spec:     resource.TrustedClusterSpec{Enabled: enabled, Token: token, TunnelAddr: addr, WebProxyAddr: addr}}}
}

func TestLeafRefusesARootAnswerWithKnownKeys(t *testing.T) {
	ctx := context.Background()
	leaf := start(t, "leaf.example.com", func(a *auth.Config, _ *Config) { a.Trust = trust.Client{Insecure: true, Timeout: 5 * time.Second} })
	honest, _ := ca.NewCluster("honest.example.com", "")
	honestAddr := fakeRoot(t, func() []trust.CA { return []trust.CA{caOf(t, honest.Host), caOf(t, honest.User)} })
	if _, err := leaf.auth.Create(ctx, tcDoc("honest.example.com", "tok", honestAddr, true), false); err != nil {
		t.Fatal(err)
	}
	evil, _ := ca.NewCluster("evil.example.com", "")
	const root = "evil.example.com"
	for _, tc := range []struct {
		name   string
		answer []trust.CA
	}{
		{"root_claims_the_leafs_own_user_key", []trust.CA{caOf(t, evil.Host), as(caOf(t, leaf.auth.CA().User), root, "user")}},
		{"root_claims_the_leafs_own_host_key", []trust.CA{as(caOf(t, leaf.auth.CA().Host), root, "host"), caOf(t, evil.User)}},
		{"root_claims_another_trusted_roots_user_key", []trust.CA{caOf(t, evil.Host), as(caOf(t, honest.User), root, "user")}},
		{"root_uses_one_key_as_host_and_user", []trust.CA{caOf(t, evil.Host), as(caOf(t, evil.Host), root, "user")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeRoot(t, func() []trust.CA { return tc.answer })
			rev := leaf.auth.Revision()
			_, err := leaf.auth.Create(ctx, tcDoc(root, "tok", addr, true), false)
			if err == nil || !strings.Contains(err.Error(), "belongs to one cluster and CA type") {
				t.Fatalf("got %v", err)
			}
			if rs, err := leaf.auth.Get(ctx, resource.KindCertAuthority, root, false); !errors.Is(err, auth.ErrNotFound) {
				t.Fatalf("the root's CAs were stored: %v %d", err, len(rs))
			}
			if _, err := leaf.auth.Get(ctx, resource.KindTrustedCluster, root, false); !errors.Is(err, auth.ErrNotFound) {
				t.Fatalf("the trust was stored: %v", err)
			}
			if leaf.auth.Revision() != rev {
				t.Fatal("the bundle changed")
			}
		})
	}
}

func TestLeafKeepsNoInvitationToken(t *testing.T) {
	ctx := context.Background()
	root := start(t, "root.example.com")
	leaf := start(t, "leaf.example.com", func(a *auth.Config, _ *Config) {
		a.Trust = trust.Client{RootCAs: root.auth.CA().TLS.CertPool(), Timeout: 5 * time.Second}
	})
	newToken := func() string {
		tok, _, err := root.auth.AddToken(ctx, auth.TokenOptions{Roles: []string{"trusted_cluster"}, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// 127.0.0.1 is in the root's server certificate; its public address is that too.
	addr := root.addr
	tok := newToken()
	if _, err := leaf.auth.Create(ctx, tcDoc("root.example.com", tok, addr, true), false); err != nil {
		t.Fatal(err)
	}
	stored := func() *resource.TrustedCluster {
		rs, err := leaf.auth.Get(ctx, resource.KindTrustedCluster, "root.example.com", true)
		if err != nil {
			t.Fatal(err)
		}
		return rs[0].(*resource.TrustedCluster)
	}
	t.Run("the_stored_trust_holds_no_token", func(t *testing.T) {
		if got := stored().Spec.Token; got != "" {
			t.Fatalf("token stored: %q", got)
		}
		rs, _ := leaf.auth.Get(ctx, resource.KindTrustedCluster, "root.example.com", false)
		if got := rs[0].(*resource.TrustedCluster).Spec.Token; got != "" {
			t.Fatalf("get shows %q", got)
		}
		doc, _ := resource.Marshal(stored())
		if strings.Contains(string(doc), tok) {
			t.Fatal("token in the document")
		}
	})
	for _, tc := range []struct{ name, token string }{
		{"disable_with_an_empty_token", ""},
		{"enable_with_the_mask", auth.SecretMask},
		{"disable_with_the_original_token", tok},
		{"enable_with_an_empty_token", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enabled := strings.HasPrefix(tc.name, "enable")
			if _, err := leaf.auth.Create(ctx, tcDoc("root.example.com", tc.token, addr, enabled), true); err != nil {
				t.Fatal(err)
			}
			if got := stored(); got.Spec.Enabled != enabled || got.Spec.Token != "" {
				t.Fatalf("stored: enabled %v token %q", got.Spec.Enabled, got.Spec.Token)
			}
		})
	}
	t.Run("another_token_on_an_existing_trust_is_refused", func(t *testing.T) {
		_, err := leaf.auth.Create(ctx, tcDoc("root.example.com", newToken(), addr, true), true)
		if err == nil || !strings.Contains(err.Error(), "token cannot be changed") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("the_token_is_still_valid_on_the_root_until_its_TTL", func(t *testing.T) {
		toks, _ := root.auth.ListTokens(ctx)
		if len(toks) == 0 {
			t.Fatal("no tokens on the root")
		}
	})
	t.Run("remove_and_create_again_with_a_new_token", func(t *testing.T) {
		if _, err := leaf.auth.Delete(ctx, resource.KindTrustedCluster, "root.example.com"); err != nil {
			t.Fatal(err)
		}
		if _, err := root.auth.Delete(ctx, resource.KindRemoteCluster, "leaf.example.com"); err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.auth.Create(ctx, tcDoc("ROOT.example.com.", newToken(), addr, true), false); err != nil {
			t.Fatal(err)
		}
		if stored().Spec.Token != "" {
			t.Fatal("token kept")
		}
	})
	t.Run("a_new_trust_needs_a_token", func(t *testing.T) {
		_, err := leaf.auth.Create(ctx, tcDoc("other.example.com", "", addr, true), false)
		if err == nil || !strings.Contains(err.Error(), "spec.token is required") {
			t.Fatalf("got %v", err)
		}
	})
}

// One host could hold HTTPS connections (and, since tether proxy ssh goes over TLS, node
// streams) without bound. With web_max_connections_per_source open from one address, its
// next is closed unanswered; another address is still served, and a connection closed
// gives its place back.
func TestWebConnectionsPerSourceAreBounded(t *testing.T) {
	t.Parallel()
	f := start(t, "root.example.com", func(_ *auth.Config, c *Config) { c.MaxConnectionsPerSource = 2 })
	dial := func(from string) (*tls.Conn, error) {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", f.addr, &tls.Config{RootCAs: f.auth.CA().TLS.CertPool(), ServerName: "127.0.0.1"})
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
		return c, err
	}
	var held []*tls.Conn
	for i := range 2 {
		c, err := dial("127.0.0.1")
		if err != nil {
			t.Fatalf("connection %d within the bound: %v", i, err)
		}
		held = append(held, c)
	}
	if _, err := dial("127.0.0.1"); err == nil {
		t.Fatal("a third connection from one source was served, bound 2")
	}
	if _, err := dial("127.0.0.2"); err != nil {
		t.Fatalf("another source was refused: %v", err)
	}
	held[0].Close()
	testenv.Eventually(t, 5*time.Second, func() error {
		_, err := dial("127.0.0.1")
		return err
	})
}
