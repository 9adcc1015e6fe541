package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/metrics"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/membroker"
	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/version"
)

// TestJobTimeoutOverHTTP: a real daemon (memory backend, manual mode,
// JOB_TIMEOUT 2s shown on the start-up line) stores a job's timeout_ms and
// shows it (GET /run/{id}, the developer listing), refuses bad values with
// a JSON 400 (and a public one above JOB_TIMEOUT), and run-next of a job
// that outlives its timeout answers at the deadline with the attempt
// failed: retried, last_error "timed out after …", the run timed as a
// timeout and logged at WARN without its payload. Before timeout37 the
// field was refused as unknown and run-next waited for the job's end.
func TestJobTimeoutOverHTTP(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, []string{"JOB_TIMEOUT=2s"}, "--workers", "0")
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	if !strings.Contains(d.Log(), "job_timeout=2s") {
		t.Errorf("the start-up line lacks job_timeout=2s:\n%s", d.Log())
	}

	resp, b := d.Call(http.MethodPost, "/run", `{"type":"ping","queue":"pub","timeout_ms":300}`)
	var job struct {
		ID        string `json:"id"`
		TimeoutMS int64  `json:"timeout_ms"`
	}
	if err := json.Unmarshal(b, &job); err != nil || resp.StatusCode != http.StatusAccepted || job.ID == "" {
		t.Fatalf("POST /run: %d %s", resp.StatusCode, b)
	}
	if job.TimeoutMS != 300 {
		t.Errorf("POST /run answered timeout_ms %d, want 300: %s", job.TimeoutMS, b)
	}
	_, b = d.Call(http.MethodGet, "/run/"+job.ID, "")
	if !strings.Contains(string(b), `"timeout_ms":300`) {
		t.Errorf("GET /run/{id} lacks timeout_ms 300: %s", b)
	}
	// The job run-next takes below: a sleep (10s, a developer's: a public
	// one sleeps at most 1s) cut at 300ms.
	resp, b = d.Call(http.MethodPost, "/api/dev/jobs/enqueue", `{"type":"sleep","payload":{"ms":10000},"queue":"tmo","max_retries":2,"timeout_ms":300}`)
	if err := json.Unmarshal(b, &job); err != nil || resp.StatusCode != http.StatusAccepted || job.TimeoutMS != 300 {
		t.Fatalf("developer enqueue: %d %s", resp.StatusCode, b)
	}
	// A job without one shows none (its runner's JOB_TIMEOUT applies).
	_, b = d.Call(http.MethodPost, "/api/dev/jobs/enqueue", `{"type":"ping","queue":"plain"}`)
	if strings.Contains(string(b), "timeout_ms") {
		t.Errorf("a job without timeout_ms shows one: %s", b)
	}

	for _, tt := range []struct {
		name, path, body, msg string
	}{
		{"negative", "/run", `{"type":"ping","timeout_ms":-1}`, "timeout_ms must be between 1 and 604800000"},
		{"past a week", "/api/dev/jobs/enqueue", `{"type":"ping","timeout_ms":604800001}`, "timeout_ms must be between 1 and 604800000"},
		{"not a number", "/run", `{"type":"ping","timeout_ms":"1s"}`, "timeout_ms"},
		{"public above JOB_TIMEOUT", "/run", `{"type":"ping","timeout_ms":2001}`, "a public job's is at most JOB_TIMEOUT, 2000"},
	} {
		resp, b := d.Call(http.MethodPost, tt.path, tt.body)
		var e struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(b, &e); err != nil || resp.StatusCode != http.StatusBadRequest || e.Error.Code != "invalid" || !strings.Contains(e.Error.Message, tt.msg) {
			t.Errorf("%s: %d %s; want 400 invalid saying %q", tt.name, resp.StatusCode, b, tt.msg)
		}
	}
	// The developer enqueue may go past JOB_TIMEOUT.
	if resp, b := d.Call(http.MethodPost, "/api/dev/jobs/enqueue", `{"type":"ping","queue":"plain","timeout_ms":604800000}`); resp.StatusCode != http.StatusAccepted {
		t.Errorf("developer enqueue with a week's timeout: %d %s", resp.StatusCode, b)
	}

	// On POST /assistant timeout_ms is the wait, as before: the job gets
	// none of its own (no worker runs here, so the wait runs out).
	resp, b = d.Call(http.MethodPost, "/assistant", `{"type":"ping","queue":"asst","timeout_ms":50}`)
	var waited struct {
		Error struct {
			Details struct {
				JobID string `json:"job_id"`
			} `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &waited); err != nil || resp.StatusCode != http.StatusGatewayTimeout || waited.Error.Details.JobID == "" {
		t.Fatalf("POST /assistant with timeout_ms 50: %d %s; want 504 with the job's id", resp.StatusCode, b)
	}
	if _, b := d.Call(http.MethodGet, "/run/"+waited.Error.Details.JobID, ""); strings.Contains(string(b), "timeout_ms") {
		t.Errorf("the /assistant job took its wait as its timeout: %s", b)
	}

	start := time.Now()
	resp, b = d.Call(http.MethodPost, "/api/dev/jobs/run-next?queue=tmo", "")
	took := time.Since(start)
	var got struct {
		Status    string `json:"status"`
		Attempts  int    `json:"attempts"`
		LastError string `json:"last_error"`
		TimeoutMS int64  `json:"timeout_ms"`
	}
	if err := json.Unmarshal(b, &got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("run-next: %d %s", resp.StatusCode, b)
	}
	if got.Status != "failed" || got.Attempts != 1 || got.LastError != "timed out after 300ms" || got.TimeoutMS != 300 {
		t.Errorf("run-next answered %s; want failed, 1 attempt, timed out after 300ms", b)
	}
	if took > 5*time.Second {
		t.Errorf("run-next took %s for a 10s sleep with timeout_ms 300: not cut at its timeout", took)
	}
	// The sleep returns just after its cancelled deadline: counted
	// abandoned until it does.
	wants := []string{`refrakt_job_duration_seconds_count{status="timeout",type="sleep"} 1`, "refrakt_jobs_abandoned_handlers 0"}
	var m []byte
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, m = d.Call(http.MethodGet, "/metrics", "")
		if strings.Contains(string(m), wants[0]) && strings.Contains(string(m), wants[1]) || time.Now().After(end) {
			break
		}
	}
	for _, want := range wants {
		if !strings.Contains(string(m), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var line string
	for _, l := range strings.Split(d.Log(), "\n") {
		if strings.Contains(l, "job timed out") {
			line = l
		}
	}
	for _, want := range []string{"level=WARN", "id=" + job.ID, "queue=tmo", "type=sleep", "timeout=300ms", "attempts=1"} {
		if !strings.Contains(line, want) {
			t.Errorf("the timeout's log line lacks %s: %q", want, line)
		}
	}
	if strings.Contains(line, "10000") || strings.Contains(line, "payload") {
		t.Errorf("the timeout's log line shows the payload: %q", line)
	}
}

// TestAbandonedHandlersGauge: refrakt_jobs_abandoned_handlers counts a
// handler that ignores its context past its timeout, through the daemon's
// job observer on a real pool, and goes back to 0 once it returns; the
// timeout is logged at WARN. (The built-in handlers all honour their
// context, so the real daemon cannot show it.)
func TestAbandonedHandlersGauge(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry(), version.Get())
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	o := jobsObserver{m: m, log: log, errs: &core.LogThrottle{Logger: log, Msg: "backend failing", Every: time.Minute},
		deadLog: newDeadLogs(time.Now), rejected: newQueueLabels(), timeoutLog: newDeadLogs(time.Now)}
	reg := queue.NewRegistry()
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	returned := make(chan struct{})
	if err := reg.Register("hang", queue.Handler{Run: func(context.Context, json.RawMessage) (json.RawMessage, error) {
		defer close(returned)
		<-release // its context ignored
		return nil, nil
	}}); err != nil {
		t.Fatal(err)
	}
	svc := queue.NewService(queue.Deps{Broker: membroker.New(membroker.Options{}), Registry: reg, Observer: o},
		queue.Config{Concurrency: 1, JobTimeout: 50 * time.Millisecond})
	p := queue.NewPool(svc)
	p.Start()
	t.Cleanup(func() { free(); _ = p.Shutdown(context.Background()) })
	j, err := svc.Enqueue(context.Background(), queue.EnqueueRequest{Type: "hang", MaxRetries: new(int)}, queue.SourceAPI)
	if err != nil {
		t.Fatal(err)
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	wait("the gauge at 1", func() bool { return testutil.ToFloat64(m.JobsAbandoned) == 1 })
	// The outcome is written after the gauge moves.
	var got *queue.Job
	wait("the hung job dead", func() bool {
		got, err = svc.Get(context.Background(), j.ID)
		return err == nil && got.Status == queue.StatusDead
	})
	if got.LastError != "timed out after 50ms" || testutil.ToFloat64(m.JobsAbandoned) != 1 {
		t.Fatalf("the hung job: %+v, gauge %v; want timed out after 50ms, the gauge at 1 while it hangs", got, testutil.ToFloat64(m.JobsAbandoned))
	}
	free()
	<-returned
	wait("the gauge back at 0", func() bool { return testutil.ToFloat64(m.JobsAbandoned) == 0 })
	if !strings.Contains(logs.String(), "level=WARN msg=\"job timed out") || !strings.Contains(logs.String(), "id="+j.ID) {
		t.Errorf("no WARN line for the timed-out job:\n%s", logs.String())
	}
}
