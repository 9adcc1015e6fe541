package cli

import (
	"strings"
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
		{"limits", "ban", "run:ip:10.0.0.2", "--for", "1m"},
	} {
		if code, _, stderr := runCLI(t, env, args...); code != ExitOK || stderr != "" {
			t.Errorf("%v: exit %d, stderr %q; want 0 and nothing on stderr", args, code, stderr)
		}
	}
}

// TestRedisRefusedUser: a wrong password, none, or a user denied a command
// refrakt needs is a setting to fix: exit 2, one line naming the problem
// ("authentication failed", "permission denied"), never "cannot reach", and
// never the password. It exited 3 "cannot reach …: WRONGPASS".
func TestRedisRefusedUser(t *testing.T) {
	r := redistest.Start(t)
	good := r.ACLUser(t, "app", "app-pw-0123", "~*", "&*", "+@all")
	noPing := r.ACLUser(t, "noping", "noping-pw-0123", "~*", "&*", "+@all", "-ping")
	noScripts := r.ACLUser(t, "noscripts", "noscripts-pw-0123", "~*", "&*", "+@all", "-evalsha", "-eval")
	if _, err := redistest.Do(r.Addr(), "CONFIG", "SET", "requirepass", "default-pw-0123"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		url  string
		args []string
		want string
	}{
		{"wrong password", strings.Replace(good, "app-pw-0123", "Wr0ngPass-77", 1), []string{"jobs", "list"}, "authentication failed: WRONGPASS"},
		{"unknown user", strings.Replace(good, "app:", "nobody:", 1), []string{"limits", "get"}, "authentication failed: WRONGPASS"},
		{"no password", r.URL(), []string{"jobs", "list"}, "authentication failed: NOAUTH"},
		{"no PING", noPing, []string{"jobs", "list"}, "permission denied: NOPERM"},
		{"no scripts", noScripts, []string{"jobs", "enqueue", "echo"}, "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, map[string]string{"REFRAKT_REDIS": tt.url}, tt.args...)
			if code != ExitUsage || !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 1 || strings.Contains(stderr, "cannot reach") {
				t.Errorf("exit %d, stderr %q; want exit 2 and one line with %q", code, stderr, tt.want)
			}
			for _, pw := range []string{"Wr0ngPass", "app-pw", "noping-pw", "noscripts-pw", "default-pw"} {
				if strings.Contains(stderr, pw) {
					t.Errorf("stderr %q shows a password", stderr)
				}
			}
		})
	}
}
