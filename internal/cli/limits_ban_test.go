package cli

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLimitsBanFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     *LimitsBanOptions
		wantCode int
	}{
		{"an hour", []string{"run:ip:203.0.113.7", "--for", "1h"}, &LimitsBanOptions{Key: "run:ip:203.0.113.7", For: time.Hour}, ExitOK},
		{"a second", []string{"run:ip:203.0.113.7", "--for", "1s"}, &LimitsBanOptions{Key: "run:ip:203.0.113.7", For: time.Second}, ExitOK},
		{"30 days", []string{"run:user:u1", "--for", "720h"}, &LimitsBanOptions{Key: "run:user:u1", For: 720 * time.Hour}, ExitOK},
		{"no --for", []string{"run:ip:203.0.113.7"}, nil, ExitUsage},
		{"no key", []string{"--for", "1h"}, nil, ExitUsage},
		{"two keys", []string{"run:ip:203.0.113.7", "run:ip:203.0.113.8", "--for", "1h"}, nil, ExitUsage},
		{"zero", []string{"run:ip:203.0.113.7", "--for", "0s"}, nil, ExitUsage},
		{"negative", []string{"run:ip:203.0.113.7", "--for", "-1h"}, nil, ExitUsage},
		{"under a second", []string{"run:ip:203.0.113.7", "--for", "500ms"}, nil, ExitUsage},
		{"not whole seconds", []string{"run:ip:203.0.113.7", "--for", "1500ms"}, nil, ExitUsage},
		{"past 30 days", []string{"run:ip:203.0.113.7", "--for", "721h"}, nil, ExitUsage},
		{"not a duration", []string{"run:ip:203.0.113.7", "--for", "3600"}, nil, ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkParse(t, newLimitsBanCmd, tt.args, tt.want, tt.wantCode)
		})
	}
}

// TestLimitsBanRejects: a --for out of bounds is refused in one line naming
// the flag, before any daemon is asked (the address is closed).
func TestLimitsBanRejects(t *testing.T) {
	code, _, stderr := runCLI(t, map[string]string{"REFRAKT_SERVER": "http://127.0.0.1:9"}, "limits", "ban", "run:ip:203.0.113.7", "--for", "1500ms")
	if code != ExitUsage {
		t.Fatalf("exit %d, want %d; stderr %q", code, ExitUsage, stderr)
	}
	if diff := cmp.Diff("refrakt: --for must be a whole number of seconds from 1s to 720h, got 1.5s\n", stderr); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}
}
