package top

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/refrakt/refrakt/internal/daemontest"
)

// TestRealTerminalPauseQueue drives the real `refrakt top`, through a real
// daemon on a real Redis and straight on that Redis: P and y on a queue
// pause it (the daemon's run-next of it is then a 409, its row says
// paused), and P and y again resume it.
func TestRealTerminalPauseQueue(t *testing.T) {
	forEachTopSource(t, func(t *testing.T, d *daemontest.Daemon, name string, start func() *terminal) {
		q := "held-" + name
		if resp, body := d.Call("POST", "/api/dev/jobs/enqueue", fmt.Sprintf(`{"type":"ping","queue":%q}`, q)); resp.StatusCode/100 != 2 {
			t.Fatalf("enqueue: HTTP %d %s", resp.StatusCode, body)
		}
		term := start()
		term.waitScreen("first data", q)
		term.run("send-keys", "-t", "top", "/", q, "Enter", "P")
		term.waitScreen("the pause prompt", "pause queue "+q+"? [y/N]")
		term.run("send-keys", "-t", "top", "y")
		term.waitScreen("the pause", "queue "+q+" paused", q+" (paused)")
		if resp, body := d.Call("POST", "/api/dev/jobs/run-next?queue="+q, ""); resp.StatusCode != http.StatusConflict {
			t.Errorf("run-next of the paused queue: HTTP %d %s, want 409", resp.StatusCode, body)
		}
		term.run("send-keys", "-t", "top", "P")
		term.waitScreen("the resume prompt", "resume queue "+q+"? [y/N]")
		term.run("send-keys", "-t", "top", "y")
		term.waitScreen("the resume", "queue "+q+" resumed")
		if resp, body := d.Call("POST", "/api/dev/jobs/run-next?queue="+q, ""); resp.StatusCode != http.StatusOK {
			t.Errorf("run-next of the resumed queue: HTTP %d %s, want 200", resp.StatusCode, body)
		}
		term.quit()
	})
}
