// Package testenv holds the tests' policy for tools they need that the
// machine may lack (redis-server, tmux, promtool, nginx): make test installs them
// (scripts/ensure-*.sh); elsewhere a test without its tool is skipped,
// loudly, but under CI it fails, so that nobody skips it by accident.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Require returns the path of the command name, or, when it is missing,
// skips tb (saying why, with hint: how to get it) or fails it when the CI
// variable is set.
func Require(tb testing.TB, name, hint string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	Missing(tb, name+" is not installed: "+hint)
	return ""
}

// Missing skips tb with msg, loudly, or fails it with msg when the CI
// variable is set.
func Missing(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatal(msg)
	}
	tb.Skip("SKIPPING: " + msg)
}
