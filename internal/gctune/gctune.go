// Package gctune sets the garbage collector's target for Tether's binaries, which relay
// SSH: x/crypto/ssh copies every packet it reads, so a relay allocates as many bytes as it
// carries while its live heap stays small, and at Go's default GOGC of 100 the collector
// runs after every live heap's worth of relayed bytes.
package gctune

import (
	"os"
	"runtime/debug"
)

// Percent is the GOGC the binaries use when the environment sets none: the collector runs
// a quarter as often as at Go's default, and the heap may grow to 5× the live data
// instead of 2×. Measured in docs/ARCHITECTURE.md, "scp through a leaf: where the CPU goes".
const Percent = 400

// Apply sets Percent unless GOGC is set in the environment (GOGC=100 restores Go's
// default; GOMEMLIMIT still caps the heap), and returns the GOGC in effect (-1: off).
func Apply() int {
	if v, ok := os.LookupEnv("GOGC"); ok && v != "" {
		cur := debug.SetGCPercent(100)
		debug.SetGCPercent(cur)
		return cur
	}
	debug.SetGCPercent(Percent)
	return Percent
}
