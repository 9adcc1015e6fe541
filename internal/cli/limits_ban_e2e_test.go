package cli

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestE2ELimitsBan runs the real binary's `limits ban` against a real
// daemon on a real Redis, over the daemon's API and over Redis directly: a
// line for people, the answer with -o json, the client refused by the
// daemon until `limits reset` lifts the ban; `limits get` shows it banned;
// a bad key or the global scope's key exit 2, a refused token 1, a backend
// out of reach 3.
func TestE2ELimitsBan(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL()}, "--workers", "0")
	for i, de := range drivers(t, d, r, "refrakt:") {
		t.Run(de.name, func(t *testing.T) {
			ip := "203.0.113." + string(rune('1'+i))
			key := "rl-test:ip:" + ip
			if code := rlTest(t, d, ip); code != http.StatusOK {
				t.Fatalf("before the ban: %d", code)
			}
			code, out, errOut := binCLI(t, de.env, "limits", "ban", key, "--for", "1h")
			line := regexp.MustCompile(`^` + regexp.QuoteMeta(key) + ` banned until (\S+)\n$`).FindStringSubmatch(out)
			if code != ExitOK || errOut != "" || line == nil {
				t.Fatalf("limits ban: exit %d, stdout %q, stderr %q; want one line %q", code, out, errOut, key+" banned until …")
			}
			until, err := time.Parse(time.RFC3339, line[1])
			if err != nil || time.Until(until) < 59*time.Minute || time.Until(until) > time.Hour+time.Second {
				t.Errorf("banned until %q (%v), want about an hour from now", line[1], err)
			}
			for range 2 {
				if code := rlTest(t, d, ip); code != http.StatusTooManyRequests {
					t.Errorf("the banned client: %d, want 429", code)
				}
			}
			if b := bucketJSON(t, de.env, key); b.State != "banned" || b.BannedUntil == nil || b.BannedUntil.Sub(until).Abs() > time.Second {
				t.Errorf("limits get: %+v, want banned until %s", b, until)
			}

			code, out, errOut = binCLI(t, de.env, "limits", "ban", key, "--for", "30m", "-o", "json")
			var v BanView
			if code != ExitOK || errOut != "" || json.Unmarshal([]byte(out), &v) != nil {
				t.Fatalf("limits ban -o json: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			// A shorter ban keeps the longer one.
			if v.Banned != key || v.BannedUntil.Sub(until).Abs() > time.Second {
				t.Errorf("limits ban --for 30m -o json: %+v, want %s until %s (the hour's ban kept)", v, key, until)
			}

			if code, _, errOut := binCLI(t, de.env, "limits", "reset", key); code != ExitOK {
				t.Fatalf("limits reset: exit %d, stderr %q", code, errOut)
			}
			for deadline := time.Now().Add(5 * time.Second); rlTest(t, d, ip) != http.StatusOK; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the client still refused 5s after limits reset")
				}
			}

			for _, bad := range []struct{ key, want string }{
				{"rl-test:ip:300.1.2.3", "is not an IP address"},
				{"run:global:all", "never banned"},
				{"nope:ip:203.0.113.1", "unknown limit"},
			} {
				code, out, errOut := binCLI(t, de.env, "limits", "ban", bad.key, "--for", "1h")
				if code != ExitUsage || out != "" || !regexp.MustCompile(`^refrakt: .*`+regexp.QuoteMeta(bad.want)+`.*\n$`).MatchString(errOut) {
					t.Errorf("limits ban %s: exit %d, stdout %q, stderr %q; want exit 2 and one line with %q", bad.key, code, out, errOut, bad.want)
				}
			}
		})
	}

	state := t.TempDir()
	for _, c := range []struct {
		name string
		env  map[string]string
		want int
	}{
		{"a wrong token", map[string]string{"REFRAKT_SERVER": d.URL, "REFRAKT_TOKEN": "not-the-token", "XDG_STATE_HOME": state, "HOME": state}, ExitFailed},
		{"no daemon", map[string]string{"REFRAKT_SERVER": "http://" + daemontest.ClosedAddr(t), "REFRAKT_TOKEN": "x", "XDG_STATE_HOME": state, "HOME": state}, ExitUnreachable},
		{"no redis", map[string]string{"REFRAKT_REDIS": "redis://" + daemontest.ClosedAddr(t), "XDG_STATE_HOME": state, "HOME": state}, ExitUnreachable},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := binCLI(t, c.env, "limits", "ban", "rl-test:ip:203.0.113.9", "--for", "1h")
			if code != c.want || out != "" || errOut == "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and a line on stderr", code, out, errOut, c.want)
			}
		})
	}
	if code := rlTest(t, d, "203.0.113.9"); code != http.StatusOK {
		t.Errorf("a refused ban banned the client: %d", code)
	}
}

// TestLimitsBanEarlierDaemon: a daemon of an earlier version has no ban
// route and answers 404 (in its own JSON, or the plain mux page): the CLI
// says in one line that the daemon is too old, and exits 1.
func TestLimitsBanEarlierDaemon(t *testing.T) {
	forEachEarlierDaemon(t, func(t *testing.T, env map[string]string) {
		wantFail(t, env, ExitFailed, "does not know POST /api/dev/rate-limits/ban (it is of an earlier version, too old to ban a key): ban over Redis with --redis, or upgrade the daemon",
			"limits", "ban", "run:ip:203.0.113.7", "--for", "1h")
	})
}

// TestE2ELimitsBanWhileLimitingOff: over --redis with no daemon publishing
// and the shell's RATE_LIMIT_ENABLED=false, the ban is stored and the CLI
// warns on stderr that it is not enforced (as limits set does); the line on
// stdout is unchanged.
func TestE2ELimitsBanWhileLimitingOff(t *testing.T) {
	r := redistest.Start(t)
	state := t.TempDir()
	env := map[string]string{"REFRAKT_REDIS": r.URL(), "RATE_LIMIT_ENABLED": "false", "XDG_STATE_HOME": state, "HOME": state}
	code, out, errOut := binCLI(t, env, "limits", "ban", "rl-test:ip:203.0.113.60", "--for", "1h")
	if code != ExitOK || !strings.HasPrefix(out, "rl-test:ip:203.0.113.60 banned until ") || !strings.Contains(errOut, "RATE_LIMIT_ENABLED=false") {
		t.Errorf("exit %d, stdout %q, stderr %q; want the ban's line and a warning that limiting is off", code, out, errOut)
	}
}
