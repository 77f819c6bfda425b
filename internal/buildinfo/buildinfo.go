// Package buildinfo owns the version Tether's binaries report (tetherd version, tetherctl
// version, --version, the admin API's status): Version, set when linking with
//
//	go build -ldflags "-X github.com/tetherproject/tether/internal/buildinfo.Version=v1.2.3"
//
// and the VCS revision the Go toolchain records in the binary.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release; "-ldflags -X" replaces it. The default says a development build.
var Version = "0.1.0-dev"

// Info is a binary's version, as printed and as the admin API returns it.
type Info struct {
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from, when the toolchain recorded
	// one (go build in a git checkout); Modified says the work tree had changes.
	Revision  string `json:"revision,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
}

// Get returns this binary's Info.
func Get() Info {
	info := Info{Version: Version, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	return info
}

// String is the one line `PROG version` prints: "tetherctl v1.2.3 git:0123abcd go1.26.8".
func (i Info) String() string {
	s := i.Version
	if i.Revision != "" {
		rev := i.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		s += " git:" + rev
		if i.Modified {
			s += "-dirty"
		}
	}
	return fmt.Sprintf("%s %s", s, i.GoVersion)
}
