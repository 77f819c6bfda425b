package auth

import (
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
)

// TestConcurrentPasswordChecksShareABoundedMemory: every check of a password (and of the
// dummy hash, for an unknown user) takes argon2Memory (19 MiB). The failure limits bound
// the checks of one address, not those of many: an attacker with many addresses (one
// IPv6 /48 is 65536 /64s) ran as many checks at once as it sent, 19 MiB each, until the
// proxy ran out of memory. Not parallel: it measures the heap the runtime obtained.
func TestConcurrentPasswordChecksShareABoundedMemory(t *testing.T) {
	const concurrent = 24
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range concurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			dummyHash.matchesNow("a guess from another address")
		}()
	}
	close(start)
	wg.Wait()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapSys) - int64(before.HeapSys)
	limit := int64(300 << 20)
	t.Logf("%d concurrent checks: the heap obtained %d MiB more (each check takes %d MiB)", concurrent, grew>>20, argonMemory>>10)
	if grew > limit {
		t.Fatalf("%d concurrent password checks made the heap grow by %d MiB: they are not bounded (want less than %d MiB)", concurrent, grew>>20, limit>>20)
	}
}
