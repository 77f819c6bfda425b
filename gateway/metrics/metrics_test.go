package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tetherproject/tether/bundles"
	"github.com/tetherproject/tether/gateway/audit"
	"github.com/tetherproject/tether/policy"
)

type fakeTunnels struct{}

func (fakeTunnels) ConnectedLeaves() map[string]int         { return map[string]int{"quic": 2, "ssh": 1} }
func (fakeTunnels) Connects() (connects, reconnects uint64) { return 5, 2 }

// TestCollectorPassesPromLint: every metric name, type and help text passes
// client_golang's promtool lint.
func TestCollectorPassesPromLint(t *testing.T) {
	t.Parallel()
	e, err := policy.New(policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := NewCollector(Sources{Engine: e, Tunnels: fakeTunnels{}, Events: &Events{}})
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestEventsMoveTheCounters: audit events count sign-ins, certificates and sessions by
// component (active goes back to zero when the session ends), with fixed label values.
func TestEventsMoveTheCounters(t *testing.T) {
	t.Parallel()
	ev := &Events{}
	ctx := context.Background()
	ev.Audit(ctx, audit.Event{Type: "user.login"})
	ev.Audit(ctx, audit.Event{Type: "user.login.failed"})
	ev.Audit(ctx, audit.Event{Type: "user.login.failed"})
	ev.Audit(ctx, audit.Event{Type: "cert.issued"})
	s := audit.StartSession(ctx, ev, audit.ComponentForward, "alice", map[string]any{"login": "visitor"})
	audit.StartSession(ctx, ev, audit.ComponentNode, "alice", nil)
	audit.StartSession(ctx, ev, "made-up", "alice", nil) // not a component: not counted
	c := NewCollector(Sources{Events: ev, Tunnels: fakeTunnels{}})
	want := `
# HELP tether_logins_total Sign-ins by result: success, failure, rate_limited.
# TYPE tether_logins_total counter
tether_logins_total{result="failure"} 2
tether_logins_total{result="rate_limited"} 0
tether_logins_total{result="success"} 1
# HELP tether_ssh_sessions_active SSH sessions in progress by component: proxy (the root's SSH entry), forward (a cluster's enforcement point), node (the node agent).
# TYPE tether_ssh_sessions_active gauge
tether_ssh_sessions_active{component="forward"} 1
tether_ssh_sessions_active{component="node"} 1
tether_ssh_sessions_active{component="proxy"} 0
# HELP tether_connected_leaves Leaf clusters with a tunnel to this root replica, by transport.
# TYPE tether_connected_leaves gauge
tether_connected_leaves{transport="quic"} 2
tether_connected_leaves{transport="ssh"} 1
# HELP tether_tunnel_reconnects_total Leaves that came back: a tunnel that came up for a leaf that had been connected to this process before and held no other tunnel here (a leaf's second tunnel, for sessions beside QUIC, is not a return).
# TYPE tether_tunnel_reconnects_total counter
tether_tunnel_reconnects_total 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "tether_logins_total", "tether_ssh_sessions_active", "tether_connected_leaves", "tether_tunnel_reconnects_total"); err != nil {
		t.Error(err)
	}
	s.End(ctx, 10, 20)
	want = `
# HELP tether_ssh_session_bytes_total Bytes of ended SSH sessions by component and direction (in: from the user, out: to the user).
# TYPE tether_ssh_session_bytes_total counter
tether_ssh_session_bytes_total{component="forward",direction="in"} 10
tether_ssh_session_bytes_total{component="forward",direction="out"} 20
tether_ssh_session_bytes_total{component="node",direction="in"} 0
tether_ssh_session_bytes_total{component="node",direction="out"} 0
tether_ssh_session_bytes_total{component="proxy",direction="in"} 0
tether_ssh_session_bytes_total{component="proxy",direction="out"} 0
# HELP tether_ssh_sessions_active SSH sessions in progress by component: proxy (the root's SSH entry), forward (a cluster's enforcement point), node (the node agent).
# TYPE tether_ssh_sessions_active gauge
tether_ssh_sessions_active{component="forward"} 0
tether_ssh_sessions_active{component="node"} 1
tether_ssh_sessions_active{component="proxy"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "tether_ssh_session_bytes_total", "tether_ssh_sessions_active"); err != nil {
		t.Error(err)
	}
}

// TestDiagServer: /healthz answers, /readyz says which check fails with 503, /metrics
// serves the text format; the server stops with its context.
func TestDiagServer(t *testing.T) {
	t.Parallel()
	reg, err := NewRegistry(NewCollector(Sources{Events: &Events{}}))
	if err != nil {
		t.Fatal(err)
	}
	ready := map[string]Check{
		"policy": func(context.Context) error { return errors.New("no policy bundle loaded yet") },
		"store":  func(context.Context) error { return nil },
	}
	d, err := Listen("127.0.0.1:0", reg, ready, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	get := func(path string) (int, string) {
		t.Helper()
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get("http://" + d.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "not ready: policy: no policy bundle loaded yet") || strings.Contains(body, "store") {
		t.Errorf("/readyz: %d %q", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "tether_logins_total{result=\"success\"} 0") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if _, err := Listen(d.Addr(), reg, nil, nil); err == nil || !strings.Contains(err.Error(), "leave diag_addr empty") {
		t.Errorf("a taken address: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the diagnostic server did not stop")
	}
}

// TestPprofOnlyWhenEnabled: /debug/pprof/ is absent from a diagnostic server unless
// EnablePprof was called; then the index, a CPU profile (gzip'd protobuf) and a goroutine
// dump answer, and an unreasonable duration is refused.
func TestPprofOnlyWhenEnabled(t *testing.T) {
	t.Parallel()
	serve := func(pprof bool) string {
		reg, err := NewRegistry(NewCollector(Sources{Events: &Events{}}))
		if err != nil {
			t.Fatal(err)
		}
		d, err := Listen("127.0.0.1:0", reg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if pprof {
			d.EnablePprof()
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = d.Serve(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return "http://" + d.Addr()
	}
	get := func(url string) (int, []byte) {
		t.Helper()
		c := &http.Client{Timeout: 20 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	off := serve(false)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/profile?seconds=1", "/debug/pprof/goroutine", "/debug/pprof/cmdline", "/debug/pprof/trace?seconds=1"} {
		if code, body := get(off + path); code != http.StatusNotFound {
			t.Errorf("without EnablePprof, %s: %d %.80q, want 404", path, code, body)
		}
	}
	on := serve(true)
	if code, body := get(on + "/debug/pprof/"); code != 200 || !strings.Contains(string(body), "goroutine") {
		t.Errorf("/debug/pprof/: %d %.200q", code, body)
	}
	if code, body := get(on + "/debug/pprof/profile?seconds=1"); code != 200 || len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b {
		t.Errorf("/debug/pprof/profile?seconds=1: %d %.80q, want a gzip'd profile", code, body)
	}
	if code, body := get(on + "/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(string(body), "TestPprofOnlyWhenEnabled") {
		t.Errorf("/debug/pprof/goroutine: %d %.200q", code, body)
	}
	if code, body := get(on + "/debug/pprof/profile?seconds=601"); code != http.StatusBadRequest || !strings.Contains(string(body), "at most 600") {
		t.Errorf("/debug/pprof/profile?seconds=601: %d %q", code, body)
	}
}

// TestLongWriteCoversTheProfile: a profile asked for at least the server's write timeout
// (net/http/pprof's default 30 s against the diagnostic server's 30 s) is not refused
// for it: the handler sees a write timeout beyond the duration asked for.
func TestLongWriteCoversTheProfile(t *testing.T) {
	t.Parallel()
	var seen time.Duration
	h := longWrite(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		seen = r.Context().Value(http.ServerContextKey).(*http.Server).WriteTimeout
	}))
	for q, want := range map[string]time.Duration{"": 60 * time.Second, "?seconds=45": 75 * time.Second, "?seconds=x": 60 * time.Second} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/profile"+q, nil))
		if seen != want {
			t.Errorf("%q: write timeout %v, want %v", q, seen, want)
		}
	}
}

// TestEvaluatorsAreExported: with a bundle loaded, each policy stage says which evaluator
// decides it, and the plan's retries are counted from zero.
func TestEvaluatorsAreExported(t *testing.T) {
	t.Parallel()
	for _, ev := range []string{policy.EvaluatorPlanned, policy.EvaluatorTopdown} {
		e, err := policy.New(policy.Options{Evaluator: ev})
		if err != nil {
			t.Fatal(err)
		}
		b, err := bundles.ForCluster(bundles.ClusterOptions{ShapeOptions: bundles.ShapeOptions{ClusterName: "leaf.example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Load(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		c := NewCollector(Sources{Engine: e})
		want := fmt.Sprintf(`
# HELP tether_policy_stage_evaluator 1 for the evaluator that decides each policy stage (identity, fast, access, nodes) with the loaded bundle: planned (OPA's plan, evaluated in Go) or topdown.
# TYPE tether_policy_stage_evaluator gauge
tether_policy_stage_evaluator{evaluator="%[1]s",stage="access"} 1
tether_policy_stage_evaluator{evaluator="%[1]s",stage="fast"} 1
tether_policy_stage_evaluator{evaluator="%[1]s",stage="identity"} 1
tether_policy_stage_evaluator{evaluator="%[1]s",stage="nodes"} 1
# HELP tether_policy_plan_retries_total Planned evaluations that erred or were undefined and were decided again by topdown (an operator rule's built-in error on a path topdown does not take).
# TYPE tether_policy_plan_retries_total counter
tether_policy_plan_retries_total 0
`, ev)
		if err := testutil.CollectAndCompare(c, strings.NewReader(want), "tether_policy_stage_evaluator", "tether_policy_plan_retries_total"); err != nil {
			t.Errorf("%s: %v", ev, err)
		}
	}
}
