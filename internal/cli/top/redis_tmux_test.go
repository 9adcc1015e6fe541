package top

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestRealTerminalRedisSourceMarksRefusals: `refrakt top --redis` marks a
// queue the daemons on that Redis refuse (`!`), by the admission bounds they
// publish there; it read the CLI's own, which are none, and marked nothing.
func TestRealTerminalRedisSourceMarksRefusals(t *testing.T) {
	r := redistest.Start(t)
	d := daemontest.Start(t, []string{"QUEUE_URL=" + r.URL(), "QUEUE_MAX_PENDING=3"}, "--workers", "0")
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	for range 3 {
		if code := callDaemon(t, d, "POST", "/api/dev/jobs/enqueue", `{"type":"ping","queue":"mail"}`); code/100 != 2 {
			t.Fatalf("enqueue: HTTP %d", code)
		}
	}
	if code := callDaemon(t, d, "POST", "/api/dev/jobs/enqueue", `{"type":"ping","queue":"idle"}`); code/100 != 2 {
		t.Fatalf("enqueue: HTTP %d", code)
	}
	term := startTerminal(t, []string{"XDG_STATE_HOME=" + t.TempDir()},
		daemontest.Binary(t), "top", "--redis", r.URL(), "--interval", "200ms")
	screen := term.waitScreen("first data", "mail", "idle")
	if row := regexp.MustCompile(`(?m)^[ >]!mail +3 `); !row.MatchString(screen) {
		t.Errorf("no mail row marked refusing (!) with 3 pending of QUEUE_MAX_PENDING=3; screen:\n%s", screen)
	}
	if row := regexp.MustCompile(`(?m)^[ >] idle +1 `); !row.MatchString(screen) {
		t.Errorf("no unmarked idle row with 1 pending; screen:\n%s", screen)
	}
	term.quit()
}

// TestRealTerminalRedisDownAtStart: `refrakt top --redis` started while
// Redis is down runs, says disconnected, and shows the data once Redis is
// up, as `top --server` does with a daemon down; it exited 3 at once.
func TestRealTerminalRedisDownAtStart(t *testing.T) {
	r := redistest.Start(t)
	r.Stop()
	term := startTerminal(t, []string{"XDG_STATE_HOME=" + t.TempDir()},
		daemontest.Binary(t), "top", "--redis", r.URL(), "--interval", "200ms")
	term.waitScreen("redis down", "disconnected:")
	r.Restart()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(term.screen(), "refreshed ") {
		if time.Now().After(deadline) || term.exited() {
			t.Fatalf("top did not connect once Redis was up; screen:\n%s", term.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
	term.quit()
}
