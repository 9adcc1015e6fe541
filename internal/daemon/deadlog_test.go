package daemon

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestDeadJobsLogged: a job whose last attempt fails is logged at WARN with
// its id, queue, type, attempts and error, on both backends. A queue keeps
// only its last JOB_HISTORY dead jobs (before they had a bound of their own,
// a runbook drill's `jobs list --status dead` found none of 10 after 300
// successes); the log line stays.
func TestDeadJobsLogged(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			d := readyOn(t, backend)
			resp, err := http.Post(d.URL+"/run", "application/json", strings.NewReader(`{"type":"fail","queue":"doomed","max_retries":1}`))
			if err != nil {
				t.Fatal(err)
			}
			var job struct{ ID string }
			err = json.NewDecoder(resp.Body).Decode(&job)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusAccepted || job.ID == "" {
				t.Fatalf("POST /run: %d, %v", resp.StatusCode, err)
			}
			want := []string{"level=WARN", `msg="job dead: retries exhausted"`, "id=" + job.ID, "queue=doomed", "type=fail", "attempts=2", "error="}
			var line string
			for deadline := time.Now().Add(15 * time.Second); line == ""; time.Sleep(50 * time.Millisecond) {
				line = grep(d.Log(), "job dead")
				if line == "" && time.Now().After(deadline) {
					_, b := d.Call(http.MethodGet, "/run/"+job.ID, "")
					t.Fatalf("no dead job logged in 15 s; the job: %s\nlog:\n%s", b, d.Log())
				}
			}
			for _, w := range want {
				if !strings.Contains(line, w) {
					t.Errorf("the dead job's line lacks %q: %s", w, line)
				}
			}
		})
	}
}

// TestLeaseExpiredDeadJobsLogged: a job whose daemon is killed during its
// last attempt goes dead when a tick (another daemon's) finds its lease
// expired. No handler's failure reports it, and the history may soon drop
// it; it is logged at WARN like a job that exhausted its retries, with the
// same attributes and a message saying why, whether the tick is the tick
// loop's or one asked for (POST /api/dev/jobs/tick, whose answer names it).
func TestLeaseExpiredDeadJobsLogged(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		args []string // of the daemon that ticks
	}{
		{"tick loop", nil},
		{"tick API", []string{"--workers", "0"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			redisURL := "QUEUE_URL=" + redistest.Start(t).URL()
			crashing := daemontest.Start(t, []string{redisURL, "JOB_LEASE=1s"})
			crashing.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
			// The developer enqueue: a public sleep (1 s at most) might end
			// before the daemon is killed.
			job := struct{ ID, Status string }{ID: devEnqueue(t, crashing, `{"type":"sleep","payload":{"ms":10000},"queue":"night","max_retries":0}`)}
			for deadline := time.Now().Add(15 * time.Second); job.Status != "running"; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the job did not start in 15 s: %+v\n%s", job, crashing.Log())
				}
				r, err := http.Get(crashing.URL + "/run/" + job.ID)
				if err != nil {
					t.Fatal(err)
				}
				err = json.NewDecoder(r.Body).Decode(&job)
				r.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
			}
			crashing.Signal(syscall.SIGKILL)
			crashing.Wait(10 * time.Second)

			d := daemontest.Start(t, []string{redisURL}, tt.args...)
			d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
			want := []string{"level=WARN", `msg="job dead: lease expired on its last attempt"`, "id=" + job.ID, "queue=night", "type=sleep", "attempts=1", `error="lease expired"`}
			var line string
			named := false // by a tick the test asked for
			for deadline := time.Now().Add(15 * time.Second); line == ""; time.Sleep(50 * time.Millisecond) {
				if tt.args != nil && tickAPI(t, d, job.ID) {
					named = true
				}
				line = grep(d.Log(), "job dead")
				if line == "" && time.Now().After(deadline) {
					t.Fatalf("no dead job logged in 15 s\nlog:\n%s", d.Log())
				}
			}
			for _, w := range want {
				if !strings.Contains(line, w) {
					t.Errorf("the dead job's line lacks %q: %s", w, line)
				}
			}
			if tt.args != nil && !named {
				t.Error("no answer of POST /api/dev/jobs/tick made the job dead, yet only those ticks run")
			}
		})
	}
}

// tickAPI asks daemon d for a tick, checks that its answer names job id
// when it says it made a job dead, and reports whether it did.
func tickAPI(t *testing.T, d *daemontest.Daemon, id string) bool {
	t.Helper()
	resp, b := d.Call(http.MethodPost, "/api/dev/jobs/tick", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/dev/jobs/tick: %d %s", resp.StatusCode, b)
	}
	var r struct {
		RecoveredDead int              `json:"recovered_dead"`
		DeadJobs      []map[string]any `json:"dead_jobs"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.RecoveredDead == 0 {
		if strings.Contains(string(b), "dead_jobs") {
			t.Errorf("a tick that made no job dead lists dead_jobs: %s", b)
		}
		return false
	}
	want := []map[string]any{{"id": id, "queue": "night", "type": "sleep", "attempts": 1.0, "last_error": "lease expired"}}
	if diff := cmp.Diff(want, r.DeadJobs); r.RecoveredDead != 1 || diff != "" {
		t.Errorf("tick %s: recovered_dead %d, dead_jobs (-want +got):\n%s", b, r.RecoveredDead, diff)
	}
	return true
}

// TestDeadJobLinesBounded (growth29 LOW 5): anyone may make a job go dead
// (a public fail job), and each made a WARN line. At most 20 lines go out
// per queue and 10 s window; a later line of the queue counts those left
// out. A flood in one queue does not hide another queue's dead job (code29
// MEDIUM 2: one budget for every queue let anonymous jobs silence the
// operator's).
func TestDeadJobLinesBounded(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, []string{"RATE_LIMIT_ENABLED=false"})
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	dead := func(q string, n int) {
		t.Helper()
		for range n {
			if resp, b := d.Call(http.MethodPost, "/api/dev/jobs/enqueue", `{"type":"fail","queue":"`+q+`","max_retries":0}`); resp.StatusCode != http.StatusAccepted {
				t.Fatalf("enqueue in %s: %d %s", q, resp.StatusCode, b)
			}
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			_, b := d.Call(http.MethodGet, "/api/obs/jobs", "")
			var st struct {
				Queues []struct {
					Queue string
					Dead  int
				}
			}
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatalf("/api/obs/jobs: %v: %s", err, b)
			}
			for _, x := range st.Queues {
				if x.Queue == q && x.Dead == n {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the %d jobs of %s not all dead after 30 s: %s", n, q, b)
			}
		}
	}
	const n = 60
	start := time.Now()
	dead("flood", n)
	took := time.Since(start)
	dead("billing", 1)
	flood := strings.Count(grep(d.Log(), "job dead"), "queue=flood")
	// 20 a window, the first at once: a run over k windows logs at most
	// 20·(k+1).
	if most := 20 * (int(took/(10*time.Second)) + 2); flood < 20 || flood > most {
		t.Errorf("%d jobs of flood went dead in %s and logged %d lines, want 20 to %d (20 per 10 s)", n, took.Round(time.Millisecond), flood, most)
	}
	if !strings.Contains(d.Log(), "queue=billing") {
		t.Errorf("billing's dead job, after flood's, has no line:\n%s", grep(d.Log(), "job dead"))
	}
}

// TestNoRetryDeadJob: on the real daemon, both backends, a public fail job
// with {"retry":false} and 5 retries goes dead at its first attempt;
// GET /run/{id} shows it with last_error saying it was not retried, the
// "job dead" line says why, the transitions RefraktJobsDying reads count
// it (running → dead), and so does the run's duration by status (dead).
// A fail payload the type refuses (retry true or null, a key in another
// case, a duplicate key) is a 400 with one message.
func TestNoRetryDeadJob(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			d := readyOn(t, backend)
			for _, p := range []string{`{"retry":true}`, `{"Retry":false}`, `{"retry":null}`, `{"retry":true,"retry":false}`} {
				resp, b := d.Call(http.MethodPost, "/run", `{"type":"fail","payload":`+p+`,"queue":"final"}`)
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `fail takes no payload, {} or {\"retry\":false}`) {
					t.Errorf("POST /run of a fail job with payload %s: %d %s, want 400 naming the payloads fail takes", p, resp.StatusCode, b)
				}
			}
			resp, b := d.Call(http.MethodPost, "/run", `{"type":"fail","payload":{"retry":false},"queue":"final","max_retries":5}`)
			var job struct {
				ID, Status string
				LastError  string `json:"last_error"`
				Attempts   int
			}
			if err := json.Unmarshal(b, &job); err != nil || resp.StatusCode != http.StatusAccepted || job.ID == "" {
				t.Fatalf("POST /run: %d %s", resp.StatusCode, b)
			}
			for deadline := time.Now().Add(15 * time.Second); job.Status != "dead"; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the job is not dead in 15 s: %s\nlog:\n%s", b, d.Log())
				}
				_, b = d.Call(http.MethodGet, "/run/"+job.ID, "")
				if err := json.Unmarshal(b, &job); err != nil {
					t.Fatalf("GET /run: %v: %s", err, b)
				}
			}
			if job.Attempts != 1 || job.LastError != "fail: this job always fails (not retried)" {
				t.Errorf("the dead job: %s; want 1 attempt, last_error saying it was not retried", b)
			}
			want := []string{"level=WARN", `msg="job dead: not retried (its handler said the failure is final)"`, "id=" + job.ID, "queue=final", "type=fail", "attempts=1",
				`error="fail: this job always fails (not retried)"`}
			var line string
			for deadline := time.Now().Add(15 * time.Second); line == ""; time.Sleep(50 * time.Millisecond) {
				line = grep(d.Log(), "job dead")
				if line == "" && time.Now().After(deadline) {
					t.Fatalf("no dead job logged in 15 s\nlog:\n%s", d.Log())
				}
			}
			for _, w := range want {
				if !strings.Contains(line, w) {
					t.Errorf("the dead job's line lacks %q: %s", w, line)
				}
			}
			_, m := d.Call(http.MethodGet, "/metrics", "")
			for _, w := range []string{`refrakt_job_status_transitions_total{from_status="running",to_status="dead"} 1`,
				`refrakt_job_duration_seconds_count{status="dead",type="fail"} 1`} {
				if !strings.Contains(string(m), w) {
					t.Errorf("/metrics lacks %s:\n%s", w, grep(string(m), "refrakt_job_"))
				}
			}
		})
	}
}

// readyOn starts a daemon on backend ("memory", or "redis": a redis-server
// of the test's own) and waits until it is ready.
func readyOn(t *testing.T, backend string) *daemontest.Daemon {
	t.Helper()
	var env []string
	if backend == "redis" {
		env = append(env, "QUEUE_URL="+redistest.Start(t).URL())
	}
	d := daemontest.Start(t, env)
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	return d
}
