package daemon

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/redistest"
)

// startJobsServer builds a server with workers running, stopped at cleanup.
func startJobsServer(t *testing.T, mutate ...func(*config.Config)) *Server {
	t.Helper()
	s := newTestServer(t, append([]func(*config.Config){func(c *config.Config) {
		c.WorkerConcurrency = 2
		c.TickInterval = 20 * time.Millisecond
		c.JobLease = time.Second
		c.ShutdownTimeout = time.Second
	}}, mutate...)...)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s
}

func str(m map[string]any, k string) string { v, _ := m[k].(string); return v }

func num(m map[string]any, k string) int { v, _ := m[k].(float64); return int(v) }

func TestRunAndGet(t *testing.T) {
	s := newTestServer(t)
	resp, body := do(t, s, "POST", "/run", "", `{"type":"echo","payload":{"x":1},"queue":"q1","max_retries":2,"delay_ms":0}`)
	if resp.StatusCode != 202 || str(body, "status") != "pending" || len(str(body, "id")) != 22 {
		t.Fatalf("POST /run: %d %v", resp.StatusCode, body)
	}
	id := str(body, "id")
	resp, body = do(t, s, "GET", "/run/"+id, "", "")
	if resp.StatusCode != 200 || str(body, "id") != id || str(body, "queue") != "q1" || num(body, "max_retries") != 2 {
		t.Fatalf("GET /run/{id}: %d %v", resp.StatusCode, body)
	}
	resp, body = do(t, s, "GET", "/run/nope", "", "")
	if resp.StatusCode != 404 || errCode(body) != "not_found" {
		t.Fatalf("GET of an unknown id: %d %v", resp.StatusCode, body)
	}
	tests := []struct{ name, body string }{
		{"unknown type", `{"type":"nope"}`},
		{"bad payload", `{"type":"sleep","payload":{"ms":"x"}}`},
		{"unknown field", `{"type":"ping","colour":"red"}`},
		{"wrong type", `{"type":"ping","max_retries":"3"}`},
		{"not JSON", `{`},
		{"bad queue", `{"type":"ping","queue":"{x}"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, s, "POST", "/run", "", tt.body)
			if resp.StatusCode != 400 || errCode(body) != "invalid" {
				t.Fatalf("%d %v, want 400 invalid", resp.StatusCode, body)
			}
		})
	}
	_, body = do(t, s, "GET", "/api/dev/jobs", devToken, "")
	if jobs, _ := body["jobs"].([]any); len(jobs) != 1 {
		t.Fatalf("jobs stored: %v, want only the valid one", body)
	}
}

// TestRemoveQueueRoute: DELETE /api/dev/queues?queue=Q removes an idle
// queue with its finished jobs (200), refuses one holding a job to run
// (409, naming it), and answers 404 for an unknown queue and 400 for a bad
// or missing name; the removed queue leaves /api/obs/jobs. A queue named
// ".." (a valid name) is removed like any other.
func TestRemoveQueueRoute(t *testing.T) {
	s := newTestServer(t) // manual mode
	_, j := do(t, s, "POST", "/run", "", `{"type":"ping","queue":"junk"}`)
	shown := func() bool {
		t.Helper()
		_, obs := do(t, s, "GET", "/api/obs/jobs", devToken, "")
		return strings.Contains(fmt.Sprint(obs["queues"]), "queue:junk")
	}
	if !shown() {
		t.Fatal("/api/obs/jobs does not show queue junk")
	}
	resp, body := do(t, s, "DELETE", "/api/dev/queues?queue=junk", devToken, "")
	if resp.StatusCode != 409 || errCode(body) != "conflict" || !strings.Contains(fmt.Sprint(body), "1 pending") {
		t.Fatalf("remove a queue with a pending job: %d %v", resp.StatusCode, body)
	}
	if resp, body := do(t, s, "POST", "/api/dev/jobs/"+str(j, "id")+"/cancel", devToken, ""); resp.StatusCode != 200 {
		t.Fatalf("cancel: %d %v", resp.StatusCode, body)
	}
	resp, body = do(t, s, "DELETE", "/api/dev/queues?queue=junk", devToken, "")
	if resp.StatusCode != 200 || str(body, "queue") != "junk" || num(body, "removed_jobs") != 1 {
		t.Fatalf("remove: %d %v", resp.StatusCode, body)
	}
	if resp, body := do(t, s, "GET", "/run/"+str(j, "id"), "", ""); resp.StatusCode != 404 {
		t.Errorf("the removed queue's job: %d %v, want 404", resp.StatusCode, body)
	}
	if shown() {
		t.Error("/api/obs/jobs still shows the removed queue")
	}
	for _, tt := range []struct {
		path string
		code int
		err  string
	}{
		{"/api/dev/queues?queue=junk", 404, "not_found"},
		{"/api/dev/queues?queue=a%20b", 400, "invalid"},
		{"/api/dev/queues", 400, "invalid"},
	} {
		if resp, body := do(t, s, "DELETE", tt.path, devToken, ""); resp.StatusCode != tt.code || errCode(body) != tt.err {
			t.Errorf("DELETE %s: %d %v, want %d %s", tt.path, resp.StatusCode, body, tt.code, tt.err)
		}
	}
	_, dots := do(t, s, "POST", "/run", "", `{"type":"ping","queue":".."}`)
	do(t, s, "POST", "/api/dev/jobs/"+str(dots, "id")+"/cancel", devToken, "")
	if resp, body := do(t, s, "DELETE", "/api/dev/queues?queue=..", devToken, ""); resp.StatusCode != 200 || str(body, "queue") != ".." {
		t.Errorf("remove queue \"..\": %d %v", resp.StatusCode, body)
	}
}

// TestEmptyQueueNameRefused (q27 #4): "queue":"" was taken as the default
// queue, while the CLI refuses an empty --queue ("names no queue"); it is a 400
// now on every enqueue route, and a queue left out or null is still the
// default one. DELETE /api/dev/queues without ?queue= said `queue "": want
// …` rather than that the parameter is required.
func TestEmptyQueueNameRefused(t *testing.T) {
	s := newTestServer(t) // manual mode
	for _, tt := range []struct{ method, path, token, body string }{
		{"POST", "/run", "", `{"type":"ping","queue":""}`},
		{"POST", "/assistant", "", `{"type":"ping","queue":"","timeout_ms":1}`},
		{"POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping","queue":""}`},
	} {
		resp, body := do(t, s, tt.method, tt.path, tt.token, tt.body)
		if resp.StatusCode != 400 || !strings.Contains(errMessage(body), `queue "" names no queue`) {
			t.Errorf("%s %s %s: %d %v, want 400 naming no queue", tt.method, tt.path, tt.body, resp.StatusCode, body)
		}
	}
	for _, body := range []string{`{"type":"ping"}`, `{"type":"ping","queue":null}`} {
		if resp, j := do(t, s, "POST", "/run", "", body); resp.StatusCode != 202 || str(j, "queue") != "default" {
			t.Errorf("POST /run %s: %d %v, want 202 in the default queue", body, resp.StatusCode, j)
		}
	}
	for _, path := range []string{"/api/dev/queues", "/api/dev/queues?queue="} {
		resp, body := do(t, s, "DELETE", path, devToken, "")
		if resp.StatusCode != 400 || !strings.Contains(errMessage(body), "the query parameter queue is required") {
			t.Errorf("DELETE %s: %d %v, want 400 saying queue is required", path, resp.StatusCode, body)
		}
	}
}

func TestDevJobRoutes(t *testing.T) {
	s := newTestServer(t) // manual mode
	post := func(path, body string) (*http.Response, map[string]any) {
		t.Helper()
		return do(t, s, "POST", path, devToken, body)
	}
	_, a := post("/api/dev/jobs/enqueue", `{"type":"echo","payload":"a"}`)
	_, b := post("/api/dev/jobs/enqueue?source=cli", `{"type":"fail","max_retries":0,"queue":"other"}`)
	resp, later := post("/api/dev/jobs/enqueue", `{"type":"ping","delay_ms":60000}`)
	if resp.StatusCode != 202 || str(later, "status") != "scheduled" || str(b, "source") != "cli" {
		t.Fatalf("enqueue: %d %v %v", resp.StatusCode, later, b)
	}
	list := func(query string) []string {
		t.Helper()
		resp, body := do(t, s, "GET", "/api/dev/jobs"+query, devToken, "")
		if resp.StatusCode != 200 {
			t.Fatalf("list%s: %d %v", query, resp.StatusCode, body)
		}
		var ids []string
		for _, j := range body["jobs"].([]any) {
			ids = append(ids, str(j.(map[string]any), "id"))
		}
		return ids
	}
	if got := list("?queue=other"); len(got) != 1 || got[0] != str(b, "id") {
		t.Errorf("queue filter: %v", got)
	}
	if got := list("?status=scheduled"); len(got) != 1 || got[0] != str(later, "id") {
		t.Errorf("status filter: %v", got)
	}
	if got := list("?limit=2"); len(got) != 2 {
		t.Errorf("limit: %v", got)
	}
	for _, q := range []string{"?status=nope", "?limit=0", "?limit=x", "?limit=100000"} {
		if resp, body := do(t, s, "GET", "/api/dev/jobs"+q, devToken, ""); resp.StatusCode != 400 {
			t.Errorf("list%s: %d %v, want 400", q, resp.StatusCode, body)
		}
	}

	resp, got := post("/api/dev/jobs/run-next?queue=default", "")
	if resp.StatusCode != 200 || str(got, "id") != str(a, "id") || str(got, "status") != "succeeded" || str(got, "result") != "a" {
		t.Fatalf("run-next: %d %v", resp.StatusCode, got)
	}
	resp, got = post("/api/dev/jobs/run-next?queue=default", "")
	if resp.StatusCode != 404 {
		t.Fatalf("run-next with nothing pending: %d %v", resp.StatusCode, got)
	}
	resp, got = post("/api/dev/jobs/run-next", "")
	if resp.StatusCode != 200 || str(got, "status") != "dead" || str(got, "last_error") == "" {
		t.Fatalf("run-next of the failing job: %d %v", resp.StatusCode, got)
	}
	resp, got = post("/api/dev/jobs/"+str(b, "id")+"/requeue", "")
	if resp.StatusCode != 200 || str(got, "status") != "pending" {
		t.Fatalf("requeue: %d %v", resp.StatusCode, got)
	}
	resp, got = post("/api/dev/jobs/"+str(b, "id")+"/requeue", "")
	if resp.StatusCode != 409 || errCode(got) != "conflict" {
		t.Fatalf("requeue of a pending job: %d %v", resp.StatusCode, got)
	}
	resp, got = post("/api/dev/jobs/"+str(b, "id")+"/cancel", "")
	if resp.StatusCode != 200 || str(got, "status") != "cancelled" {
		t.Fatalf("cancel: %d %v", resp.StatusCode, got)
	}
	resp, got = post("/api/dev/jobs/"+str(b, "id")+"/cancel", "")
	if resp.StatusCode != 409 {
		t.Fatalf("cancel of a cancelled job: %d %v", resp.StatusCode, got)
	}
	resp, got = post("/api/dev/jobs/"+str(later, "id")+"/run", "")
	if resp.StatusCode != 200 || str(got, "status") != "succeeded" || str(got, "result") != "pong" {
		t.Fatalf("run ID of a scheduled job: %d %v", resp.StatusCode, got)
	}
	resp, got = post("/api/dev/jobs/"+str(later, "id")+"/run", "")
	if resp.StatusCode != 409 {
		t.Fatalf("run ID of a succeeded job: %d %v", resp.StatusCode, got)
	}
	resp, got = post("/api/dev/jobs/nope/run", "")
	if resp.StatusCode != 404 {
		t.Fatalf("run ID of an unknown job: %d %v", resp.StatusCode, got)
	}
	resp, got = post("/api/dev/jobs/tick", "")
	if resp.StatusCode != 200 || num(got, "scheduled") != 0 {
		t.Fatalf("tick: %d %v", resp.StatusCode, got)
	}
	for _, path := range []string{"/api/dev/jobs/tick", "/api/dev/jobs/run-next", "/api/dev/jobs/enqueue"} {
		if resp, _ := do(t, s, "POST", path, "", `{"type":"ping"}`); resp.StatusCode != 401 {
			t.Errorf("%s without a token: %d, want 401", path, resp.StatusCode)
		}
		if resp, _ := do(t, s, "POST", path, opToken, `{"type":"ping"}`); resp.StatusCode != 403 {
			t.Errorf("%s with the operator token: %d, want 403", path, resp.StatusCode)
		}
	}
}

func TestAssistant(t *testing.T) {
	s := startJobsServer(t)
	tests := []struct {
		name, body string
		status     int
		check      func(map[string]any) bool
	}{
		{"result", `{"type":"echo","payload":{"answer":42}}`, 200, func(b map[string]any) bool {
			r, _ := b["result"].(map[string]any)
			return str(b, "status") == "succeeded" && num(r, "answer") == 42
		}},
		{"failed", `{"type":"fail","max_retries":0}`, 422, func(b map[string]any) bool {
			d, _ := b["error"].(map[string]any)["details"].(map[string]any)
			return errCode(b) == "failed" && str(d, "status") == "dead" && str(d, "job_id") != ""
		}},
		{"timeout", `{"type":"sleep","payload":{"ms":1000},"timeout_ms":100}`, 504, func(b map[string]any) bool {
			d, _ := b["error"].(map[string]any)["details"].(map[string]any)
			return errCode(b) == "timeout" && str(d, "job_id") != ""
		}},
		{"bad timeout", `{"type":"ping","timeout_ms":0}`, 400, func(b map[string]any) bool { return errCode(b) == "invalid" }},
		{"bad type", `{"type":"nope"}`, 400, func(b map[string]any) bool { return errCode(b) == "invalid" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, s, "POST", "/assistant", "", tt.body)
			if resp.StatusCode != tt.status || !tt.check(body) {
				t.Fatalf("%d %v, want %d", resp.StatusCode, body, tt.status)
			}
		})
	}
}

func TestAdmissionHTTP(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) { c.QueueMaxPending = 3 })
	for i := range 3 {
		if resp, body := do(t, s, "POST", "/run", "", `{"type":"ping"}`); resp.StatusCode != 202 {
			t.Fatalf("job %d: %d %v", i, resp.StatusCode, body)
		}
	}
	for _, path := range []string{"/run", "/assistant"} {
		resp, body := do(t, s, "POST", path, "", `{"type":"ping"}`)
		ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		d, _ := body["error"].(map[string]any)["details"].(map[string]any)
		if resp.StatusCode != 503 || err != nil || ra < 1 || errCode(body) != "unavailable" || str(d, "reason") != "max_pending" || str(d, "bound") != "QUEUE_MAX_PENDING" {
			t.Fatalf("%s over the bound: %d Retry-After=%q %v", path, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	_, body := do(t, s, "GET", "/api/dev/jobs", devToken, "")
	if jobs, _ := body["jobs"].([]any); len(jobs) != 3 {
		t.Fatalf("jobs stored: %d, want exactly 3", len(jobs))
	}
	// Another queue is not affected; the developer enqueue is not admitted.
	if resp, body := do(t, s, "POST", "/run", "", `{"type":"ping","queue":"other"}`); resp.StatusCode != 202 {
		t.Fatalf("another queue: %d %v", resp.StatusCode, body)
	}
	if resp, body := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping"}`); resp.StatusCode != 202 {
		t.Fatalf("developer enqueue: %d %v", resp.StatusCode, body)
	}
}

// TestMaxQueuesHTTP: POST /run is public, so a job for a new queue beyond
// QUEUE_MAX_QUEUES is refused there (and by /assistant) with 400 and nothing
// stored; the developer enqueue is not bound, so an operator can still make
// a queue, which then takes public jobs like the others.
func TestMaxQueuesHTTP(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) { c.QueueMaxQueues = 2 })
	for _, b := range []string{`{"type":"ping"}`, `{"type":"ping","queue":"other"}`} {
		if resp, body := do(t, s, "POST", "/run", "", b); resp.StatusCode != 202 {
			t.Fatalf("%s: %d %v", b, resp.StatusCode, body)
		}
	}
	for _, path := range []string{"/run", "/assistant"} {
		resp, body := do(t, s, "POST", path, "", `{"type":"ping","queue":"third"}`)
		msg, _ := body["error"].(map[string]any)["message"].(string)
		if resp.StatusCode != 400 || errCode(body) != "invalid" || !strings.Contains(msg, "QUEUE_MAX_QUEUES") {
			t.Fatalf("%s in a third queue: %d %v", path, resp.StatusCode, body)
		}
	}
	_, body := do(t, s, "GET", "/api/dev/jobs", devToken, "")
	if jobs, _ := body["jobs"].([]any); len(jobs) != 2 {
		t.Fatalf("jobs stored after the refusals: %d, want 2", len(jobs))
	}
	if resp, body := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping","queue":"third"}`); resp.StatusCode != 202 {
		t.Fatalf("developer enqueue in a third queue: %d %v", resp.StatusCode, body)
	}
	for _, q := range []string{"other", "third"} {
		if resp, body := do(t, s, "POST", "/run", "", `{"type":"ping","queue":"`+q+`"}`); resp.StatusCode != 202 {
			t.Fatalf("existing queue %s: %d %v", q, resp.StatusCode, body)
		}
	}
}

func TestObsJobs(t *testing.T) {
	s := newTestServer(t)
	do(t, s, "POST", "/run", "", `{"type":"ping"}`)
	do(t, s, "POST", "/run", "", `{"type":"ping","delay_ms":10000}`)
	resp, body := do(t, s, "GET", "/api/obs/jobs", opToken, "")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, body)
	}
	qs := body["queues"].([]any)
	q := qs[0].(map[string]any)
	if len(qs) != 1 || str(q, "queue") != "default" || num(q, "pending") != 1 || num(q, "scheduled") != 1 || num(q, "enqueued_total") != 2 {
		t.Errorf("queues: %v", qs)
	}
	if got := fmt.Sprint(body["types"]); got != "[echo fail ping sleep]" {
		t.Errorf("types: %s", got)
	}
	if recent := body["recent"].([]any); len(recent) != 2 {
		t.Errorf("recent: %v", recent)
	}
	if w := body["workers"].(map[string]any); w["manual"] != true {
		t.Errorf("workers: %v", w)
	}
	if resp, _ := do(t, s, "GET", "/api/obs/jobs", "", ""); resp.StatusCode != 401 {
		t.Errorf("without a token: %d", resp.StatusCode)
	}
}

// TestJobsOnRedis runs the job routes on a Redis backend with workers, and
// checks that /readyz and the job routes answer 503 while Redis is paused
// and recover when it continues, losing nothing.
func TestJobsOnRedis(t *testing.T) {
	r := redistest.Start(t)
	s, _ := newRedisServer(t, r, func(cfg *config.Config) {
		cfg.WorkerConcurrency, cfg.TickInterval, cfg.JobLease, cfg.ShutdownTimeout = 2, 20*time.Millisecond, time.Second, time.Second
	})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())

	resp, body := do(t, s, "POST", "/assistant", "", `{"type":"ping"}`)
	if resp.StatusCode != 200 || str(body, "result") != "pong" {
		t.Fatalf("assistant on redis: %d %v", resp.StatusCode, body)
	}
	var ids []string
	for range 5 {
		_, body := do(t, s, "POST", "/run", "", `{"type":"ping"}`)
		ids = append(ids, str(body, "id"))
	}
	r.Pause()
	if resp, body := do(t, s, "GET", "/readyz", "", ""); resp.StatusCode != 503 {
		t.Errorf("readyz while Redis is paused: %d %v", resp.StatusCode, body)
	}
	r.Resume()
	deadline := time.Now().Add(10 * time.Second)
	for _, id := range ids {
		for {
			_, body := do(t, s, "GET", "/run/"+id, "", "")
			if str(body, "status") == "succeeded" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s not done 10s after Redis resumed: %v", id, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if resp, body := do(t, s, "GET", "/readyz", "", ""); resp.StatusCode != 200 {
		t.Errorf("readyz after Redis resumed: %d %v", resp.StatusCode, body)
	}
	r.Stop()
	resp, body = do(t, s, "POST", "/run", "", `{"type":"ping"}`)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || errCode(body) != "unavailable" {
		t.Errorf("POST /run with Redis down: %d Retry-After=%q %v", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	start := time.Now()
	s.Stop(context.Background())
	t.Logf("stop with Redis down took %v", time.Since(start))
}

// TestEnqueueAnswerLostNamesTheJob: an enqueue whose answer does not come
// (Redis stalled past the read timeout) answers 503 with Retry-After and
// the job's id in details, since Redis may have run it; the script, run
// late when Redis continues, stored nothing, so the id reads as not found.
// Any other 503 of an enqueue carries no id.
func TestEnqueueAnswerLostNamesTheJob(t *testing.T) {
	r := redistest.Start(t)
	s, _ := newURLServer(t, r.URL()+"?read_timeout=300ms&write_timeout=300ms")
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	if resp, body := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping"}`); resp.StatusCode != 202 {
		t.Fatalf("enqueue before the stall: %d %v", resp.StatusCode, body)
	}

	// (POST /run would stop at admission control, which reads the queue's
	// depth first: the developer route goes straight to the enqueue.)
	r.Pause()
	resp, body := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping"}`)
	r.Resume()
	details, _ := body["error"].(map[string]any)["details"].(map[string]any)
	id, _ := details["job_id"].(string)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || errCode(body) != "unavailable" || id == "" || details["maybe_stored"] != true {
		t.Fatalf("enqueue during the stall: %d (Retry-After %q) %v, want 503 unavailable naming the job that may exist", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	time.Sleep(200 * time.Millisecond) // Redis runs what it buffered
	if resp, body := do(t, s, "GET", "/run/"+id, "", ""); resp.StatusCode != 404 {
		t.Errorf("the job of the lost answer: %d %v, want 404 (the late script stored nothing)", resp.StatusCode, body)
	}
}

// TestAssistantTimeoutBounds: timeout_ms is bounded before it becomes a
// Duration, so a huge one is a 400, not an overflow that passes the check.
func TestAssistantTimeoutBounds(t *testing.T) {
	s := startJobsServer(t)
	for _, b := range []string{`{"type":"ping","timeout_ms":9223372036855}`, `{"type":"ping","timeout_ms":18446744073710}`, `{"type":"ping","timeout_ms":60001}`} {
		if resp, body := do(t, s, "POST", "/assistant", "", b); resp.StatusCode != 400 || errCode(body) != "invalid" {
			t.Errorf("POST /assistant %s: %d %v, want 400 invalid", b, resp.StatusCode, body)
		}
	}
	if resp, body := do(t, s, "POST", "/assistant", "", `{"type":"ping","timeout_ms":5000}`); resp.StatusCode != 200 {
		t.Errorf("POST /assistant within bounds: %d %v", resp.StatusCode, body)
	}
}

// TestActionRoutesTakeNoBody: run-next, tick and the job actions take their
// parameters in the path or the query; a body they would ignore is refused
// (run-next with {"queue":"lc"} once ran a job of the default queue), while
// none, blanks or {} pass. A bad queue name is a 400, not "not found".
func TestActionRoutesTakeNoBody(t *testing.T) {
	s := newTestServer(t)
	resp, body := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping","queue":"other"}`)
	if resp.StatusCode != 202 {
		t.Fatalf("enqueue: %d %v", resp.StatusCode, body)
	}
	j := str(body, "id")
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/api/dev/jobs/run-next", `{"queue":"lc"}`},
		{"POST", "/api/dev/jobs/tick", `{"bogus":1}`},
		{"POST", "/api/dev/jobs/" + j + "/run", `{"id":"x"}`},
		{"POST", "/api/dev/jobs/" + j + "/cancel", `[]`},
		{"DELETE", "/api/dev/queues?queue=other", `{"queue":"other"}`},
		{"POST", "/api/dev/jobs/run-next?queue=../x", ``},
	} {
		if resp, body := do(t, s, c.method, c.path, devToken, c.body); resp.StatusCode != 400 || errCode(body) != "invalid" {
			t.Errorf("%s %s %s: %d %v, want 400 invalid", c.method, c.path, c.body, resp.StatusCode, body)
		}
	}
	if resp, body := do(t, s, "POST", "/api/dev/jobs/tick", devToken, ` {} `); resp.StatusCode != 200 {
		t.Errorf("tick with {}: %d %v", resp.StatusCode, body)
	}
	if resp, body := do(t, s, "POST", "/api/dev/jobs/run-next?queue=other", devToken, ""); resp.StatusCode != 200 || str(body, "id") != j {
		t.Errorf("run-next?queue=other: %d %v, want the job %s run", resp.StatusCode, body, j)
	}
}

// TestAssistantAnswersAtShutdown: a POST /assistant still waiting for its
// job when the daemon drains answers 503 with Retry-After and the job's id
// (the job goes on), instead of having its connection closed when the
// shutdown's time runs out.
func TestAssistantAnswersAtShutdown(t *testing.T) {
	s := newTestServer(t) // manual mode: the job never runs by itself
	type answer struct {
		resp *http.Response
		body map[string]any
	}
	got := make(chan answer, 1)
	go func() {
		resp, body := do(t, s, "POST", "/assistant", "", `{"type":"ping","timeout_ms":30000}`)
		got <- answer{resp, body}
	}()
	time.Sleep(100 * time.Millisecond) // the request is waiting for its job
	s.Drain(0)
	select {
	case a := <-got:
		details, _ := a.body["error"].(map[string]any)["details"].(map[string]any)
		id, _ := details["job_id"].(string)
		if a.resp.StatusCode != 503 || a.resp.Header.Get("Retry-After") != "1" || errCode(a.body) != "unavailable" || id == "" {
			t.Fatalf("assistant at shutdown: %d %v, want 503 unavailable naming the job", a.resp.StatusCode, a.body)
		}
		// The memory backend keeps nothing once the daemon is gone: the
		// answer must not promise that the job goes on.
		if msg, _ := a.body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "on the memory backend its jobs end with it") {
			t.Errorf("assistant at shutdown on the memory backend says %q, want it to say the job ends with the daemon", msg)
		}
		if resp, body := do(t, s, "GET", "/run/"+id, "", ""); resp.StatusCode != 200 || str(body, "status") != "pending" {
			t.Errorf("the job after the answer: %d %v, want it still pending", resp.StatusCode, body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("assistant still waiting 10s after Drain")
	}
}

// TestManualRunOutlivesItsClient: a run ID whose client leaves (a closed
// connection, a proxy's timeout) goes on and is recorded, not failed (the
// job went dead); at shutdown a run still going is handed back to pending
// and its client told so with a 503.
func TestManualRunOutlivesItsClient(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) { c.WorkerConcurrency = 0 })
	enqueue := func() string {
		resp, body := do(t, s, "POST", "/run", "", `{"type":"sleep","payload":{"ms":300},"max_retries":0}`)
		if resp.StatusCode != 202 {
			t.Fatalf("POST /run: %d %v", resp.StatusCode, body)
		}
		return str(body, "id")
	}
	id := enqueue()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", "/api/dev/jobs/"+id+"/run", nil)
	req.Header.Set("Authorization", "Bearer "+devToken)
	s.ServeHTTP(httptest.NewRecorder(), req) // returns when the run is over
	if resp, body := do(t, s, "GET", "/run/"+id, "", ""); str(body, "status") != "succeeded" || num(body, "attempts") != 1 {
		t.Fatalf("after the client left: %d %v; want succeeded after 1 attempt", resp.StatusCode, body)
	}

	id = enqueue()
	s.Drain(100 * time.Millisecond)
	resp, body := do(t, s, "POST", "/api/dev/jobs/"+id+"/run", devToken, "")
	if resp.StatusCode != 503 || !strings.Contains(fmt.Sprint(body), "handed back to pending") {
		t.Fatalf("run at shutdown: %d %v; want 503, handed back", resp.StatusCode, body)
	}
	if _, body := do(t, s, "GET", "/run/"+id, "", ""); str(body, "status") != "pending" || num(body, "attempts") != 0 {
		t.Fatalf("after the shutdown's hand-back: %v; want pending, 0 attempts", body)
	}
}

// TestAssistantTimeoutSaysWhatTheJobDoes: a 504 says what the job was doing
// when the wait ended (here running), not "still queued".
func TestAssistantTimeoutSaysWhatTheJobDoes(t *testing.T) {
	s := startJobsServer(t)
	resp, body := do(t, s, "POST", "/assistant", "", `{"type":"sleep","payload":{"ms":1000},"timeout_ms":300}`)
	d, _ := body["error"].(map[string]any)["details"].(map[string]any)
	msg, _ := body["error"].(map[string]any)["message"].(string)
	if resp.StatusCode != 504 || str(d, "status") != "running" || !strings.Contains(msg, "it goes on (running)") {
		t.Fatalf("504 of a running job: %d %v", resp.StatusCode, body)
	}
}

// TestPublicJobBounds: anyone may call POST /run and /assistant, so their
// jobs are bounded tighter than the developer enqueue's: a payload of at
// most 64 KiB (413 past it) and a sleep of at most 1 s (400 past it, the
// message naming the bound and the developer enqueue; sec31 MEDIUM 1: at
// 10 s one client within its rate limits asked for twice the workers of a
// default daemon).
func TestPublicJobBounds(t *testing.T) {
	s := newTestServer(t)
	big := `{"type":"echo","payload":"` + strings.Repeat("x", publicMaxPayload) + `"}`
	for _, path := range []string{"/run", "/assistant"} {
		if resp, body := do(t, s, "POST", path, "", big); resp.StatusCode != 413 || errCode(body) != "too_large" {
			t.Errorf("%s with a %d-byte payload: %d %v, want 413", path, publicMaxPayload+2, resp.StatusCode, body)
		}
		resp, body := do(t, s, "POST", path, "", `{"type":"sleep","payload":{"ms":1001}}`)
		if msg := errMessage(body); resp.StatusCode != 400 || errCode(body) != "invalid" ||
			!strings.Contains(msg, "payload.ms is 1001") || !strings.Contains(msg, "at most 1000 ms") || !strings.Contains(msg, "POST /api/dev/jobs/enqueue") {
			t.Errorf("%s sleeping 1001 ms: %d %v, want 400 naming the bound of 1000 ms and the developer enqueue", path, resp.StatusCode, body)
		}
	}
	if resp, body := do(t, s, "POST", "/run", "", `{"type":"sleep","payload":{"ms":1000}}`); resp.StatusCode != 202 {
		t.Errorf("/run sleeping 1000 ms: %d %v, want 202", resp.StatusCode, body)
	}
	// No workers here: the wait runs out, but the job was taken.
	if resp, body := do(t, s, "POST", "/assistant", "", `{"type":"sleep","payload":{"ms":1000},"timeout_ms":1}`); resp.StatusCode != 504 {
		t.Errorf("/assistant sleeping 1000 ms: %d %v, want 504 (taken, not finished)", resp.StatusCode, body)
	}
	// The developer enqueue keeps the API's own bounds.
	for _, body := range []string{big, `{"type":"sleep","payload":{"ms":3600000}}`} {
		if resp, out := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, body); resp.StatusCode != 201 && resp.StatusCode != 202 {
			t.Errorf("developer enqueue: %d %v, want it accepted", resp.StatusCode, out)
		}
	}
}

// TestDevJobListPages: GET /api/dev/jobs?offset=N answers the page of the
// listing from N on (pages of it, concatenated, are the whole listing, and a
// page from the end on is empty), and refuses with a 400 in the error
// envelope an offset that is no whole number, is negative, takes
// offset+limit beyond queue.MaxListDepth (naming the bound), or is given
// without a queue or a status.
func TestDevJobListPages(t *testing.T) {
	s := newTestServer(t) // manual mode
	var want []string
	for i := range 7 {
		_, j := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, fmt.Sprintf(`{"type":"echo","payload":%d,"queue":"pages"}`, i))
		want = append(want, str(j, "id"))
	}
	list := func(query string) []string {
		t.Helper()
		resp, body := do(t, s, "GET", "/api/dev/jobs?queue=pages&status=pending"+query, devToken, "")
		if resp.StatusCode != 200 {
			t.Fatalf("list%s: %d %v", query, resp.StatusCode, body)
		}
		ids := []string{}
		for _, j := range body["jobs"].([]any) {
			ids = append(ids, str(j.(map[string]any), "id"))
		}
		return ids
	}
	var paged []string
	for off := 0; off < len(want); off += 3 {
		paged = append(paged, list(fmt.Sprintf("&limit=3&offset=%d", off))...)
	}
	if diff := cmp.Diff(want, paged); diff != "" {
		t.Errorf("pages of 3, in run order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want[5:], list("&offset=5")); diff != "" {
		t.Errorf("offset 5, the default limit (-want +got):\n%s", diff)
	}
	if got := list("&offset=7"); len(got) != 0 {
		t.Errorf("offset 7 of 7 jobs: %v, want none", got)
	}
	if got := list(fmt.Sprintf("&limit=50&offset=%d", queue.MaxListDepth-50)); len(got) != 0 {
		t.Errorf("the deepest page: %v, want none", got)
	}
	bound := fmt.Sprint(queue.MaxListDepth)
	for _, tt := range []struct{ query, message string }{
		{"?offset=x", "offset must be a whole number, 0 or more"},
		{"?offset=-1", "offset must be a whole number, 0 or more"},
		{"?offset=1.5", "offset must be a whole number"},
		{"?offset=99999999999999999999", "offset must be a whole number"},
		{"?queue=pages&status=pending&offset=" + fmt.Sprint(queue.MaxListDepth+1), "offset plus limit must be at most " + bound},
		{fmt.Sprintf("?offset=%d&limit=50", queue.MaxListDepth-49), "offset plus limit must be at most " + bound},
		{"?offset=1", queue.PageNeedsQueueAndStatus},
		{"?offset=1&queue=pages", queue.PageNeedsQueueAndStatus},
		{"?offset=1&status=pending", queue.PageNeedsQueueAndStatus},
		{fmt.Sprintf("?offset=%d", queue.MaxListDepth), "offset plus limit must be at most " + bound},
		{"?offset=1&offset=2", `"offset" is given more than once`},
	} {
		resp, body := do(t, s, "GET", "/api/dev/jobs"+tt.query, devToken, "")
		if resp.StatusCode != 400 || errCode(body) != "invalid" || !strings.Contains(errMessage(body), tt.message) {
			t.Errorf("list%s: %d %v, want 400 invalid saying %q", tt.query, resp.StatusCode, body, tt.message)
		}
	}
}
