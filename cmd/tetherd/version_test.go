package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// TestVersion: tetherd version and tetherd --version print the version and the Go
// release; an unknown command is an error.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		cmd := rootCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(args)
		if err := cmd.Execute(); err != nil || !strings.HasPrefix(out.String(), "tetherd 0.1.0-dev ") || !strings.Contains(out.String(), runtime.Version()) {
			t.Fatalf("tetherd %v: %v %q", args, err, out.String())
		}
	}
	cmd := rootCommand()
	cmd.SetArgs([]string{"strat"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), `unknown command "strat"`) {
		t.Fatalf("tetherd strat: %v", err)
	}
}
