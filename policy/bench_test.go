package policy

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
)

var report = flag.Bool("tether.report", false, "print the decision figures table (make bench)")

type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	s := slices.Clone(l)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// measure runs f on 0..n-1 after a warm-up on n..n+n/10 and returns each call's latency.
func measure(n int, f func(i int)) latencies {
	for i := n; i <= n+n/10; i++ {
		f(i)
	}
	runtime.GC()
	out := make(latencies, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		f(i)
		out[i] = time.Since(start)
	}
	return out
}

// BenchmarkDecisionFigures measures, in one run, what issue 2 asks for: decision latency on
// a cache miss (identity warm and cold), on a cache hit, cached decisions per second on
// one core, and beside them the naive public query and OPA's floor (a prepared
// `allow := true`), so the ratios show what the design buys and what it costs over OPA.
func BenchmarkDecisionFigures(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b)
	e := f.engine(b, Options{})
	r := rand.New(rand.NewPCG(7, 7))

	// Requests that are allowed and denied alike; distinct nodes make every one a miss.
	const certs = 32
	pool := make([]*Input, certs)
	for i := range pool {
		for {
			in := f.randomInput(r)
			if in.Action == ActionSSHSession {
				pool[i] = in
				break
			}
		}
	}
	n := 4000
	if testing.Short() {
		n = 500
	}
	reqs := make([]*Input, n+n/10+1)
	for i := range reqs {
		in := *pool[i%certs]
		in.Node = &Node{Name: fmt.Sprintf("node-%d", i), Labels: pool[(i*7)%certs].Node.Labels}
		reqs[i] = &in
	}
	must := func(_ Decision, err error) {
		if err != nil {
			b.Fatal(err)
		}
	}

	trivial, err := rego.New(rego.Query("data.bench.allow"),
		rego.Module("trivial.rego", "package bench\n\nallow := true\n")).PrepareForEval(ctx)
	if err != nil {
		b.Fatal(err)
	}
	trivialInput := reqs[0].Value()
	floor := measure(n, func(int) {
		if _, err := trivial.Eval(ctx, rego.EvalParsedInput(trivialInput)); err != nil {
			b.Fatal(err)
		}
	})

	naive := measure(n/4, func(i int) { must(e.DecidePlain(ctx, reqs[i])) })

	for _, in := range pool { // warm the identities; their residuals build in the background
		must(e.Decide(ctx, in))
	}
	for deadline := time.Now().Add(30 * time.Second); !e.residuals.idle(); {
		if time.Now().After(deadline) {
			b.Fatal("residuals still building after 30s")
		}
		time.Sleep(time.Millisecond)
	}
	allowedReq := make([]bool, len(reqs))
	miss := measure(n, func(i int) {
		d, err := e.Decide(ctx, reqs[i])
		must(d, err)
		allowedReq[i] = d.Allow
	})
	missStats := e.Stats()

	// The same misses on an engine without residuals: what the fast path buys.
	plainEngine := f.engine(b, Options{ResidualCacheSize: -1})
	for _, in := range pool {
		must(plainEngine.Decide(ctx, in))
	}
	noResidual := measure(n, func(i int) { must(plainEngine.Decide(ctx, reqs[i])) })
	var missAllow, missDeny latencies
	for i, l := range miss {
		if allowedReq[i] {
			missAllow = append(missAllow, l)
		} else {
			missDeny = append(missDeny, l)
		}
	}

	cold := measure(n/4, func(i int) {
		in := *reqs[i]
		in.Cert.Username = fmt.Sprintf("cold-%d-%d", i, time.Now().UnixNano())
		must(e.Decide(ctx, &in))
	})

	hot := reqs[1]
	must(e.Decide(ctx, hot))
	hit := measure(n*10, func(int) { must(e.Decide(ctx, hot)) })

	prev := runtime.GOMAXPROCS(1)
	hits := 0
	start := time.Now()
	for time.Since(start) < time.Second {
		for j := 0; j < 1000; j++ {
			must(e.Decide(ctx, hot))
		}
		hits += 1000
	}
	perSec := float64(hits) / time.Since(start).Seconds()
	runtime.GOMAXPROCS(prev)

	b.ReportMetric(us(miss.pct(0.5)), "miss-p50-µs")
	b.ReportMetric(us(miss.pct(0.99)), "miss-p99-µs")
	b.ReportMetric(us(hit.pct(0.5)), "hit-p50-µs")
	b.ReportMetric(perSec, "hits/s")
	if !*report {
		return
	}
	w := os.Stdout
	fmt.Fprintf(w, "\nDecision figures: fixture %d roles, 50 role_map rules (30 exact, 15 globs, 5 regexes), 1 operator module; %d requests over %d certificates\n",
		102, n, certs)
	fmt.Fprintf(w, "%-46s %10s %10s %s\n", "path", "p50 µs", "p99 µs", "note")
	row := func(name string, l latencies, note string) {
		fmt.Fprintf(w, "%-46s %10.2f %10.2f %s\n", name, us(l.pct(0.5)), us(l.pct(0.99)), note)
	}
	row("OPA floor: prepared `allow := true`", floor, "baseline")
	row("naive: public query data.tether.authz.decision", naive, fmt.Sprintf("%.1f× floor", us(naive.pct(0.5))/us(floor.pct(0.5))))
	row("cache miss, identity warm", miss, fmt.Sprintf("target ≤ 50 / ≤ 100; %.1f× faster than naive; %.1f× floor",
		us(naive.pct(0.5))/us(miss.pct(0.5)), us(miss.pct(0.5))/us(floor.pct(0.5))))
	row(fmt.Sprintf("  of which allowed (%d)", len(missAllow)), missAllow, "")
	row(fmt.Sprintf("  of which denied (%d)", len(missDeny)), missDeny, "")
	row("cache miss, identity warm, residuals off", noResidual, "")
	row("cache miss, identity cold (new certificate)", cold, "")
	fmt.Fprintf(w, "%-46s %+v\n", "  how the warm misses were decided", missStats)
	row("cache hit", hit, "target ≤ 1")
	fmt.Fprintf(w, "%-46s %10.0f %10s %s\n", "cached decisions per second, one core", perSec, "", "target ≥ 500000")
}

// BenchmarkDecideMiss is the cache-miss path alone (identities warm), for profiling.
func BenchmarkDecideMiss(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b)
	e := f.engine(b, Options{})
	r := rand.New(rand.NewPCG(7, 7))
	pool := make([]*Input, 32)
	for i := range pool {
		pool[i] = f.randomInput(r)
		pool[i].Action = ActionSSHSession
		if _, err := e.Decide(ctx, pool[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in := *pool[i%len(pool)]
		in.Node = &Node{Name: fmt.Sprintf("n-%d", i), Labels: pool[(i*7)%len(pool)].Node.Labels}
		if _, err := e.Decide(ctx, &in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecideHit is the cache-hit path as a plain Go benchmark (mean ns/op with no
// per-call clock reads), beside the percentile in BenchmarkDecisionFigures.
func BenchmarkDecideHit(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b)
	e := f.engine(b, Options{})
	in := &Input{Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow,
		Cert: f.rootCert("alice", []string{"access"}, []string{"visitor"}), Login: "visitor",
		Node: &Node{Name: "n1", Labels: map[string]string{"env": "stage", "team": "team-3"}}}
	if _, err := e.Decide(ctx, in); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if d, err := e.Decide(ctx, in); err != nil || !d.Cached {
			b.Fatal("not a hit", err)
		}
	}
}
