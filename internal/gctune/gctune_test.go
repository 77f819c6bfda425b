package gctune

import (
	"runtime/debug"
	"testing"
)

func TestApplyHonoursGOGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	if got := Apply(); got != Percent || debug.SetGCPercent(Percent) != Percent {
		t.Fatalf("no GOGC: Apply %d, want %d in effect", got, Percent)
	}
	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150) // the runtime reads GOGC at start; a test can only imitate it
	if got := Apply(); got != 150 || debug.SetGCPercent(150) != 150 {
		t.Fatalf("GOGC=150: Apply %d, want 150 kept", got)
	}
}
