package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/internal/testproc"
)

// scrape reads one sample of /metrics: the value of the line that starts with series
// (name and labels as Prometheus writes them), or -1 when there is none.
func scrape(t *testing.T, diag, series string) float64 {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + diag + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("%s: %q", series, line)
			}
			return v
		}
	}
	return -1
}

// auditEvents reads the audit events (lines with a "type") of a decision-log file.
func auditEvents(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %q", sc.Text())
		}
		if _, ok := m["type"]; ok {
			out = append(out, m)
		}
	}
	return out
}

func findEvent(evs []map[string]any, typ string, match func(fields map[string]any) bool) map[string]any {
	for _, e := range evs {
		f, _ := e["fields"].(map[string]any)
		if e["type"] == typ && (match == nil || match(f)) {
			return e
		}
	}
	return nil
}

// TestOperationsMetricsAndAudit runs real tetherd processes (the root's diagnostic server
// set with TETHER_DIAG_ADDR), signs in, fails a sign-in, runs an allowed and a denied
// SSH session through the proxy to an OpenSSH node, joins a leaf, and then reads the
// root's /metrics and the audit events in its decision-log file.
func TestOperationsMetricsAndAudit(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	diag := l.Addr().String()
	l.Close()
	t.Setenv("TETHER_DIAG_ADDR", diag) // the root inherits it; unset again before the leaf starts
	c := newSSHCluster(t)
	os.Unsetenv("TETHER_DIAG_ADDR")

	probe := &http.Client{Timeout: 10 * time.Second}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := probe.Get("http://" + diag + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}

	// A failed sign-in (wrong password): counted and audited, the password never written.
	printed := c.root.ctl(t, c.tetherctl, "users", "add", "bob", "--roles=access", "--logins="+c.login)
	proxy := regexp.MustCompile(`--proxy=(\S+)`).FindStringSubmatch(printed)[1]
	caFile := regexp.MustCompile(`--ca-file=(\S+)`).FindStringSubmatch(printed)[1]
	other := user{bin: c.alice.bin, home: filepath.Join(t.TempDir(), "other")}
	if _, _, err := other.run(t, "wrong password 99\n000000\n", "login", "--proxy="+proxy, "--ca-file="+caFile, "--user=alice"); err == nil {
		t.Fatal("a wrong password signed in")
	}

	// One allowed session through the proxy to the node, one denied login.
	if out, errOut, code := c.tether(t, "ssh", c.login+"@node1", "echo", "hello-from-node"); code != 0 || !strings.Contains(out, "hello-from-node") {
		t.Fatalf("tether ssh: %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := c.tether(t, "ssh", "nobody@node1", "true"); code == 0 || !strings.Contains(errOut, "not authorized") {
		t.Fatalf("tether ssh as nobody: %d %s", code, errOut)
	}

	// A leaf joins over the tunnel.
	leaf := startTetherd(t, c.tetherd, "leaf.example.com", "--insecure")
	tok := regexp.MustCompile(`The cluster invite token: (\S+)`).FindStringSubmatch(c.root.ctl(t, c.tetherctl, "tokens", "add", "--type=trusted_cluster", "--ttl=5m"))[1]
	tc := fmt.Sprintf("kind: trusted_cluster\nversion: v2\nmetadata:\n  name: root.example.com\nspec:\n  enabled: true\n  token: %s\n  tunnel_addr: %s\n  web_proxy_addr: %s\n  role_map:\n    - remote: access\n      local: [access]\n", tok, testproc.PingTunnelAddr(t, c.root.addr), c.root.addr)
	leaf.ctl(t, c.tetherctl, "create", writeTemp(t, tc))

	testenv.Eventually(t, 60*time.Second, func() error {
		if v := scrape(t, diag, `tether_connected_leaves{transport="quic"}`) + scrape(t, diag, `tether_connected_leaves{transport="ssh"}`); v != 1 {
			return fmt.Errorf("connected leaves %v, want 1", v)
		}
		if v := scrape(t, diag, `tether_ssh_sessions_active{component="forward"}`); v != 0 {
			return fmt.Errorf("forward sessions still active: %v", v)
		}
		return nil
	})
	atLeast := map[string]float64{
		`tether_logins_total{result="success"}`:                                           1,
		`tether_logins_total{result="failure"}`:                                           1,
		`tether_certificates_issued_total`:                                                1,
		`tether_decisions_total{action="ssh.session",reason_class="",result="allow"}`:     1,
		`tether_decisions_total{action="ssh.session",reason_class="login",result="deny"}`: 1,
		`tether_decisions_total{action="cert.issue",reason_class="",result="allow"}`:      1,
		`tether_decision_cache_misses_total`:                                              1,
		`tether_decision_duration_seconds_count`:                                          3,
		`tether_ssh_sessions_total{component="forward"}`:                                  1,
		`tether_ssh_sessions_total{component="proxy"}`:                                    1,
		`tether_ssh_session_bytes_total{component="forward",direction="out"}`:             int64ToF(len("hello-from-node\n")),
		`tether_tunnel_connects_total`:                                                    1,
		`tether_trust_changes_total`:                                                      1,
	}
	for series, min := range atLeast {
		if v := scrape(t, diag, series); v < min {
			t.Errorf("%s = %v, want at least %v", series, v, min)
		}
	}
	if v := scrape(t, diag, "tether_decision_log_dropped_total"); v != 0 {
		t.Errorf("tether_decision_log_dropped_total = %v", v)
	}

	// The audit events, in the decision-log file beside the decisions.
	var evs []map[string]any
	testenv.Eventually(t, 20*time.Second, func() error {
		evs = auditEvents(t, c.declog)
		for _, typ := range []string{"user.login", "user.login.failed", "cert.issued", "session.start", "session.end", "resource.create", "token.use", "trust.join"} {
			if findEvent(evs, typ, nil) == nil {
				return fmt.Errorf("no %s event yet", typ)
			}
		}
		return nil
	})
	for _, e := range evs {
		if e["cluster"] != "root.example.com" || e["event_id"] == "" || e["time"] == "" {
			t.Errorf("event without cluster, id or time: %v", e)
		}
	}
	if e := findEvent(evs, "user.login", nil); e["user"] != "alice" {
		t.Errorf("user.login: %v", e)
	}
	if e := findEvent(evs, "user.login.failed", nil); e["user"] != "alice" {
		t.Errorf("user.login.failed: %v", e)
	}
	end := findEvent(evs, "session.end", func(f map[string]any) bool { return f["component"] == "forward" })
	if end == nil {
		t.Fatalf("no session.end of the forward component: %v", evs)
	}
	if f := end["fields"].(map[string]any); end["user"] != "alice" || f["node"] != "node1" || f["login"] != c.login ||
		f["bytes_out"].(float64) < float64(len("hello-from-node\n")) || f["duration_ms"] == nil || f["session_id"] == "" {
		t.Errorf("session.end: %v", end)
	}
	// tether ssh reaches the proxy over TLS (a node stream), and the record says so.
	if findEvent(evs, "session.end", func(f map[string]any) bool { return f["component"] == "proxy" && f["entry"] == "tls" }) == nil {
		t.Errorf("no session.end of the proxy component with entry tls")
	}
	if e := findEvent(evs, "resource.create", func(f map[string]any) bool { return f["kind"] == "node" && f["name"] == "node1" }); e == nil || e["user"] == "" {
		t.Errorf("resource.create of node1 by the admin: %v", e)
	}
	data, _ := os.ReadFile(c.declog)
	for _, secret := range []string{"alice password 1", "wrong password 99", tok} {
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("the decision log holds a secret %q", secret)
		}
	}
	if _, err := os.Stat(filepath.Dir(c.declog)); err != nil {
		t.Fatal(err)
	}
}

func int64ToF(n int) float64 { return float64(n) }

// TestPprofOnlyWithDebug: tetherd start --diag-addr serves Go's profiles at /debug/pprof/
// only with --debug (as Teleport's diagnostic address); without it the path is absent.
// Also tetherd's GOGC: 400 unless the environment sets one (the first process runs with
// GOGC=150).
func TestPprofOnlyWithDebug(t *testing.T) {
	tetherd, _, _ := binaries(t)
	get := func(url string) int {
		t.Helper()
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, debug := range []bool{false, true} {
		diag := "127.0.0.1:" + freePort(t)
		args := []string{"--diag-addr=" + diag}
		if debug {
			args = append(args, "--debug")
		}
		wantGC := 400.0
		if !debug {
			t.Setenv("GOGC", "150")
			wantGC = 150
		}
		p := startTetherd(t, tetherd, fmt.Sprintf("pprof-%v.example.com", debug), args...)
		os.Unsetenv("GOGC")
		if code := get("http://" + diag + "/metrics"); code != 200 {
			t.Fatalf("debug %v: /metrics %d\n%s", debug, code, p.log)
		}
		if v := scrape(t, diag, "go_gc_gogc_percent"); v != wantGC {
			t.Errorf("debug %v: go_gc_gogc_percent %v, want %v", debug, v, wantGC)
		}
		want := http.StatusNotFound
		if debug {
			want = http.StatusOK
		}
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/profile?seconds=1"} {
			if code := get("http://" + diag + path); code != want {
				t.Errorf("debug %v: %s answered %d, want %d", debug, path, code, want)
			}
		}
	}
}
