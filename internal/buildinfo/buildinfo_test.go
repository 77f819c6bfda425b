package buildinfo

import (
	"runtime"
	"testing"
)

// TestVersionString: the printed line carries the release, a short commit (marked dirty
// when the tree had changes) and the Go release; Get reads the package variable -ldflags
// sets.
func TestVersionString(t *testing.T) {
	for _, tc := range []struct {
		info Info
		want string
	}{
		{Info{Version: "v1.2.3", GoVersion: "go1.26.8"}, "v1.2.3 go1.26.8"},
		{Info{Version: "v1.2.3", Revision: "0123456789abcdef0123", GoVersion: "go1.26.8"}, "v1.2.3 git:0123456789ab go1.26.8"},
		{Info{Version: "v1.2.3", Revision: "abc", Modified: true, GoVersion: "go1.26.8"}, "v1.2.3 git:abc-dirty go1.26.8"},
	} {
		if got := tc.info.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.info, got, tc.want)
		}
	}
	old := Version
	defer func() { Version = old }()
	Version = "v9.9.9"
	if i := Get(); i.Version != "v9.9.9" || i.GoVersion != runtime.Version() {
		t.Fatalf("Get: %+v", i)
	}
}
