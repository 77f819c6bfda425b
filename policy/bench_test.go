package policy

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

var report = flag.Bool("tether.report", false, "print the decision figures table (make bench)")

// latencies are per-call wall times, with the process CPU time the calls used (user +
// system, over the whole measurement, divided by the calls): on a machine shared with
// other work, wall times swing with the load and CPU per call does not.
type latencies []time.Duration

// cpuPer maps a measurement (its first element's address) to its CPU time per call.
var cpuPer = map[*time.Duration]time.Duration{}

func (l latencies) cpu() time.Duration {
	if len(l) == 0 {
		return 0
	}
	return cpuPer[&l[0]]
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
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
	cpu0 := processCPU()
	for i := 0; i < n; i++ {
		start := time.Now()
		f(i)
		out[i] = time.Since(start)
	}
	cpuPer[&out[0]] = (processCPU() - cpu0) / time.Duration(n)
	return out
}

// heapBytes is the live heap after a full collection.
func heapBytes() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// sessionPool draws n ssh.session requests from the fixture's space, each with its own
// certificate (distinct user names) when distinct is set.
func sessionPool(f *fixture, r *rand.Rand, n int, distinct bool) []*Input {
	pool := make([]*Input, n)
	for i := range pool {
		for {
			in := f.randomInput(r)
			if in.Action == ActionSSHSession {
				if distinct {
					in.Cert.Username = fmt.Sprintf("user-%05d", i)
				}
				pool[i] = in
				break
			}
		}
	}
	return pool
}

// misses makes n+n/10+1 requests over pool's certificates; distinct node names make every
// one a decision-cache miss.
func misses(pool []*Input, n int) []*Input {
	reqs := make([]*Input, n+n/10+1)
	for i := range reqs {
		in := *pool[i%len(pool)]
		in.Node = &Node{Name: fmt.Sprintf("node-%d", i), Labels: pool[(i*7)%len(pool)].Node.Labels}
		reqs[i] = &in
	}
	return reqs
}

// split measures the misses of reqs on e and splits them into allowed and denied.
func split(b *testing.B, ctx context.Context, e *Engine, reqs []*Input, n int) (all, allowed, denied latencies) {
	allow := make([]bool, len(reqs))
	all = measure(n, func(i int) {
		d, err := e.Decide(ctx, reqs[i])
		if err != nil {
			b.Fatal(err)
		}
		allow[i] = d.Allow
	})
	// CPU per call of each kind: the same measurement once more with only that kind.
	for i, l := range all {
		if allow[i] {
			allowed = append(allowed, l)
		} else {
			denied = append(denied, l)
		}
	}
	for _, kind := range []struct {
		allow bool
		l     latencies
	}{{true, allowed}, {false, denied}} {
		if len(kind.l) == 0 {
			continue
		}
		var idx []int
		for i := range all {
			if allow[i] == kind.allow {
				idx = append(idx, i)
			}
		}
		cpu0 := processCPU()
		for _, i := range idx {
			in := *reqs[i]
			in.Node = &Node{Name: in.Node.Name + "-again", Labels: in.Node.Labels}
			if _, err := e.Decide(ctx, &in); err != nil {
				b.Fatal(err)
			}
		}
		cpuPer[&kind.l[0]] = (processCPU() - cpu0) / time.Duration(len(idx))
	}
	return all, allowed, denied
}

// BenchmarkDecisionFigures measures, in one run, what issue 8 asks for: decision latency on
// a cache miss with the identity warm (allowed and denied apart; the fixture's 32
// certificates, then 1,000 distinct identities interleaved), for a new certificate, on a
// cache hit, cached decisions per second on one core, misses per second on two
// goroutines, a node list of 10,000 nodes, and the bytes a cached identity and a cached
// decision hold; beside them the naive public query and OPA's floor (a prepared
// `allow := true`), so the ratios show what the design buys and what it costs over OPA.
func BenchmarkDecisionFigures(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b)
	e := f.engine(b, Options{})
	r := rand.New(rand.NewPCG(7, 7))
	n := 4000
	manyIDs, memIDs, listNodes := 1000, 10_000, 10_000
	if testing.Short() {
		n, manyIDs, memIDs, listNodes = 500, 100, 500, 1000
	}
	must := func(_ Decision, err error) {
		if err != nil {
			b.Fatal(err)
		}
	}

	// Requests that are allowed and denied alike; distinct nodes make every one a miss.
	pool := sessionPool(f, r, 32, false)
	reqs := misses(pool, n)

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
	// The same floor on the engine's own evaluation path (a pooled topdown query, query.eval).
	trivialCompiler := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
	if trivialCompiler.Compile(map[string]*ast.Module{"trivial.rego": ast.MustParseModuleWithOpts("package bench\n\nallow := true\n",
		ast.ParserOptions{RegoVersion: ast.RegoV1})}); trivialCompiler.Failed() {
		b.Fatal(trivialCompiler.Errors)
	}
	direct, err := newQuery(trivialCompiler, inmem.New(), "data.bench.allow")
	if err != nil {
		b.Fatal(err)
	}
	floorDirect := measure(n, func(int) {
		if _, err := direct.eval(ctx, nil, trivialInput, time.Time{}); err != nil {
			b.Fatal(err)
		}
	})
	naive := measure(n/4, func(i int) { must(e.DecidePlain(ctx, reqs[i])) })

	for _, in := range pool { // warm the identities
		must(e.Decide(ctx, in))
	}
	before := e.Stats()
	miss, missAllow, missDeny := split(b, ctx, e, reqs, n)
	after := e.Stats()
	missStats := Stats{CacheHits: after.CacheHits - before.CacheHits, Fast: after.Fast - before.Fast, Generic: after.Generic - before.Generic}

	// The same, with many identities interleaved (CPU caches no longer hold one identity).
	manyPool := sessionPool(f, rand.New(rand.NewPCG(8, 8)), manyIDs, true)
	manyEngine := f.engine(b, Options{})
	for _, in := range manyPool {
		must(manyEngine.Decide(ctx, in))
	}
	many, manyAllow, manyDeny := split(b, ctx, manyEngine, misses(manyPool, n), n)

	coldOn := func(e *Engine) latencies {
		return measure(n/4, func(i int) {
			in := *reqs[i]
			in.Cert.Username = fmt.Sprintf("cold-%d-%d", i, time.Now().UnixNano())
			must(e.Decide(ctx, &in))
		})
	}
	cold := coldOn(e)

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

	// Misses per second on two goroutines, warm identities, every request a miss.
	var done atomic.Int64
	var wg sync.WaitGroup
	start = time.Now()
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; time.Since(start) < time.Second; i++ {
				in := *pool[(i+g)%len(pool)]
				in.Node = &Node{Name: fmt.Sprintf("par-%d-%d", g, i), Labels: pool[(i*7)%len(pool)].Node.Labels}
				if _, err := e.Decide(ctx, &in); err != nil {
					b.Error(err)
					return
				}
				done.Add(1)
			}
		}(g)
	}
	wg.Wait()
	missesPerSec := float64(done.Load()) / time.Since(start).Seconds()

	// The baseline of the same run: the same stages on OPA's topdown evaluator (measured
	// after the hit figures, so that its garbage is not collected during theirs).
	tdEngine := f.engine(b, Options{Evaluator: EvaluatorTopdown})
	for _, in := range pool {
		must(tdEngine.Decide(ctx, in))
	}
	_, tdAllow, tdDeny := split(b, ctx, tdEngine, reqs, n)
	tdCold := coldOn(tdEngine)

	// A node list: one identity, many nodes, one evaluation.
	lister := &Input{Cluster: leafName, Now: fixtureNow, Cert: f.rootCert("lister", []string{"access", "g-2-007", "full-access"}, []string{"visitor", "login-3", "alice"})}
	nodes := make([]Node, listNodes)
	for i := range nodes {
		nodes[i] = Node{Name: fmt.Sprintf("host-%05d", i), Labels: pool[i%len(pool)].Node.Labels}
	}
	reachable := 0
	listOn := func(e *Engine) latencies {
		return measure(5, func(int) {
			out, err := e.NodeList(ctx, lister, nodes)
			if err != nil {
				b.Fatal(err)
			}
			reachable = 0
			for _, a := range out {
				if len(a.Logins) > 0 {
					reachable++
				}
			}
		})
	}
	list := listOn(e)
	tdList := listOn(tdEngine)
	tdEngine.Close()

	// Memory: the live heap an identity cache of memIDs certificates holds, and what
	// cached decisions hold, on an engine of their own.
	memEngine := f.engine(b, Options{IdentityCacheSize: memIDs, CacheSize: memIDs})
	memPool := sessionPool(f, rand.New(rand.NewPCG(9, 9)), memIDs, true)
	p := memEngine.cur.Load()
	base := heapBytes()
	for _, in := range memPool {
		if _, err := memEngine.identity(ctx, p, in); err != nil {
			b.Fatal(err)
		}
	}
	idHeap := heapBytes() - base
	base = heapBytes()
	for _, in := range memPool {
		must(memEngine.Decide(ctx, in))
	}
	decHeap := heapBytes() - base
	runtime.KeepAlive(memPool)
	if memEngine.ids.Len() != memIDs {
		b.Fatalf("identity cache holds %d, want %d", memEngine.ids.Len(), memIDs)
	}

	b.ReportMetric(us(miss.pct(0.5)), "miss-p50-µs")
	b.ReportMetric(us(miss.pct(0.99)), "miss-p99-µs")
	b.ReportMetric(us(hit.pct(0.5)), "hit-p50-µs")
	b.ReportMetric(perSec, "hits/s")
	if !*report {
		return
	}
	w := os.Stdout
	fmt.Fprintf(w, "\nDecision figures: fixture %d roles, 50 role_map rules (30 exact, 15 globs, 5 regexes), 1 operator module; %d requests per run, GOMAXPROCS %d\n",
		102, n, runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "Wall times swing with the machine's load; CPU µs is the process CPU time per call (user + system, GC included).\n")
	fmt.Fprintf(w, "%-52s %10s %10s %10s %s\n", "path", "p50 µs", "p99 µs", "CPU µs", "note")
	row := func(name string, l latencies, note string) {
		fmt.Fprintf(w, "%-52s %10.2f %10.2f %10.2f %s\n", name, us(l.pct(0.5)), us(l.pct(0.99)), us(l.cpu()), note)
	}
	target := func(l latencies, p50, p99 float64) string {
		ok := func(b bool) string {
			if b {
				return "met"
			}
			return "NOT met"
		}
		s := ""
		if p50 > 0 {
			s = fmt.Sprintf("p50 ≤ %g %s", p50, ok(us(l.pct(0.5)) <= p50))
		}
		if p99 > 0 {
			if s != "" {
				s += "; "
			}
			s += fmt.Sprintf("p99 ≤ %g %s", p99, ok(us(l.pct(0.99)) <= p99))
		}
		return s
	}
	fl, nv := us(floor.pct(0.5)), us(naive.pct(0.5))
	ratio := func(l latencies) string {
		return fmt.Sprintf("%.1f× floor, naive/this %.0f×", us(l.pct(0.5))/fl, nv/us(l.pct(0.5)))
	}
	row("OPA floor: prepared `allow := true`", floor, "baseline")
	row("  the same on the engine's path (pooled topdown)", floorDirect, fmt.Sprintf("%.1f× floor", us(floorDirect.pct(0.5))/fl))
	row("naive: public query data.tether.authz.decision", naive, fmt.Sprintf("%.1f× floor", nv/fl))
	row(fmt.Sprintf("miss, identity warm (%d certificates)", len(pool)), miss, ratio(miss)+"; "+target(miss, 0, 150))
	row(fmt.Sprintf("  allowed (%d)", len(missAllow)), missAllow, ratio(missAllow)+"; "+target(missAllow, 25, 150))
	row(fmt.Sprintf("  denied (%d)", len(missDeny)), missDeny, ratio(missDeny)+"; "+target(missDeny, 60, 150))
	fmt.Fprintf(w, "%-52s %+v\n", "  how these misses were decided", missStats)
	row(fmt.Sprintf("miss, identity warm, %d identities interleaved", manyIDs), many, ratio(many)+"; "+target(many, 0, 150))
	row(fmt.Sprintf("  allowed (%d)", len(manyAllow)), manyAllow, ratio(manyAllow)+"; "+target(manyAllow, 25, 150))
	row(fmt.Sprintf("  denied (%d)", len(manyDeny)), manyDeny, ratio(manyDeny)+"; "+target(manyDeny, 60, 150))
	row("new certificate (identity cold)", cold, ratio(cold)+"; "+target(cold, 600, 0))
	fmt.Fprintf(w, "%-52s %v\n", "  stages evaluated by", e.Evaluators())
	faster := func(base, l latencies) string {
		return fmt.Sprintf("planned is %.1f× faster at p50", us(base.pct(0.5))/us(l.pct(0.5)))
	}
	row("baseline: the same stages on topdown, allowed miss", tdAllow, faster(tdAllow, missAllow))
	row("  denied miss", tdDeny, faster(tdDeny, missDeny))
	row("  new certificate", tdCold, faster(tdCold, cold))
	row("cache hit", hit, target(hit, 1, 0))
	fmt.Fprintf(w, "%-52s %10.0f %10s ≥ 1500000 %s\n", "cached decisions per second, one core", perSec, "", map[bool]string{true: "met", false: "NOT met"}[perSec >= 1.5e6])
	fmt.Fprintf(w, "%-52s %10.0f\n", "misses per second, 2 goroutines, identities warm", missesPerSec)
	fmt.Fprintf(w, "%-52s %10.2f %10s %10.2f ms for %d nodes (%d reachable), one evaluation; p50 ≤ 50 ms %s\n", "node list (ms)", float64(list.pct(0.5))/1e6, "", float64(list.cpu())/1e6, listNodes, reachable,
		map[bool]string{true: "met", false: "NOT met"}[list.pct(0.5) <= 50*time.Millisecond])
	fmt.Fprintf(w, "%-52s %10.2f %10s %10.2f ms; planned is %.1f× faster at p50\n", "  baseline: the same node list on topdown", float64(tdList.pct(0.5))/1e6, "", float64(tdList.cpu())/1e6,
		float64(tdList.pct(0.5))/float64(list.pct(0.5)))
	perID := float64(idHeap) / float64(memIDs)
	fmt.Fprintf(w, "%-52s %10.0f bytes; %d identities hold %.1f MiB (measured); 10,000 → %.1f MiB, ≤ 256 MiB %s\n", "memory per cached identity", perID, memIDs,
		float64(idHeap)/(1<<20), perID*10_000/(1<<20), map[bool]string{true: "met", false: "NOT met"}[perID*10_000 <= 256<<20])
	fmt.Fprintf(w, "%-52s %10.0f bytes (default cache %d decisions → %.1f MiB)\n", "memory per cached decision", float64(decHeap)/float64(memIDs),
		DefaultCacheSize, float64(decHeap)/float64(memIDs)*DefaultCacheSize/(1<<20))
}

// BenchmarkDecideMiss is the cache-miss path alone (identities warm), for profiling.
func BenchmarkDecideMiss(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b)
	e := f.engine(b, Options{})
	pool := sessionPool(f, rand.New(rand.NewPCG(7, 7)), 32, false)
	for _, in := range pool {
		if _, err := e.Decide(ctx, in); err != nil {
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

// BenchmarkDecideMissKind is the cache-miss path with the identity warm, allowed and
// denied requests apart and every request built before the timer starts, so that a
// profile or an instruction count (valgrind --tool=callgrind) sees only Decide.
func BenchmarkDecideMissKind(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b)
	e := f.engine(b, Options{})
	pool := sessionPool(f, rand.New(rand.NewPCG(7, 7)), 32, false)
	kinds := map[bool][]*Input{}
	for _, in := range pool {
		d, err := e.Decide(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		kinds[d.Allow] = append(kinds[d.Allow], in)
	}
	for _, kind := range []struct {
		name  string
		allow bool
	}{{"allowed", true}, {"denied", false}} {
		b.Run(kind.name, func(b *testing.B) {
			src := kinds[kind.allow]
			reqs := make([]*Input, b.N)
			for i := range reqs {
				in := *src[i%len(src)]
				in.Node = &Node{Name: fmt.Sprintf("%s-%d", kind.name, i), Labels: in.Node.Labels}
				reqs[i] = &in
			}
			b.ReportAllocs()
			b.ResetTimer()
			for _, in := range reqs {
				d, err := e.Decide(ctx, in)
				if err != nil || d.Allow != kind.allow {
					b.Fatal("not the same decision", err)
				}
			}
		})
	}
}
