package top

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/refrakt/refrakt/internal/daemontest"
)

// rlTestAs calls the daemon's rate-limited probe as client ip (the daemon
// trusts loopback's CF-Connecting-IP) and returns the answer.
func rlTestAs(t *testing.T, d *daemontest.Daemon, ip string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, d.URL+"/api/dev/rl-test", nil)
	req.Header.Set("Authorization", "Bearer "+d.Token)
	req.Header.Set("CF-Connecting-IP", ip)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestRealTerminalBan drives the real `refrakt top`, through a real daemon
// on a real Redis and straight on that Redis: B on a bucket asks "ban KEY
// for 1h? [y/N]", y bans it, the footer says so, and the daemon then
// refuses that client for an hour.
func TestRealTerminalBan(t *testing.T) {
	forEachTopSource(t, func(t *testing.T, d *daemontest.Daemon, name string, start func() *terminal) {
		ip := map[string]string{"daemon": "203.0.113.61", "redis": "203.0.113.62"}[name]
		key := "rl-test:ip:" + ip
		if resp := rlTestAs(t, d, ip); resp.StatusCode != http.StatusOK {
			t.Fatalf("before the ban: %d", resp.StatusCode)
		}
		term := start()
		term.waitScreen("first data", key)
		term.run("send-keys", "-t", "top", "/", key, "Enter", "Tab", "Tab", "B")
		term.waitScreen("the prompt", "ban "+key+" for 1h? [y/N]")
		term.run("send-keys", "-t", "top", "y")
		term.waitScreen("the outcome", "bucket "+key+" banned for 1h")
		resp := rlTestAs(t, d, ip)
		if retry, _ := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != http.StatusTooManyRequests || retry < 3590 || retry > 3600 {
			t.Errorf("the banned client: %d, Retry-After %q; want 429 and an hour", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		term.quit()
	})
}

// TestRealTerminalBanEarlierDaemon: against a daemon of an earlier version,
// whose mux answers POST /api/dev/rate-limits/ban with its plain 404, B and
// y say in the footer that the daemon is too old and what to do.
func TestRealTerminalBanEarlierDaemon(t *testing.T) {
	srv, asked := earlierDaemon(t, "/api/dev/rate-limits/ban")
	term := startTerminal(t, []string{"REFRAKT_SERVER=" + srv.URL, "REFRAKT_TOKEN=t0k", "XDG_STATE_HOME=" + t.TempDir()},
		daemontest.Binary(t), "top", "--interval", "200ms")
	term.waitScreen("first data", "1423")
	term.run("send-keys", "-t", "top", "Tab", "Tab", "B")
	term.waitScreen("the prompt", "ban run:ip:203.0.113.7 for 1h? [y/N]")
	term.run("send-keys", "-t", "top", "y")
	term.waitScreen("the outcome", "ban failed: the daemon is too old for it: upgrade it, or use top --redis")
	if !asked.Load() {
		t.Error("the daemon was not asked POST /api/dev/rate-limits/ban")
	}
	term.quit()
}
