package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"strings"

	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/policy/decisionlog"
)

// Sources are what a Collector reads; nil fields are left out of the scrape.
type Sources struct {
	Engine      *policy.Engine
	DecisionLog *decisionlog.Logger
	// Tunnels is the root's tunnel server (gateway/tunnel.Root).
	Tunnels interface {
		ConnectedLeaves() map[string]int
		Connects() (connects, reconnects uint64)
	}
	Events *Events
}

// Collector exports Sources as Prometheus metrics at scrape time.
type Collector struct {
	src Sources
}

// NewCollector returns a Collector of src.
func NewCollector(src Sources) *Collector { return &Collector{src: src} }

var (
	descDecisions = prometheus.NewDesc("tether_decisions_total",
		"Access decisions by action, result (allow, deny) and reason class of a denial (empty for an allow).",
		[]string{"action", "result", "reason_class"}, nil)
	descCacheHits = prometheus.NewDesc("tether_decision_cache_hits_total",
		"Decisions served from the decision cache.", nil, nil)
	descCacheMisses = prometheus.NewDesc("tether_decision_cache_misses_total",
		"Cacheable decisions that had to be evaluated (hit ratio = hits / (hits + misses)).", nil, nil)
	descDecisionErrors = prometheus.NewDesc("tether_decision_errors_total",
		"Decision requests answered with an error instead of a decision (bad input, no bundle).", nil, nil)
	descEvaluator = prometheus.NewDesc("tether_policy_stage_evaluator",
		"1 for the evaluator that decides each policy stage (identity, fast, access, nodes) with the loaded bundle: planned (OPA's plan, evaluated in Go) or topdown.",
		[]string{"stage", "evaluator"}, nil)
	descRetried = prometheus.NewDesc("tether_policy_plan_retries_total",
		"Planned evaluations that erred or were undefined and were decided again by topdown (an operator rule's built-in error on a path topdown does not take).", nil, nil)
	descLatency = prometheus.NewDesc("tether_decision_duration_seconds",
		"Time to decide, cache hits included.", nil, nil)
	descDropped = prometheus.NewDesc("tether_decision_log_dropped_total",
		"Decision-log and audit events dropped, summed over the sinks: alert when it grows.", nil, nil)
	descLeaves = prometheus.NewDesc("tether_connected_leaves",
		"Leaf clusters with a tunnel to this root replica, by transport.", []string{"transport"}, nil)
	descTunnelConnects = prometheus.NewDesc("tether_tunnel_connects_total",
		"Leaf tunnels that came up on this root replica.", nil, nil)
	descTunnelReconnects = prometheus.NewDesc("tether_tunnel_reconnects_total",
		"Leaves that came back: a tunnel that came up for a leaf that had been connected to this process before and held no other tunnel here (a leaf's second tunnel, for sessions beside QUIC, is not a return).", nil, nil)
	descSessions = prometheus.NewDesc("tether_ssh_sessions_active",
		"SSH sessions in progress by component: proxy (the root's SSH entry), forward (a cluster's enforcement point), node (the node agent).",
		[]string{"component"}, nil)
	descSessionsTotal = prometheus.NewDesc("tether_ssh_sessions_total",
		"SSH sessions started, by component.", []string{"component"}, nil)
	descSessionBytes = prometheus.NewDesc("tether_ssh_session_bytes_total",
		"Bytes of ended SSH sessions by component and direction (in: from the user, out: to the user).",
		[]string{"component", "direction"}, nil)
	descLogins = prometheus.NewDesc("tether_logins_total",
		"Sign-ins by result: success, failure, rate_limited.", []string{"result"}, nil)
	descCerts = prometheus.NewDesc("tether_certificates_issued_total",
		"User certificates issued at sign-in.", nil, nil)
	descTrust = prometheus.NewDesc("tether_trust_changes_total",
		"Trust changes: joins, disables, enables, removals.", nil, nil)
)

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDecisions, descCacheHits, descCacheMisses, descDecisionErrors, descEvaluator, descRetried, descLatency,
		descDropped, descLeaves, descTunnelConnects, descTunnelReconnects, descSessions, descSessionsTotal,
		descSessionBytes, descLogins, descCerts, descTrust} {
		ch <- d
	}
}

// Collect reads the sources.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	if e := c.src.Engine; e != nil {
		m := e.Metrics()
		// Every action's allow is exported, zero or not, so rate() works from the start.
		seen := map[[3]string]bool{}
		for _, d := range m.Decisions {
			seen[[3]string{d.Action, d.Result, d.Class}] = true
			counter(descDecisions, d.Count, d.Action, d.Result, d.Class)
		}
		for _, a := range []string{policy.ActionSSHSession, policy.ActionClusterRoute, policy.ActionCertIssue} {
			if !seen[[3]string{a, "allow", ""}] {
				counter(descDecisions, 0, a, "allow", "")
			}
		}
		counter(descCacheHits, m.CacheHits)
		counter(descCacheMisses, m.CacheMisses)
		counter(descDecisionErrors, m.Errors)
		for stage, ev := range e.Evaluators() {
			name, _, _ := strings.Cut(ev, ":")
			gauge(descEvaluator, 1, stage, name)
		}
		counter(descRetried, uint64(e.Stats().Retried))
		buckets := make(map[float64]uint64, len(policy.LatencyBuckets))
		var cum uint64
		for i, ub := range policy.LatencyBuckets {
			cum += m.LatencyCounts[i]
			buckets[ub] = cum
		}
		cum += m.LatencyCounts[len(policy.LatencyBuckets)]
		ch <- prometheus.MustNewConstHistogram(descLatency, cum, m.LatencySum.Seconds(), buckets)
	}
	if l := c.src.DecisionLog; l != nil {
		counter(descDropped, l.Dropped())
	} else {
		counter(descDropped, 0)
	}
	if t := c.src.Tunnels; t != nil {
		by := t.ConnectedLeaves()
		for _, tr := range []string{"quic", "ssh"} {
			gauge(descLeaves, int64(by[tr]), tr)
		}
		connects, reconnects := t.Connects()
		counter(descTunnelConnects, connects)
		counter(descTunnelReconnects, reconnects)
	}
	if e := c.src.Events; e != nil {
		for i, comp := range components {
			s := &e.sessions[i]
			gauge(descSessions, max(0, s.active.Load()), comp)
			counter(descSessionsTotal, uint64(s.started.Load()), comp)
			counter(descSessionBytes, s.bytesIn.Load(), comp, "in")
			counter(descSessionBytes, s.bytesOut.Load(), comp, "out")
		}
		counter(descLogins, e.loginOK.Load(), "success")
		counter(descLogins, e.loginFailed.Load(), "failure")
		counter(descLogins, e.loginLimited.Load(), "rate_limited")
		counter(descCerts, e.certsIssued.Load())
		counter(descTrust, e.trustChanges.Load())
	}
}
