package cli

import (
	"testing"

	"github.com/refrakt/refrakt/internal/redistest"
)

// TestRedisRestrictedUser: a user without the @dangerous commands, INFO
// among them, works over --redis as over a single server (the detection of
// a Cluster falls back silently); every command exited 3 "cannot reach".
func TestRedisRestrictedUser(t *testing.T) {
	r := redistest.Start(t)
	url := r.ACLUser(t, "app", "app-pw-0123", "~*", "&*", "+@all", "-@dangerous")
	env := map[string]string{"REFRAKT_REDIS": url}
	for _, args := range [][]string{
		{"jobs", "enqueue", "echo", "--payload", `"hi"`},
		{"jobs", "list"},
		{"limits", "set", "run:ip:10.0.0.1", "--capacity", "5", "--window", "1m"},
		{"limits", "get", "run"},
		{"limits", "unset", "run:ip:10.0.0.1"},
	} {
		if code, _, stderr := runCLI(t, env, args...); code != ExitOK || stderr != "" {
			t.Errorf("%v: exit %d, stderr %q; want 0 and nothing on stderr", args, code, stderr)
		}
	}
}
