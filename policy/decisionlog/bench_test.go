package decisionlog

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkLog measures what a decision pays to be logged: one Log call,
// with a file sink draining concurrently. When the queue is half full the
// timer stops until the drainer catches up, so no event is dropped and ns/op
// is the cost of a Log that is accepted. e2e-ns/event is the wall time from
// the first Log to a completed Close (every event masked, encoded, written
// and fsynced) divided by the number of events: the sink's sustained cost.
// Since the drainer is far slower than Log, a run takes about
// e2e-ns/event ÷ ns/op times the bench time; -benchtime=200000x keeps it short.
func BenchmarkLog(b *testing.B) {
	path := filepath.Join(b.TempDir(), "decisions.log")
	l, err := New(Config{FilePath: path, BufferSize: 1 << 16, Cluster: "leaf.example.com", Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	s := l.Sinks()[0]
	ev := testEvent(1)
	ev.DecisionID = ""
	ev.Metrics = map[string]any{"timer_rego_query_eval_ns": 41234}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	b.ResetTimer()
	for i := range b.N {
		l.Log(ev)
		if i%1024 == 1023 && len(s.queue) > cap(s.queue)/2 {
			b.StopTimer()
			for len(s.queue) > cap(s.queue)/8 {
				<-tick.C // poll without taking a core from the drainer
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		b.Fatal(err)
	}
	if s.Dropped() != 0 || s.Delivered() != uint64(b.N) {
		b.Fatalf("delivered %d, dropped %d of %d", s.Delivered(), s.Dropped(), b.N)
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N), "e2e-ns/event")
}
