package top

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestRealTerminalPauseQueue drives the real `refrakt top`, through a real
// daemon on a real Redis and straight on that Redis: P and y on a queue
// pause it (the daemon's run-next of it is then a 409, its row says
// paused), and P and y again resume it.
func TestRealTerminalPauseQueue(t *testing.T) {
	r := redistest.Start(t)
	d := daemontest.Start(t, []string{"QUEUE_URL=" + r.URL()}, "--workers", "0")
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	sources := []struct {
		name string
		env  []string
		args []string
	}{
		{"daemon", []string{"REFRAKT_SERVER=" + d.URL, "REFRAKT_TOKEN=" + d.Token}, nil},
		{"redis", nil, []string{"--redis", r.URL()}},
	}
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			q := "held-" + src.name
			if resp, body := d.Call("POST", "/api/dev/jobs/enqueue", fmt.Sprintf(`{"type":"ping","queue":%q}`, q)); resp.StatusCode/100 != 2 {
				t.Fatalf("enqueue: HTTP %d %s", resp.StatusCode, body)
			}
			env := append([]string{"XDG_STATE_HOME=" + t.TempDir()}, src.env...)
			argv := append([]string{daemontest.Binary(t), "top", "--interval", "200ms"}, src.args...)
			term := startTerminal(t, env, argv...)
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
}
