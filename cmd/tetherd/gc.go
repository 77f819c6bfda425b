package main

import (
	"os"
	"runtime/debug"
)

// defaultGCPercent is tetherd's garbage-collection target (GOGC) when the environment sets
// none. A gateway relaying SSH allocates every byte it relays once more (x/crypto/ssh
// copies each packet it reads), while its live heap is mostly the policy engine's
// compiled bundle: at Go's default of 100 the collector re-scans that heap after every
// live-heap's worth of relayed bytes, which took a fifth of the root's and the leaf's CPU
// during an scp through them (docs/ARCHITECTURE.md, "scp through a leaf: where the CPU
// goes"). At 400 it runs a quarter as often; the heap may grow to 5× the live data instead
// of 2×. GOGC (including GOGC=100 for Go's default) and GOMEMLIMIT in the environment take
// precedence.
const defaultGCPercent = 400

// tuneGC applies defaultGCPercent unless GOGC is set, and returns the GOGC in effect.
func tuneGC() int {
	if v, ok := os.LookupEnv("GOGC"); ok && v != "" {
		cur := debug.SetGCPercent(100)
		debug.SetGCPercent(cur)
		return cur
	}
	debug.SetGCPercent(defaultGCPercent)
	return defaultGCPercent
}
