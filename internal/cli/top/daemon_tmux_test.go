package top

import (
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestRealTerminalRealDaemon runs the real `refrakt top` in tmux against a
// real `refrakt serve` (memory backend, no workers, so enqueued jobs stay
// pending): it shows the pending count and the key of a bucket the test
// made busy, says disconnected after the daemon is killed and keeps
// running, and exits 0 on q.
func TestRealTerminalRealDaemon(t *testing.T) {
	d := daemontest.Start(t, nil, "--workers", "0")
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	if code := callDaemon(t, d, "GET", "/api/obs/snapshot", ""); code != http.StatusOK {
		t.Fatalf("GET /api/obs/snapshot: HTTP %d", code)
	}

	const pending = 13
	for range pending {
		if code := callDaemon(t, d, "POST", "/api/dev/jobs/enqueue", `{"type":"ping","payload":{}}`); code/100 != 2 {
			t.Fatalf("enqueue: HTTP %d", code)
		}
	}
	// rl-test allows 3 a minute per IP: the 4th and 5th are refused, so the
	// bucket has strikes and is among the busiest.
	for range 5 {
		callDaemon(t, d, "GET", "/api/dev/rl-test", "")
	}

	term := startTerminal(t, []string{"REFRAKT_SERVER=" + d.URL, "REFRAKT_TOKEN=" + d.Token, "XDG_STATE_HOME=" + t.TempDir()},
		daemontest.Binary(t), "top", "--interval", "200ms")
	screen := term.waitScreen("first data", "default", "rl-test:ip:127.0.0.1")
	if row := regexp.MustCompile(`default +13 `); !row.MatchString(screen) {
		t.Fatalf("no queue row with %d pending; screen:\n%s", pending, screen)
	}

	d.Signal(syscall.SIGKILL)
	d.Wait(10 * time.Second)
	screen = term.waitScreen("daemon killed", "disconnected:", "rl-test:ip:127.0.0.1")
	// The dead daemon's readiness, uptime and workers are not shown stale.
	if first, _, _ := strings.Cut(screen, "\n"); strings.Contains(first, "ready") || strings.Contains(first, "workers") {
		t.Errorf("header %q while disconnected, want no readiness or workers", first)
	}
	if term.exited() {
		t.Fatalf("top exited when the daemon died; screen:\n%s", term.screen())
	}

	term.quit()
}

// TestRealTerminalRedisSource drives `refrakt top --redis` in a real
// terminal: it shows the shared state a daemon on that Redis left there,
// says disconnected when Redis dies, and recovers when it is back.
func TestRealTerminalRedisSource(t *testing.T) {
	r := redistest.Start(t)
	d := daemontest.Start(t, []string{"QUEUE_URL=" + r.URL()}, "--workers", "0")
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	for range 7 {
		if code := callDaemon(t, d, "POST", "/api/dev/jobs/enqueue", `{"type":"ping","queue":"mail"}`); code/100 != 2 {
			t.Fatalf("enqueue: HTTP %d", code)
		}
	}
	for range 4 {
		callDaemon(t, d, "GET", "/api/dev/rl-test", "")
	}
	term := startTerminal(t, []string{"XDG_STATE_HOME=" + t.TempDir()},
		daemontest.Binary(t), "top", "--redis", r.URL(), "--interval", "200ms")
	screen := term.waitScreen("first data", "mail", "rl-test:ip:127.0.0.1")
	if row := regexp.MustCompile(`mail +7 `); !row.MatchString(screen) {
		t.Fatalf("no queue row with 7 pending; screen:\n%s", screen)
	}
	// No daemon behind it: the header says so, with no uptime or workers.
	if first, _, _ := strings.Cut(screen, "\n"); !strings.Contains(first, "read directly, no daemon · redis") ||
		strings.Contains(first, "up ") || strings.Contains(first, "workers") {
		t.Errorf("header %q, want it to say Redis is read directly, with no uptime or workers", first)
	}
	r.Stop()
	term.waitScreen("redis stopped", "disconnected:")
	if term.exited() {
		t.Fatalf("top exited when Redis died; screen:\n%s", term.screen())
	}
	r.Restart() // empty again: persistence is off in tests
	deadline := time.Now().Add(20 * time.Second)
	for strings.Contains(term.screen(), "disconnected:") {
		if time.Now().After(deadline) {
			t.Fatalf("top did not recover after Redis came back; screen:\n%s", term.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
	term.quit()
}

// callDaemon sends one authorized request to d and returns its status.
func callDaemon(t *testing.T, d *daemontest.Daemon, method, path, body string) int {
	t.Helper()
	resp, _ := d.Call(method, path, body)
	return resp.StatusCode
}
