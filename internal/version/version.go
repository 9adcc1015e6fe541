// Package version tells which build of refrakt is running: the version and
// commit stamped by the Makefile, falling back to Go's build information.
package version

import (
	"runtime"
	"runtime/debug"
)

// These are set at link time by the Makefile:
// -ldflags "-X github.com/refrakt/refrakt/internal/version.version=v1.2.3 -X …commit=abc123".
var (
	version = ""
	commit  = ""
)

// Info describes one build.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
}

// Get returns the build's version, commit and Go version.
func Get() Info {
	info := Info{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && info.Commit == "" {
				info.Commit = s.Value
			}
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}
