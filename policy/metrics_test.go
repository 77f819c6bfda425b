package policy

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestMetricsCountDecisions: allows, denials by reason class, cache hits and misses,
// errors and the latency histogram move with real decisions.
func TestMetricsCountDecisions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	e := f.engine(t, Options{})
	node := &Node{Name: "n1", Labels: map[string]string{"env": "stage", "team": "team-3"}}
	allowed := &Input{Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow,
		Cert: f.rootCert("alice", []string{"access"}, []string{"visitor"}), Login: "visitor", Node: node}
	for range 3 {
		if d, err := e.Decide(ctx, allowed); err != nil || !d.Allow {
			t.Fatalf("want an allow: %+v %v", d, err)
		}
	}
	expired := *allowed
	expired.Now = allowed.Cert.ValidBefore.Add(time.Hour)
	if d, err := e.Decide(ctx, &expired); err != nil || d.Allow {
		t.Fatalf("want a denial: %+v %v", d, err)
	}
	nolabels := *allowed
	nolabels.Cert = f.rootCert("bob", []string{"nobody-maps-this"}, []string{"visitor"})
	if d, err := e.Decide(ctx, &nolabels); err != nil || d.Allow {
		t.Fatalf("want a denial: %+v %v", d, err)
	}
	if _, err := e.Decide(ctx, &Input{Action: ActionSSHSession}); err == nil {
		t.Fatal("an empty input was decided")
	}

	m := e.Metrics()
	count := func(result, class string) uint64 {
		for _, c := range m.Decisions {
			if c.Action == ActionSSHSession && c.Result == result && c.Class == class {
				return c.Count
			}
		}
		return 0
	}
	if n := count("allow", ""); n != 3 {
		t.Errorf("allows = %d, want 3 (%+v)", n, m.Decisions)
	}
	if n := count("deny", "certificate"); n != 1 {
		t.Errorf("certificate denials = %d, want 1 (%+v)", n, m.Decisions)
	}
	if n := count("deny", "labels"); n != 1 {
		t.Errorf("labels denials = %d, want 1 (%+v)", n, m.Decisions)
	}
	if m.CacheHits != 2 || m.CacheMisses != 3 {
		t.Errorf("hits %d misses %d, want 2 and 3", m.CacheHits, m.CacheMisses)
	}
	if m.Errors != 1 {
		t.Errorf("errors = %d, want 1", m.Errors)
	}
	var total uint64
	for _, n := range m.LatencyCounts {
		total += n
	}
	if total != 5 || m.LatencySum <= 0 || len(m.LatencyCounts) != len(LatencyBuckets)+1 {
		t.Errorf("latency: %d observations (want 5), sum %v, %d buckets", total, m.LatencySum, len(m.LatencyCounts))
	}
}

// TestReasonClasses: the bounded classes the metrics label denials with.
func TestReasonClasses(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		reasons []string
		want    string
	}{
		{[]string{"user alice@root is not authorized to login as root@leaf: login \"root\" is denied by role \"x\""}, "login"},
		{[]string{"certificate expired at 2026-01-01T00:00:00Z"}, "certificate"},
		{[]string{"trust with cluster root is disabled"}, "certificate"},
		{[]string{"no role's node_labels match node \"n\"", "locked by lock \"l\""}, "lock"},
		{[]string{"no roles mapped for user with remote roles [x]"}, "role_map"},
		{[]string{"denied by operator policy: no root on prod"}, "operator"},
		{[]string{"policy error at custom/x.rego:3: boom (eval_builtin_error); denied"}, "policy_error"},
		{[]string{"cluster \"leaf\" not found: no role's cluster_labels match its labels"}, "labels"},
		{[]string{"something new"}, "other"},
		{nil, "other"},
	} {
		d := Decision{Reasons: tt.reasons}
		if got := classNames[reasonClass(&d)]; got != tt.want {
			t.Errorf("%q: class %q, want %q", tt.reasons, got, tt.want)
		}
	}
	if c := reasonClass(&Decision{Allow: true}); c != classAllow {
		t.Errorf("an allow has class %q", classNames[c])
	}
}

func TestDeniedOnlyByLocks(t *testing.T) {
	for _, tc := range []struct {
		d    Decision
		want bool
	}{
		{Decision{Reasons: []string{`locked by lock "l": leaked`}}, true},
		{Decision{Reasons: []string{`locked by lock "a"`, `locked by lock "b": x`}}, true},
		{Decision{Reasons: []string{`user alice@root is not authorized to login as visitor@leaf: locked by lock "l"`}}, true},
		{Decision{Reasons: []string{`locked by lock "l"`, "no role allows cluster leaf"}}, false},
		{Decision{Reasons: []string{"no role allows cluster leaf"}}, false},
		{Decision{}, false},
		{Decision{Allow: true, Reasons: []string{`locked by lock "l"`}}, false},
	} {
		if got := tc.d.DeniedOnlyByLocks(); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.d.Reasons, got, tc.want)
		}
	}
}

// CertificateReasons keeps the reasons that hold whatever the node or login (a lock on
// the user, the certificate's trust, its role mapping), not those of one node's labels.
func TestCertificateReasons(t *testing.T) {
	for _, tc := range []struct {
		d    Decision
		want []string
	}{
		{Decision{Reasons: []string{`locked by lock "l": leaked`, `no role's node_labels match node ""`}}, []string{`locked by lock "l": leaked`}},
		{Decision{Reasons: []string{"no roles mapped for user with remote roles [x]", `no role's node_labels match node ""`}}, []string{"no roles mapped for user with remote roles [x]"}},
		{Decision{Reasons: []string{"certificate is signed by the openssh certificate authority, not a user CA"}}, []string{"certificate is signed by the openssh certificate authority, not a user CA"}},
		{Decision{Reasons: []string{`no role's node_labels match node ""`, "denied by operator policy: x"}}, nil},
		{Decision{Allow: true, Reasons: []string{`locked by lock "l"`}}, nil},
	} {
		if got := tc.d.CertificateReasons(); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%q: %q, want %q", tc.d.Reasons, got, tc.want)
		}
	}
}
