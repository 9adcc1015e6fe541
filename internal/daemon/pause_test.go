package daemon

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestPauseRoutes: POST /api/dev/queues/pause?queue=Q and /resume answer
// the queue, whether it is paused and whether the call changed that (a
// second pause changes nothing); while paused, run-next of the queue is a
// 409 saying how to resume, run-next of any queue skips it, an enqueue is
// still accepted, and /api/obs/jobs and refrakt_queue_paused show it; each
// call is logged once with its route and no token. Bad input is a 400, an
// unknown queue a 404, and the routes want the developer token.
func TestPauseRoutes(t *testing.T) {
	var logged syncBuffer
	s, err := NewServer(Deps{Config: testConfig(), Logger: slog.New(slog.NewTextHandler(&logged, nil))}) // manual mode
	if err != nil {
		t.Fatal(err)
	}
	enqueue := func(q string) string { return devEnqueuePing(t, s, q) }
	first := enqueue("mail")
	pausedGauge := func() string {
		t.Helper()
		s.sampleQueues(context.Background())
		return grep(scrape(t, s), `refrakt_queue_paused{queue="mail"}`)
	}
	if g := pausedGauge(); g != `refrakt_queue_paused{queue="mail"} 0` {
		t.Errorf("gauge of a running queue: %q", g)
	}

	for _, tt := range []struct {
		path string
		want map[string]any
	}{
		{"/api/dev/queues/pause?queue=mail", map[string]any{"queue": "mail", "paused": true, "changed": true}},
		{"/api/dev/queues/pause?queue=mail", map[string]any{"queue": "mail", "paused": true, "changed": false}},
	} {
		resp, body := do(t, s, "POST", tt.path, devToken, "")
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d %v", tt.path, resp.StatusCode, body)
		}
		if d := cmp.Diff(tt.want, body); d != "" {
			t.Errorf("POST %s (-want +got):\n%s", tt.path, d)
		}
	}
	second := enqueue("mail") // accepted while paused
	resp, body := do(t, s, "POST", "/api/dev/jobs/run-next?queue=mail", devToken, "")
	if resp.StatusCode != 409 || errCode(body) != "conflict" || !strings.Contains(errMessage(body), "paused") ||
		!strings.Contains(errMessage(body), "refrakt jobs resume mail") {
		t.Errorf("run-next of the paused queue: %d %v, want 409 conflict saying it is paused and how to resume", resp.StatusCode, body)
	}
	if resp, body := do(t, s, "POST", "/api/dev/jobs/run-next", devToken, ""); resp.StatusCode != 404 {
		t.Errorf("run-next of any queue, only a paused one with jobs: %d %v, want 404 (no pending job)", resp.StatusCode, body)
	}
	_, ov := do(t, s, "GET", "/api/obs/jobs", opToken, "")
	var gauges []any
	for _, q := range ov["queues"].([]any) {
		if m := q.(map[string]any); m["queue"] == "mail" {
			gauges = []any{m["paused"], m["pending"]}
		}
	}
	if d := cmp.Diff([]any{true, 2.0}, gauges); d != "" {
		t.Errorf("/api/obs/jobs mail paused, pending (-want +got):\n%s", d)
	}
	if g := pausedGauge(); g != `refrakt_queue_paused{queue="mail"} 1` {
		t.Errorf("gauge of a paused queue: %q", g)
	}

	resp, body = do(t, s, "POST", "/api/dev/queues/resume?queue=mail", devToken, "")
	if d := cmp.Diff(map[string]any{"queue": "mail", "paused": false, "changed": true}, body); resp.StatusCode != 200 || d != "" {
		t.Errorf("resume: %d (-want +got):\n%s", resp.StatusCode, d)
	}
	_, body = do(t, s, "POST", "/api/dev/queues/resume?queue=mail", devToken, "")
	if d := cmp.Diff(map[string]any{"queue": "mail", "paused": false, "changed": false}, body); d != "" {
		t.Errorf("resume again (-want +got):\n%s", d)
	}
	for _, id := range []string{first, second} {
		if resp, j := do(t, s, "POST", "/api/dev/jobs/run-next?queue=mail", devToken, ""); resp.StatusCode != 200 || str(j, "id") != id {
			t.Errorf("run-next after the resume: %d %v, want job %s", resp.StatusCode, j, id)
		}
	}
	if g := pausedGauge(); g != `refrakt_queue_paused{queue="mail"} 0` {
		t.Errorf("gauge after the resume: %q", g)
	}
	var lines []string
	for _, l := range strings.Split(logged.String(), "\n") {
		if strings.Contains(l, `msg="queue paused"`) || strings.Contains(l, `msg="queue resumed"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 4 || !strings.Contains(lines[0], `route="POST /api/dev/queues/pause"`) ||
		!strings.Contains(lines[2], `route="POST /api/dev/queues/resume"`) || strings.Contains(logged.String(), devToken) {
		t.Errorf("log: %d pause/resume lines, want 4 naming their route and no token:\n%s", len(lines), strings.Join(lines, "\n"))
	}

	for _, route := range []string{"pause", "resume"} {
		p := "/api/dev/queues/" + route
		for _, tt := range []struct {
			name, path, token, body string
			code                    int
			err                     string
		}{
			{"unknown queue", p + "?queue=nope", devToken, "", 404, "not_found"},
			{"no queue", p, devToken, "", 400, "invalid"},
			{"empty queue", p + "?queue=", devToken, "", 400, "invalid"},
			{"bad queue name", p + "?queue=a%20b", devToken, "", 400, "invalid"},
			{"repeated queue", p + "?queue=mail&queue=other", devToken, "", 400, "invalid"},
			{"unknown parameter", p + "?queue=mail&all=1", devToken, "", 400, "invalid"},
			{"a body", p + "?queue=mail", devToken, `{"queue":"mail"}`, 400, "invalid"},
			{"no token", p + "?queue=mail", "", "", 401, "unauthorized"},
			{"operator token", p + "?queue=mail", opToken, "", 403, "forbidden"},
		} {
			t.Run(route+" "+tt.name, func(t *testing.T) {
				if resp, body := do(t, s, "POST", tt.path, tt.token, tt.body); resp.StatusCode != tt.code || errCode(body) != tt.err {
					t.Errorf("POST %s: %d %v, want %d %s", tt.path, resp.StatusCode, body, tt.code, tt.err)
				}
			})
		}
	}
	if _, body := do(t, s, "GET", "/api/obs/jobs", opToken, ""); strings.Contains(strings.ToLower(strings.Join(queueNames(body), ",")), "nope") {
		t.Errorf("pausing an unknown queue made it: %v", queueNames(body))
	}
}

func queueNames(ov map[string]any) []string {
	var out []string
	qs, _ := ov["queues"].([]any)
	for _, q := range qs {
		out = append(out, str(q.(map[string]any), "queue"))
	}
	return out
}

// TestPausedQueueWorkers: the workers of a daemon run nothing of a paused
// queue (its jobs stay pending while another queue's run), and run its
// jobs promptly once it is resumed.
func TestPausedQueueWorkers(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) { testPausedQueueWorkers(t, backend) })
	}
}

func testPausedQueueWorkers(t *testing.T, backend string) {
	workers := func(c *config.Config) {
		c.RateLimitEnabled = false
		c.WorkerConcurrency = 2
		c.TickInterval = 20 * time.Millisecond
		c.JobLease = time.Second
		c.ShutdownTimeout = time.Second
	}
	var s *Server
	if backend == "redis" {
		s, _ = newRedisServer(t, redistest.Start(t), workers)
	} else {
		s = newTestServer(t, workers)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	enqueue := func(q string) string { return devEnqueuePing(t, s, q) }
	status := func(id string) string {
		_, j := do(t, s, "GET", "/run/"+id, "", "")
		return str(j, "status")
	}
	// The queue must exist to be paused: its first job runs.
	warm := enqueue("held")
	waitFor(t, "the first job of held to succeed", func() bool { return status(warm) == "succeeded" })
	if resp, body := do(t, s, "POST", "/api/dev/queues/pause?queue=held", devToken, ""); resp.StatusCode != 200 {
		t.Fatalf("pause: %d %v", resp.StatusCode, body)
	}
	var held []string
	for range 5 {
		held = append(held, enqueue("held"))
	}
	other := enqueue("other")
	waitFor(t, "the other queue's job to succeed", func() bool { return status(other) == "succeeded" })
	time.Sleep(300 * time.Millisecond) // ticks and fetches go on
	for _, id := range held {
		if st := status(id); st != "pending" {
			t.Errorf("job %s of the paused queue is %s, want pending", id, st)
		}
	}
	if resp, body := do(t, s, "POST", "/api/dev/queues/resume?queue=held", devToken, ""); resp.StatusCode != 200 {
		t.Fatalf("resume: %d %v", resp.StatusCode, body)
	}
	resumed := time.Now()
	waitFor(t, "the paused queue's jobs to succeed after the resume", func() bool {
		for _, id := range held {
			if status(id) != "succeeded" {
				return false
			}
		}
		return true
	})
	if d := time.Since(resumed); d > 5*time.Second {
		t.Errorf("the jobs ran %v after the resume, want promptly", d)
	}
}

// devEnqueuePing enqueues a ping job in queue q through the developer
// enqueue and returns its id.
func devEnqueuePing(t *testing.T, s *Server, q string) string {
	t.Helper()
	resp, j := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping","queue":"`+q+`"}`)
	if resp.StatusCode != 202 {
		t.Fatalf("enqueue in %s: %d %v", q, resp.StatusCode, j)
	}
	return str(j, "id")
}
