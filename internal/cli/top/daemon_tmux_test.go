package top

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/daemontest"
)

// TestRealTerminalRealDaemon runs the real `refrakt top` in tmux against a
// real `refrakt serve` (memory backend, no workers, so enqueued jobs stay
// pending): it shows the pending count and the key of a bucket the test
// made busy, says disconnected after the daemon is killed and keeps
// running, and exits 0 on q. It skips, loudly, while the daemon has no
// GET /api/obs/snapshot.
func TestRealTerminalRealDaemon(t *testing.T) {
	d := daemontest.Start(t, nil, "--workers", "0")
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	call := func(method, path, body string) int {
		t.Helper()
		req, err := http.NewRequest(method, d.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+d.Token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	if call("GET", "/api/obs/snapshot", "") == http.StatusNotFound {
		t.Skip("SKIPPING the real-daemon terminal test: this daemon has no GET /api/obs/snapshot yet")
	}

	const pending = 13
	for range pending {
		if code := call("POST", "/api/dev/jobs/enqueue", `{"type":"ping","payload":{}}`); code/100 != 2 {
			t.Fatalf("enqueue: HTTP %d", code)
		}
	}
	// rl-test allows 3 a minute per IP: the 4th and 5th are refused, so the
	// bucket has strikes and is among the busiest.
	for range 5 {
		call("GET", "/api/dev/rl-test", "")
	}

	term := startTerminal(t, []string{"REFRAKT_SERVER=" + d.URL, "REFRAKT_TOKEN=" + d.Token, "XDG_STATE_HOME=" + t.TempDir()},
		daemontest.Binary(t), "top", "--interval", "200ms")
	screen := term.waitScreen("first data", "default", "rl-test:ip:127.0.0.1")
	if row := regexp.MustCompile(`default +13 `); !row.MatchString(screen) {
		t.Fatalf("no queue row with %d pending; screen:\n%s", pending, screen)
	}

	d.Signal(syscall.SIGKILL)
	d.Wait(10 * time.Second)
	term.waitScreen("daemon killed", "disconnected:", "rl-test:ip:127.0.0.1")
	if term.exited() {
		t.Fatalf("top exited when the daemon died; screen:\n%s", term.screen())
	}

	term.run("send-keys", "-t", "top", "q")
	if status := term.exitStatus(); status != "0" {
		t.Fatalf("exit status %s after q, want 0", status)
	}
}
