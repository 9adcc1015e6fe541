package top

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestRealTerminalRequeueAllDead drives the real `refrakt top`, through a
// real daemon on a real Redis and straight on that Redis: with dead jobs in
// queue Q and in another queue, A on a dead job of Q and y put every dead
// job of Q back to pending, the footer says how many, and the other
// queue's stay dead.
func TestRealTerminalRequeueAllDead(t *testing.T) {
	forEachTopSource(t, func(t *testing.T, d *daemontest.Daemon, name string, start func() *terminal) {
		q, other := "mail-"+name, "other-"+name
		dead := makeDead(t, d, q, 3)
		otherDead := makeDead(t, d, other, 2)

		term := start()
		term.waitScreen("first data", q, other)
		// Only Q's dead jobs in view, so the selected one is of Q.
		term.run("send-keys", "-t", "top", "/", q, "Enter", "Tab", "A")
		term.waitScreen("the prompt", "requeue every dead job of queue "+q+"? [y/N]")
		term.run("send-keys", "-t", "top", "y")
		term.waitScreen("the outcome", fmt.Sprintf("requeued %d dead jobs of queue %s", len(dead), q))

		slices.Sort(dead)
		if diff := cmp.Diff(dead, jobIDs(t, d, q, queue.StatusPending)); diff != "" {
			t.Errorf("pending jobs of %s (-want +got):\n%s", q, diff)
		}
		if got := jobIDs(t, d, q, queue.StatusDead); len(got) != 0 {
			t.Errorf("dead jobs of %s left: %v", q, got)
		}
		slices.Sort(otherDead)
		if diff := cmp.Diff(otherDead, jobIDs(t, d, other, queue.StatusDead)); diff != "" {
			t.Errorf("dead jobs of %s (-want +got):\n%s", other, diff)
		}
		term.quit()
	})
}

// forEachTopSource runs f with a real daemon (manual mode) on a real Redis,
// once for `refrakt top` through that daemon and once straight on that
// Redis: name is the source's ("daemon", "redis"), and start starts top on
// it in a real terminal.
func forEachTopSource(t *testing.T, f func(t *testing.T, d *daemontest.Daemon, name string, start func() *terminal)) {
	r := redistest.Start(t)
	d := daemontest.Start(t, []string{"QUEUE_URL=" + r.URL()}, "--workers", "0")
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	for _, src := range []struct {
		name string
		env  []string
		args []string
	}{
		{"daemon", []string{"REFRAKT_SERVER=" + d.URL, "REFRAKT_TOKEN=" + d.Token}, nil},
		{"redis", nil, []string{"--redis", r.URL()}},
	} {
		t.Run(src.name, func(t *testing.T) {
			f(t, d, src.name, func() *terminal {
				env := append([]string{"XDG_STATE_HOME=" + t.TempDir()}, src.env...)
				return startTerminal(t, env, append([]string{daemontest.Binary(t), "top", "--interval", "200ms"}, src.args...)...)
			})
		})
	}
}

// TestRealTerminalRequeueAllDeadEarlierDaemon: against a daemon of an
// earlier version, whose mux answers POST /api/dev/queues/requeue-dead with
// its plain 404, A and y say in the footer that the daemon is too old and
// what to do, and top runs on.
func TestRealTerminalRequeueAllDeadEarlierDaemon(t *testing.T) {
	srv, asked := earlierDaemon(t, "/api/dev/queues/requeue-dead")
	term := startTerminal(t, []string{"REFRAKT_SERVER=" + srv.URL, "REFRAKT_TOKEN=t0k", "XDG_STATE_HOME=" + t.TempDir()},
		daemontest.Binary(t), "top", "--interval", "200ms")
	term.waitScreen("first data", "1423")
	term.run("send-keys", "-t", "top", "Tab", "A")
	term.waitScreen("the prompt", "requeue every dead job of queue default? [y/N]")
	term.run("send-keys", "-t", "top", "y")
	term.waitScreen("the outcome", "requeue failed: the daemon is too old for it: upgrade it, or use top --redis")
	if !asked.Load() {
		t.Error("the daemon was not asked POST /api/dev/queues/requeue-dead")
	}
	term.quit()
}

// makeDead makes n fail jobs of queue q dead on d (in manual mode: each is
// run once, with no retry) and returns their ids.
func makeDead(t *testing.T, d *daemontest.Daemon, q string, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		resp, body := d.Call("POST", "/api/dev/jobs/enqueue", fmt.Sprintf(`{"type":"fail","queue":%q,"max_retries":0}`, q))
		var j queue.Job
		if resp.StatusCode/100 != 2 || json.Unmarshal(body, &j) != nil {
			t.Fatalf("enqueue: HTTP %d %s", resp.StatusCode, body)
		}
		resp, body = d.Call("POST", "/api/dev/jobs/"+j.ID+"/run", "")
		if resp.StatusCode/100 != 2 || json.Unmarshal(body, &j) != nil || j.Status != queue.StatusDead {
			t.Fatalf("run %s: HTTP %d %s, want it dead", j.ID, resp.StatusCode, body)
		}
		ids = append(ids, j.ID)
	}
	return ids
}

// jobIDs lists the ids of queue q's jobs of status s on d, sorted.
func jobIDs(t *testing.T, d *daemontest.Daemon, q string, s queue.Status) []string {
	t.Helper()
	resp, body := d.Call("GET", "/api/dev/jobs?queue="+q+"&status="+string(s), "")
	var list struct{ Jobs []queue.Job }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &list) != nil {
		t.Fatalf("list %s %s: HTTP %d %s", q, s, resp.StatusCode, body)
	}
	ids := []string{}
	for _, j := range list.Jobs {
		ids = append(ids, j.ID)
	}
	slices.Sort(ids)
	return ids
}

// earlierDaemon stands in for a daemon of an earlier version: it serves the
// snapshot and answers every other path with its mux's plain 404; asked
// says whether route was called.
func earlierDaemon(t *testing.T, route string) (*httptest.Server, *atomic.Bool) {
	t.Helper()
	snap := loadSnapshot(t)
	asked := &atomic.Bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/obs/snapshot" {
			if r.URL.Path == route {
				asked.Store(true)
			}
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(snap)
	}))
	t.Cleanup(srv.Close)
	return srv, asked
}
