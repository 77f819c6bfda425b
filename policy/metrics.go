package policy

import (
	"strings"
	"sync/atomic"
	"time"
)

// Decision metrics are plain atomic counters indexed by small integers, so that the
// cache-hit path pays a few atomic adds and no map lookup, label hashing or lock; an
// exporter (gateway/metrics) reads them at scrape time with Engine.Metrics.

// Actions counted by the metrics, in index order; any other action counts as "other".
var metricActions = [...]string{ActionSSHSession, ActionNodeList, ActionClusterRoute, ActionClusterList, ActionCertIssue, "other"}

func actionIndex(a string) int {
	switch a {
	case ActionSSHSession:
		return 0
	case ActionNodeList:
		return 1
	case ActionClusterRoute:
		return 2
	case ActionClusterList:
		return 3
	case ActionCertIssue:
		return 4
	}
	return 5
}

// Reason classes of a decision: "" for an allow, otherwise the first class, in this
// order, that one of the denial's reasons belongs to. The set is fixed, so a metric
// labelled by it stays bounded whatever the reasons say.
const (
	classAllow = iota
	classPolicyError
	classLock
	classCertificate
	classRoleMap
	classOperator
	classLogin
	classLabels
	classOther
	numClasses
)

var classNames = [numClasses]string{"", "policy_error", "lock", "certificate", "role_map", "operator", "login", "labels", "other"}

// reasonClass classifies a decision's reasons; it runs when a decision is evaluated,
// never on a cache hit (the class is cached with the decision).
func reasonClass(d *Decision) uint8 {
	if d.Allow {
		return classAllow
	}
	best := uint8(classOther)
	for _, r := range d.Reasons {
		if c := classOfReason(r); c < best {
			best = c
		}
	}
	return best
}

// DeniedOnlyByLocks is true for a denial every reason of which is a lock ("locked by
// lock ..."): what a lock says names the user, role, login or certificate it targets, so a
// gateway may show it where it hides other reasons (a cluster the user may not see).
func (d *Decision) DeniedOnlyByLocks() bool {
	if d.Allow || len(d.Reasons) == 0 {
		return false
	}
	for _, r := range d.Reasons {
		if classOfReason(r) != classLock {
			return false
		}
	}
	return true
}

// CertificateReasons are the reasons of a denial that hold for every request the
// certificate could make here, whatever the node or login: locks on the user, a role or
// the certificate's cluster, the certificate's trust, validity and requirements, and its
// role mapping. A node list that comes out empty for such a certificate is a refusal, and
// these reasons say why (a list made empty by labels or logins is only empty).
func (d *Decision) CertificateReasons() []string {
	if d.Allow {
		return nil
	}
	var out []string
	for _, r := range d.Reasons {
		switch classOfReason(r) {
		case classLock, classCertificate, classRoleMap:
			out = append(out, r)
		}
	}
	return out
}

func classOfReason(r string) uint8 {
	// The policy prefixes session denials with "user U@C is not authorized to login as
	// L@C: "; classify what follows.
	if i := strings.Index(r, " is not authorized to login as "); i >= 0 {
		if j := strings.Index(r[i:], ": "); j >= 0 {
			r = r[i+j+2:]
		}
	}
	switch {
	case strings.HasPrefix(r, "policy error at "):
		return classPolicyError
	case strings.HasPrefix(r, "locked by lock "):
		return classLock
	case strings.HasPrefix(r, "certificate "), strings.Contains(r, "certificate authority"),
		strings.HasPrefix(r, "trust with cluster "), strings.Contains(r, "is not a trusted cluster"),
		strings.Contains(r, " requires MFA"), strings.Contains(r, " accepts certificates at most "),
		strings.Contains(r, " requires a certificate issued via "):
		return classCertificate
	case strings.HasPrefix(r, "no roles mapped"), strings.HasPrefix(r, "role_map"):
		return classRoleMap
	case strings.HasPrefix(r, "denied by operator policy"):
		return classOperator
	case strings.HasPrefix(r, "login "), strings.Contains(r, " allow login "), strings.HasPrefix(r, "no role allows login"):
		return classLogin
	case strings.Contains(r, "node_labels"), strings.Contains(r, "labels"), strings.HasPrefix(r, "node "),
		strings.HasPrefix(r, "cluster "), strings.HasPrefix(r, "remote cluster "):
		return classLabels
	}
	return classOther
}

// LatencyBuckets are the upper bounds, in seconds, of the decision latency histogram:
// a cache hit lands in the first buckets (≈ 1 µs), an evaluation with a warm identity
// in the tens to hundreds of µs, a new certificate in the milliseconds.
var LatencyBuckets = []float64{1e-6, 2.5e-6, 5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3}

// latencyBoundsNs are LatencyBuckets in nanoseconds.
var latencyBoundsNs = func() []int64 {
	b := make([]int64, len(LatencyBuckets))
	for i, s := range LatencyBuckets {
		b[i] = int64(s*1e9 + 0.5)
	}
	return b
}()

type engineMetrics struct {
	decisions [len(metricActions)][numClasses]atomic.Uint64
	misses    atomic.Uint64 // cacheable decisions that were evaluated
	errors    atomic.Uint64 // Decide calls that returned an error (bad input, no bundle)
	buckets   [16]atomic.Uint64
	sumNs     atomic.Int64
}

// observe counts one decision that took elapsed.
func (m *engineMetrics) observe(action string, class uint8, elapsed time.Duration) {
	m.decisions[actionIndex(action)][class].Add(1)
	ns := int64(elapsed)
	i := 0
	for i < len(latencyBoundsNs) && ns > latencyBoundsNs[i] {
		i++
	}
	m.buckets[i].Add(1)
	m.sumNs.Add(ns)
}

// DecisionCount is the number of decisions of one action with one result and reason
// class.
type DecisionCount struct {
	Action string // ssh.session, node.list, cluster.route, cluster.list, cert.issue, other
	Result string // allow or deny
	Class  string // "" for an allow; policy_error, lock, certificate, role_map, operator, login, labels, other
	Count  uint64
}

// Metrics is a snapshot of the engine's counters since New.
type Metrics struct {
	Decisions   []DecisionCount // only non-zero counts
	CacheHits   uint64
	CacheMisses uint64 // cacheable decisions that had to be evaluated
	Errors      uint64 // Decide calls that returned an error instead of a decision
	// LatencyCounts[i] counts decisions that took at most LatencyBuckets[i] (not
	// cumulative); the last element counts the slower ones.
	LatencyCounts []uint64
	LatencySum    time.Duration
}

// Metrics returns the engine's counters. It is cheap and safe at any time.
func (e *Engine) Metrics() Metrics {
	m := &e.metrics
	out := Metrics{
		CacheHits:   uint64(e.stats.cacheHits.Load()),
		CacheMisses: m.misses.Load(),
		Errors:      m.errors.Load(),
		LatencySum:  time.Duration(m.sumNs.Load()),
	}
	for a := range metricActions {
		for c := range numClasses {
			if n := m.decisions[a][c].Load(); n > 0 {
				res := "deny"
				if c == classAllow {
					res = "allow"
				}
				out.Decisions = append(out.Decisions, DecisionCount{Action: metricActions[a], Result: res, Class: classNames[c], Count: n})
			}
		}
	}
	out.LatencyCounts = make([]uint64, len(LatencyBuckets)+1)
	for i := range out.LatencyCounts {
		out.LatencyCounts[i] = m.buckets[i].Load()
	}
	return out
}
