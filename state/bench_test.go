package state_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tetherproject/tether/state"
)

// BenchmarkStore measures single-client latency of get, put and
// compare-and-swap on both stores, reporting p50 and p99 next to the mean:
//
//	go test ./state -run '^$' -bench BenchmarkStore -benchtime 2000x
//
// The embedded store syncs every write to disk; the Redis store talks to a
// private redis-server on loopback with appendonly yes, appendfsync everysec.
func BenchmarkStore(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) state.Store
	}{
		{"embedded", func(b *testing.B) state.Store { return newEmbedded(b, b.TempDir()) }},
		{"redis", func(b *testing.B) state.Store { return newRedis(b, sharedRedis(b).Addr(), state.RedisConfig{}) }},
	}
	value := make([]byte, 256)
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			ctx := context.Background()
			s := st.open(b)
			b.Run("get", func(b *testing.B) {
				if _, err := s.Put(ctx, state.Item{Key: "bench/get", Value: value}); err != nil {
					b.Fatal(err)
				}
				measure(b, func(int) error {
					_, err := s.Get(ctx, "bench/get")
					return err
				})
			})
			b.Run("put", func(b *testing.B) {
				measure(b, func(i int) error {
					_, err := s.Put(ctx, state.Item{Key: fmt.Sprintf("bench/put/%d", i%1000), Value: value})
					return err
				})
			})
			b.Run("cas", func(b *testing.B) {
				cur, err := s.Put(ctx, state.Item{Key: "bench/cas", Value: value})
				if err != nil {
					b.Fatal(err)
				}
				measure(b, func(int) error {
					cur, err = s.CompareAndSwap(ctx, cur, state.Item{Key: "bench/cas", Value: value})
					return err
				})
			})
		})
	}
}

// measure times each call of op and reports the p50 and p99 latencies as
// custom metrics (in microseconds) beside the usual ns/op.
func measure(b *testing.B, op func(i int) error) {
	b.Helper()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		if err := op(i); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p int) float64 {
		return float64(lat[min(len(lat)-1, len(lat)*p/100)].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(50), "p50-µs")
	b.ReportMetric(pct(99), "p99-µs")
}
