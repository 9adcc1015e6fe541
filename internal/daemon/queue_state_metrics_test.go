package daemon

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/redistest"
	"github.com/refrakt/refrakt/internal/testenv"
)

// queueStateMetrics are the per-queue series read from the same sample as
// refrakt_queue_pending_jobs, besides it and the other original three.
var queueStateMetrics = []string{
	"refrakt_queue_scheduled_jobs", "refrakt_queue_retry_jobs", "refrakt_queue_dead_jobs",
	"refrakt_queue_jobs_enqueued_total", "refrakt_queue_job_attempts_started_total",
	"refrakt_queue_job_attempts_succeeded_total", "refrakt_queue_job_attempts_failed_total",
}

// TestQueueStateSeries (field31 M4): Prometheus could not say which queue
// was failing: deaths showed only in the transitions counter, without a
// queue. After a job dead and one waiting for its retry in q1 and two
// successes and a delayed job in q2, a scrape shows per queue the
// scheduled, retry and dead jobs and the backend's totals, on the memory
// backend and on Redis; a removed queue's series go with it; while Redis
// does not answer they keep their last values, like the other queue
// gauges; and the scrape passes promtool check metrics.
func TestQueueStateSeries(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			var s *Server
			var r *redistest.Server
			if backend == "redis" {
				r = redistest.Start(t)
				s, _ = newRedisServer(t, r, func(c *config.Config) { c.RateLimitEnabled = false })
			} else {
				s = newTestServer(t, func(c *config.Config) { c.RateLimitEnabled = false })
			}
			s.sampleQueues(context.Background())
			if got := grep(scrape(t, s), "refrakt_queue_"); got != "" {
				t.Errorf("a fresh daemon's scrape has per-queue series before any queue exists:\n%s", got)
			}
			enqueue := func(body string) {
				t.Helper()
				if resp, b := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, body); resp.StatusCode != 202 {
					t.Fatalf("enqueue %s: %d %v", body, resp.StatusCode, b)
				}
			}
			runNext := func(q string) {
				t.Helper()
				if resp, b := do(t, s, "POST", "/api/dev/jobs/run-next?queue="+q, devToken, ""); resp.StatusCode != 200 {
					t.Fatalf("run-next in %s: %d %v", q, resp.StatusCode, b)
				}
			}
			enqueue(`{"type":"fail","queue":"q1","max_retries":0}`)
			runNext("q1") // dead
			enqueue(`{"type":"fail","queue":"q1","max_retries":3}`)
			runNext("q1") // failed, waiting for its retry
			enqueue(`{"type":"ping","queue":"q2"}`)
			enqueue(`{"type":"ping","queue":"q2"}`)
			runNext("q2")
			runNext("q2")
			enqueue(`{"type":"ping","queue":"q2","delay_ms":3600000}`)
			enqueue(`{"type":"ping","queue":"q3"}`)
			runNext("q3")
			s.sampleQueues(context.Background())

			want := []string{
				`refrakt_queue_dead_jobs{queue="q1"} 1`,
				`refrakt_queue_retry_jobs{queue="q1"} 1`,
				`refrakt_queue_scheduled_jobs{queue="q1"} 0`,
				`refrakt_queue_jobs_enqueued_total{queue="q1"} 2`,
				`refrakt_queue_job_attempts_started_total{queue="q1"} 2`,
				`refrakt_queue_job_attempts_succeeded_total{queue="q1"} 0`,
				`refrakt_queue_job_attempts_failed_total{queue="q1"} 2`,
				`refrakt_queue_dead_jobs{queue="q2"} 0`,
				`refrakt_queue_retry_jobs{queue="q2"} 0`,
				`refrakt_queue_scheduled_jobs{queue="q2"} 1`,
				`refrakt_queue_jobs_enqueued_total{queue="q2"} 3`,
				`refrakt_queue_job_attempts_started_total{queue="q2"} 2`,
				`refrakt_queue_job_attempts_succeeded_total{queue="q2"} 2`,
				`refrakt_queue_job_attempts_failed_total{queue="q2"} 0`,
				`refrakt_queue_job_attempts_succeeded_total{queue="q3"} 1`,
			}
			text := scrape(t, s)
			for _, line := range want {
				if !strings.Contains(text, "\n"+line+"\n") {
					t.Errorf("/metrics lacks %s; its queue series:\n%s", line, grep(text, "refrakt_queue_"))
				}
			}
			for _, name := range []string{"refrakt_queue_jobs_enqueued_total", "refrakt_queue_dead_jobs"} {
				if !strings.Contains(text, "# HELP "+name+" ") {
					t.Errorf("/metrics has no HELP for %s", name)
				}
			}
			if promtool, err := exec.LookPath("promtool"); err == nil {
				cmd := exec.Command(promtool, "check", "metrics")
				cmd.Stdin = strings.NewReader(text)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("promtool check metrics: %v\n%s", err, out)
				}
			} else {
				testenv.Missing(t, "promtool not found: the scrape was not checked with promtool check metrics (scripts/ensure-promtool.sh)")
			}

			// A removed queue's series go at the next sample.
			if resp, b := do(t, s, "DELETE", "/api/dev/queues?queue=q3", devToken, ""); resp.StatusCode != 200 {
				t.Fatalf("removing q3: %d %v", resp.StatusCode, b)
			}
			s.sampleQueues(context.Background())
			text = scrape(t, s)
			if got := grep(text, `queue="q3"`); got != "" {
				t.Errorf("the removed queue q3 kept series:\n%s", got)
			}
			if !strings.Contains(text, "\n"+want[0]+"\n") {
				t.Errorf("/metrics lost %s with q3's removal", want[0])
			}

			if r == nil {
				return
			}
			// While Redis does not answer, the series keep their last
			// values (a sample that fails changes nothing).
			r.Pause()
			defer r.Resume()
			before := grep(text, "refrakt_queue_")
			s.sampleQueues(context.Background())
			if got := grep(scrape(t, s), "refrakt_queue_"); got != before {
				t.Errorf("a failed sample changed the queue series:\n%s", cmp.Diff(before, got))
			}
			r.Resume()
		})
	}
}

// TestQueueStateSeriesFollowTheQueueLabels: the new per-queue series have
// exactly the queue labels of refrakt_queue_pending_jobs (at most 100:
// default, the busiest others and _other), also after the busiest queues
// change; and _other's totals count only what its queues did while folded
// into it, so they never go down and a queue moving in or out brings none
// of its past (a plain sum jumped by the past of each queue moving in, and
// fell, a counter reset to rate(), with each moving out).
func TestQueueStateSeriesFollowTheQueueLabels(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) { c.RateLimitEnabled = false; c.QueueMaxQueues = 0 })
	enqueue := func(q string, n int) { enqueuePings(t, s, q, n) }
	other := func(text string) string {
		var out []string
		for _, name := range queueStateMetrics[3:] {
			v, ok := sampleOf(text, name+`{queue="_other"}`)
			out = append(out, fmt.Sprintf("%s=%v(%v)", strings.TrimPrefix(name, "refrakt_queue_"), v, ok))
		}
		return strings.Join(out, " ")
	}
	check := func(when, wantOther string) string {
		t.Helper()
		text := scrape(t, s)
		want := scrapedQueueLabels(text, "refrakt_queue_pending_jobs")
		if len(want) != 100 {
			t.Errorf("%s: refrakt_queue_pending_jobs has %d series, want 100", when, len(want))
		}
		for _, name := range queueStateMetrics {
			if diff := cmp.Diff(want, scrapedQueueLabels(text, name)); diff != "" {
				t.Errorf("%s: %s's queue labels are not those of refrakt_queue_pending_jobs (-want +got)\n%s", when, name, diff)
			}
		}
		if got := other(text); got != wantOther {
			t.Errorf("%s: _other's totals\n got %s\nwant %s", when, got, wantOther)
		}
		return text
	}
	totals := func(enq, started, ok, failed int) string {
		return fmt.Sprintf("jobs_enqueued_total=%d(true) job_attempts_started_total=%d(true) job_attempts_succeeded_total=%d(true) job_attempts_failed_total=%d(true)", enq, started, ok, failed)
	}

	for i := range 150 {
		enqueue(fmt.Sprintf("a%03d", i), 1)
	}
	s.sampleQueues(context.Background())
	// The 51 queues folded at the first sample bring none of their past.
	check("150 queues", totals(0, 0, 0, 0))

	for i := range 120 {
		enqueue(fmt.Sprintf("b%03d", i), 2)
	}
	s.sampleQueues(context.Background())
	// Every a queue is folded now, and b099…b119: none did anything while
	// folded.
	check("120 busier queues later", totals(0, 0, 0, 0))

	// a000 runs its job while folded: _other counts it.
	if resp, b := do(t, s, "POST", "/api/dev/jobs/run-next?queue=a000", devToken, ""); resp.StatusCode != 200 {
		t.Fatalf("run-next in a000: %d %v", resp.StatusCode, b)
	}
	s.sampleQueues(context.Background())
	check("a job of a folded queue ran", totals(0, 1, 1, 0))

	// a001 becomes one of the busiest and leaves _other, and b098 goes in:
	// _other's totals stay where they were.
	enqueue("a001", 5)
	s.sampleQueues(context.Background())
	text := check("a folded queue moved out and a shown one in", totals(0, 1, 1, 0))
	if v, ok := sampleOf(text, `refrakt_queue_jobs_enqueued_total{queue="a001"}`); !ok || v != 6 {
		t.Errorf(`refrakt_queue_jobs_enqueued_total{queue="a001"} = %v (there: %v), want its total, 6`, v, ok)
	}
	if _, ok := sampleOf(text, `refrakt_queue_dead_jobs{queue="b098"}`); ok {
		t.Errorf("b098, folded into _other, kept its own series")
	}
}
