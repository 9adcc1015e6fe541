package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestUnknownEnv (review lifecycle #13): REFRAKT_* variables no part of
// refrakt reads are named, once each, with the known name they most likely
// stand for when one is obvious; the settings, the CLI's variables and
// other prefixes are not.
func TestUnknownEnv(t *testing.T) {
	environ := []string{
		"REFRAKT_WORKERS=9",             // a flag of serve written as a variable
		"REFRAKT_LOG_LEVEL=debug",       // a setting with a prefix it lacks
		"REFRAKT_QUEUE_URL=redis://x",   // the same
		"REFRAKT_DEVELOPER_TOKN=s3cr3t", // a typo
		"REFRAKT_WORKER_CONCURENCY=9",   // a typo of a setting without the prefix
		"REFRAKT_FROBNICATE=1",          // nothing near
		"REFRAKT_FROBNICATE=2",          // twice: named once
		"REFRAKT_ADDR=:0", "REFRAKT_PREFIX=x:", "REFRAKT_MAX_IN_FLIGHT=5", "REFRAKT_DEVELOPER_TOKEN=t", "REFRAKT_OPERATOR_TOKEN=o",
		"REFRAKT_SERVER=http://x", "REFRAKT_TOKEN=t", "REFRAKT_REDIS=redis://x", "REFRAKT_SOAK=1",
		"WORKER_CONCURENCY=9", "HOME=/root", "REFRAKT", "=weird",
	}
	want := []UnknownVar{
		{"REFRAKT_DEVELOPER_TOKN", "REFRAKT_DEVELOPER_TOKEN"},
		{"REFRAKT_FROBNICATE", ""},
		{"REFRAKT_LOG_LEVEL", "LOG_LEVEL"},
		{"REFRAKT_QUEUE_URL", "QUEUE_URL"},
		{"REFRAKT_WORKERS", "WORKER_CONCURRENCY"},
		{"REFRAKT_WORKER_CONCURENCY", "WORKER_CONCURRENCY"},
	}
	if diff := cmp.Diff(want, UnknownEnv(environ)); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if got := UnknownEnv([]string{"PATH=/bin", "REFRAKT_ADDR=:0"}); len(got) != 0 {
		t.Errorf("known variables reported: %v", got)
	}
}
