// Package brokertest is the conformance suite every queue.Broker passes:
// run it from the broker's tests with Run(t, newBroker).
package brokertest

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
)

// Options are what the suite asks of a new broker.
type Options struct {
	Clock        queue.Clock // the broker's time
	HistoryLimit int         // succeeded and cancelled jobs kept per queue, and dead jobs
}

// NewBroker returns a new, empty broker for one test.
type NewBroker func(t *testing.T, opts Options) queue.Broker

const lease = 10 * time.Second

// env is one test's broker and clock.
type env struct {
	t     *testing.T
	b     queue.Broker
	clock *Clock
	ctx   context.Context
}

func setup(t *testing.T, nb NewBroker, history int) *env {
	t.Helper()
	c := NewClock()
	return &env{t: t, b: nb(t, Options{Clock: c, HistoryLimit: history}), clock: c, ctx: context.Background()}
}

// enqueue stores a job of type typ in queue q (default when "") and returns it.
func (e *env) enqueue(q, typ string, delay time.Duration, mod ...func(*queue.Job)) *queue.Job {
	e.t.Helper()
	if q == "" {
		q = queue.DefaultQueue
	}
	j := &queue.Job{ID: queue.NewID(), Queue: q, Type: typ, MaxRetries: 2, Source: queue.SourceAPI}
	for _, m := range mod {
		m(j)
	}
	if err := e.b.Enqueue(e.ctx, queue.NewJob{Job: j, Delay: delay}); err != nil {
		e.t.Fatalf("Enqueue: %v", err)
	}
	return j
}

func (e *env) get(id string) *queue.Job {
	e.t.Helper()
	j, err := e.b.Get(e.ctx, id)
	if err != nil {
		e.t.Fatalf("Get(%s): %v", id, err)
	}
	return j
}

func (e *env) fetch(n int, queues ...string) []queue.Lease {
	e.t.Helper()
	ls, err := e.b.Fetch(e.ctx, queue.FetchRequest{Queues: queues, N: n, Lease: lease})
	if err != nil {
		e.t.Fatalf("Fetch: %v", err)
	}
	return ls
}

func (e *env) fetchOne() queue.Lease {
	e.t.Helper()
	ls := e.fetch(1)
	if len(ls) != 1 {
		e.t.Fatalf("Fetch: got %d jobs, want 1", len(ls))
	}
	return ls[0]
}

func (e *env) finish(o ...queue.Outcome) []queue.Status {
	e.t.Helper()
	to, err := e.b.Finish(e.ctx, o)
	if err != nil {
		e.t.Fatalf("Finish: %v", err)
	}
	return to
}

func (e *env) tick() queue.TickResult {
	e.t.Helper()
	r, err := e.b.Tick(e.ctx)
	if err != nil {
		e.t.Fatalf("Tick: %v", err)
	}
	return r
}

func (e *env) stats(q string) queue.Stats {
	e.t.Helper()
	s, err := e.b.Stats(e.ctx, q)
	if err != nil {
		e.t.Fatalf("Stats: %v", err)
	}
	// StatsMany agrees, for q beside another queue.
	many, err := e.b.StatsMany(e.ctx, []string{"brokertest-other", q})
	if err != nil || len(many) != 2 || many[0].Queue != "brokertest-other" || many[1] != s {
		e.t.Fatalf("StatsMany: %v %+v, want [other, %+v]", err, many, s)
	}
	return s
}

func ok(l queue.Lease, result string) queue.Outcome {
	return queue.Outcome{Ref: l.Ref(), Result: json.RawMessage(result)}
}

func fail(l queue.Lease, msg string, retryIn time.Duration) queue.Outcome {
	return queue.Outcome{Ref: l.Ref(), Err: msg, RetryIn: retryIn}
}

func ids(jobs []*queue.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

func leaseIDs(ls []queue.Lease) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Job.ID
	}
	return out
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := core.ErrorCode(err); got != code {
		t.Errorf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

func diff(t *testing.T, what string, want, got any) {
	t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s (-want +got):\n%s", what, d)
	}
}

// Run runs the whole suite against brokers made by nb.
func Run(t *testing.T, nb NewBroker) {
	tests := []struct {
		name string
		fn   func(*testing.T, NewBroker)
	}{
		{"EnqueueAndGet", testEnqueueAndGet},
		{"GetAcrossQueues", testGetAcrossQueues},
		{"EnqueueCallerGone", testEnqueueCallerGone},
		{"FetchFIFO", testFetchFIFO},
		{"FetchAheadLastTry", testFetchAheadLastTry},
		{"NamedQueues", testNamedQueues},
		{"OrderedFetch", testOrderedFetch},
		{"StrictStopsAtHeldQueue", testStrictStopsAtHeldQueue},
		{"NamedFetchRotates", testNamedFetchRotates},
		{"Succeed", testSucceed},
		{"RetryThenDead", testRetryThenDead},
		{"NoRetry", testNoRetry},
		{"Recurring", testRecurring},
		{"Cron", testCron},
		{"Cancel", testCancel},
		{"Requeue", testRequeue},
		{"RequeueDead", testRequeueDead},
		{"RequeueDeadMany", testRequeueDeadMany},
		{"RequeueDeadRacing", testRequeueDeadRacing},
		{"IllegalTransitions", testIllegalTransitions},
		{"LeaseExpiry", testLeaseExpiry},
		{"TickNamesDead", testTickNamesDead},
		{"ExtendAndFencing", testExtendAndFencing},
		{"Release", testRelease},
		{"Claim", testClaim},
		{"HistoryCapAndDedup", testHistoryCapAndDedup},
		{"DeadOutlivesSuccesses", testDeadOutlivesSuccesses},
		{"DeadBound", testDeadBound},
		{"ListAllFinished", testListAllFinished},
		{"ClaimedEarlyThenReleased", testClaimedEarlyThenReleased},
		{"LargeBatches", testLargeBatches},
		{"Stats", testStats},
		{"List", testList},
		{"ListFinished", testListFinished},
		{"ListPages", testListPages},
		{"ListPagesTied", testListPagesTied},
		{"BlockingFetch", testBlockingFetch},
		{"RemoveQueue", testRemoveQueue},
		{"RemoveQueueBusy", testRemoveQueueBusy},
		{"RemoveQueueRacingEnqueue", testRemoveQueueRacingEnqueue},
		{"Pause", testPause},
		{"PauseBlockingFetch", testPauseBlockingFetch},
		{"Idempotency", testIdempotency},
		{"IdempotencyGone", testIdempotencyGone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, nb) })
	}
}

func testEnqueueAndGet(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	now := e.clock.Now()
	p := e.enqueue("", "echo", 0, func(j *queue.Job) { j.Payload = json.RawMessage(`{"a":1}`); j.IntervalSeconds = 0 })
	s := e.enqueue("", "ping", 1500*time.Millisecond)
	want := &queue.Job{ID: p.ID, Queue: "default", Type: "echo", Payload: json.RawMessage(`{"a":1}`),
		Status: queue.StatusPending, MaxRetries: 2, RunAt: now, EnqueuedAt: now, ReadyAt: now, Source: "api"}
	diff(t, "pending job", want, e.get(p.ID))
	diff(t, "job as returned by Enqueue", want, p)
	want = &queue.Job{ID: s.ID, Queue: "default", Type: "ping", Status: queue.StatusScheduled, MaxRetries: 2,
		RunAt: now.Add(1500 * time.Millisecond), EnqueuedAt: now, Source: "api"}
	diff(t, "scheduled job", want, e.get(s.ID))

	_, err := e.b.Get(e.ctx, queue.NewID())
	wantCode(t, "Get of an unknown id", err, core.CodeNotFound)
	err = e.b.Enqueue(e.ctx, queue.NewJob{Job: &queue.Job{ID: p.ID, Queue: "default", Type: "ping"}})
	wantCode(t, "Enqueue of an existing id", err, core.CodeConflict)
}

// testGetAcrossQueues: Get finds a job whatever its queue and status, and
// an unknown id, or one whose queue was removed, is not found.
func testGetAcrossQueues(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	var jobs []*queue.Job
	for i := range 20 {
		q := fmt.Sprintf("get-%02d", i)
		switch i % 3 {
		case 0:
			jobs = append(jobs, e.enqueue(q, "ping", 0))
		case 1:
			jobs = append(jobs, e.enqueue(q, "ping", time.Hour))
		case 2:
			j := e.enqueue(q, "ping", 0)
			e.finish(ok(e.fetch(1, q)[0], `1`))
			jobs = append(jobs, j)
		}
	}
	for i, j := range jobs {
		got := e.get(j.ID)
		want := []queue.Status{queue.StatusPending, queue.StatusScheduled, queue.StatusSucceeded}[i%3]
		if got.ID != j.ID || got.Queue != j.Queue || got.Status != want {
			t.Errorf("Get(%s): %+v, want it in queue %s, %s", j.ID, got, j.Queue, want)
		}
	}
	id := queue.NewID()
	_, err := e.b.Get(e.ctx, id)
	wantCode(t, "Get of an unknown id", err, core.CodeNotFound)
	if err == nil || err.Error() != "job "+id+" not found" {
		t.Errorf("Get of an unknown id: %v, want \"job %s not found\"", err, id)
	}
	if _, err := e.b.RemoveQueue(e.ctx, jobs[2].Queue); err != nil {
		t.Fatal(err)
	}
	_, err = e.b.Get(e.ctx, jobs[2].ID)
	wantCode(t, "Get of a job of a removed queue", err, core.CodeNotFound)
	diff(t, "a job of another queue", jobs[5].ID, e.get(jobs[5].ID).ID)
}

// testEnqueueCallerGone: an Enqueue whose caller's context has ended
// stores nothing and says so (its error names no job that may exist).
func testEnqueueCallerGone(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	j := &queue.Job{ID: queue.NewID(), Queue: queue.DefaultQueue, Type: "ping", Source: queue.SourceAPI}
	err := e.b.Enqueue(ctx, queue.NewJob{Job: j})
	if err == nil {
		t.Fatal("Enqueue with an ended context succeeded")
	}
	if ids := queue.MaybeStored(err); ids != nil {
		t.Errorf("Enqueue with an ended context: %v says jobs %v may be stored, want none", err, ids)
	}
	_, err = e.b.Get(e.ctx, j.ID)
	wantCode(t, "Get of a job enqueued with an ended context", err, core.CodeNotFound)
	diff(t, "enqueued total after it", int64(0), e.stats(queue.DefaultQueue).Enqueued)
}

func testFetchFIFO(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	var want []string
	for range 5 {
		want = append(want, e.enqueue("", "ping", 0).ID)
	}
	if ls := e.fetch(0); len(ls) != 0 {
		t.Errorf("Fetch(N=0) = %d jobs, want 0", len(ls))
	}
	first := e.fetch(3)
	diff(t, "first batch", want[:3], leaseIDs(first))
	rest := e.fetch(3)
	diff(t, "second batch", want[3:], leaseIDs(rest))
	if ls := e.fetch(3); len(ls) != 0 {
		t.Errorf("Fetch of an empty queue = %v, want none", leaseIDs(ls))
	}
	now := e.clock.Now()
	l := first[0]
	diff(t, "leased job", &queue.Job{ID: want[0], Queue: "default", Type: "ping", Status: queue.StatusRunning,
		Attempts: 1, MaxRetries: 2, RunAt: now, EnqueuedAt: now, StartedAt: now, ReadyAt: now,
		LeaseUntil: now.Add(lease), Source: "api"}, l.Job)
	diff(t, "stored job", l.Job, e.get(l.Job.ID))
	if l.Token == 0 {
		t.Error("lease token is 0")
	}
}

// testFetchAheadLastTry: beyond the N-Ahead jobs of a fetch that start at
// once, a job on its last try (max_retries 0, or its retries used up) is
// not taken: it stays at the head of its queue, in order, and that queue's
// part of the batch ends there (review qsem31 M1: such jobs, held ready
// ahead of a busy worker, went dead unrun when their daemon was killed). A
// fetch that left one for want of a worker returns at once, without
// waiting; with Ahead 0 every job is taken, as before.
func testFetchAheadLastTry(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	noRetry := func(j *queue.Job) { j.MaxRetries = 0 }
	fetch := func(n, ahead int, queues ...string) []queue.Lease {
		t.Helper()
		ls, err := e.b.Fetch(e.ctx, queue.FetchRequest{Queues: queues, N: n, Ahead: ahead, Lease: lease})
		if err != nil {
			t.Fatalf("Fetch(N=%d, Ahead=%d): %v", n, ahead, err)
		}
		return ls
	}
	pending := func(q string) []string {
		t.Helper()
		return e.list(queue.Filter{Queue: q, Status: queue.StatusPending})
	}

	// No retries: only the two that start at once.
	var dead []string
	for range 10 {
		dead = append(dead, e.enqueue("noretry", "ping", 0, noRetry).ID)
	}
	diff(t, "Fetch(N=10, Ahead=8) of jobs with no retry", dead[:2], leaseIDs(fetch(10, 8, "noretry")))
	diff(t, "pending after it, in order", dead[2:], pending("noretry"))
	if st := e.stats("noretry"); st.Pending != 8 || st.Running != 2 || st.Started != 2 {
		t.Errorf("stats after it: pending %d running %d started %d, want 8 2 2", st.Pending, st.Running, st.Started)
	}
	for _, id := range dead[2:] {
		if j := e.get(id); j.Attempts != 0 || j.Status != queue.StatusPending {
			t.Errorf("job %s left behind: %s, attempts %d; want pending, attempts 0", id, j.Status, j.Attempts)
		}
	}
	// None starts at once: nothing taken, and no wait for a job that is
	// already pending.
	start := time.Now()
	ls, err := e.b.Fetch(e.ctx, queue.FetchRequest{Queues: []string{"noretry"}, N: 10, Ahead: 10, Lease: lease, Wait: 10 * time.Second})
	if err != nil || len(ls) != 0 {
		t.Errorf("Fetch(N=10, Ahead=10, Wait=10s) = %v, %v; want nothing", leaseIDs(ls), err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Fetch(Ahead=N) with a job left pending waited %v: it should answer at once", el)
	}
	diff(t, "pending after a fetch of none at once", dead[2:], pending("noretry"))

	// A queue where a job on its last retry sits behind two with retries
	// left and before another: the batch stops at it.
	last := e.enqueue("mixed", "fail", 0, func(j *queue.Job) { j.MaxRetries = 1 })
	diff(t, "its first try", []queue.Status{queue.StatusFailed}, e.finish(fail(fetch(1, 0, "mixed")[0], "boom", time.Millisecond)))
	r1, r2 := e.enqueue("mixed", "ping", 0), e.enqueue("mixed", "ping", 0)
	e.clock.Advance(time.Millisecond)
	e.tick() // last is pending again, behind r1 and r2, on its last try
	r3 := e.enqueue("mixed", "ping", 0)
	diff(t, "mixed queue", []string{r1.ID, r2.ID, last.ID, r3.ID}, pending("mixed"))
	diff(t, "Fetch(N=4, Ahead=4) of the mixed queue", []string{r1.ID, r2.ID}, leaseIDs(fetch(4, 4, "mixed")))
	diff(t, "pending after it", []string{last.ID, r3.ID}, pending("mixed"))
	diff(t, "Fetch(N=4, Ahead=3) of the mixed queue", []string{last.ID, r3.ID}, leaseIDs(fetch(4, 3, "mixed")))

	// Across queues, no more jobs with no retry than start at once.
	for _, q := range []string{"noretry-a", "noretry-b"} {
		for range 5 {
			e.enqueue(q, "ping", 0, noRetry)
		}
	}
	if ls := fetch(10, 9, "noretry-a", "noretry-b"); len(ls) != 1 {
		t.Errorf("Fetch(N=10, Ahead=9) of two queues of jobs with no retry took %v, want 1", leaseIDs(ls))
	}
	if a, b := len(pending("noretry-a")), len(pending("noretry-b")); a+b != 9 {
		t.Errorf("pending after it: %d + %d, want 9", a, b)
	}

	// Ahead 0: all of them, as always.
	diff(t, "Fetch(N=10, Ahead=0)", dead[2:], leaseIDs(fetch(10, 0, "noretry")))
}

func testNamedQueues(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	a := e.enqueue("alpha", "ping", 0)
	b := e.enqueue("beta", "ping", 0)
	qs, err := e.b.Queues(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "queues", []string{"alpha", "beta"}, qs)
	diff(t, "fetch from beta only", []string{b.ID}, leaseIDs(e.fetch(5, "beta")))
	diff(t, "fetch from beta again", []string{}, leaseIDs(e.fetch(5, "beta")))
	diff(t, "fetch from any queue", []string{a.ID}, leaseIDs(e.fetch(5)))
	if got := e.get(a.ID).Queue; got != "alpha" {
		t.Errorf("queue of a = %q, want alpha", got)
	}
}

func testSucceed(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	j := e.enqueue("", "ping", 0)
	l := e.fetchOne()
	e.clock.Advance(250 * time.Millisecond)
	diff(t, "Finish", []queue.Status{queue.StatusSucceeded}, e.finish(ok(l, `"pong"`)))
	got := e.get(j.ID)
	diff(t, "status", queue.StatusSucceeded, got.Status)
	diff(t, "result", json.RawMessage(`"pong"`), got.Result)
	diff(t, "finished_at", e.clock.Now(), got.FinishedAt)
	diff(t, "lease_until", time.Time{}, got.LeaseUntil)
	diff(t, "finishing twice", []queue.Status{""}, e.finish(ok(l, `"again"`)))
	diff(t, "result after a second finish", json.RawMessage(`"pong"`), e.get(j.ID).Result)
}

func testRetryThenDead(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	j := e.enqueue("", "fail", 0) // max_retries 2: three attempts
	for attempt := 1; attempt <= 3; attempt++ {
		l := e.fetchOne()
		if l.Job.Attempts != attempt || l.Job.Retries != attempt-1 {
			t.Fatalf("attempt %d: attempts=%d retries=%d", attempt, l.Job.Attempts, l.Job.Retries)
		}
		retryIn := time.Duration(100<<(attempt-1)) * time.Millisecond
		to := e.finish(fail(l, fmt.Sprintf("boom %d", attempt), retryIn))
		got := e.get(j.ID)
		if attempt == 3 {
			diff(t, "last attempt", []queue.Status{queue.StatusDead}, to)
			diff(t, "dead job", struct {
				Status    queue.Status
				Retries   int
				LastError string
				Finished  time.Time
			}{queue.StatusDead, 3, "boom 3", e.clock.Now()}, struct {
				Status    queue.Status
				Retries   int
				LastError string
				Finished  time.Time
			}{got.Status, got.Retries, got.LastError, got.FinishedAt})
			break
		}
		diff(t, fmt.Sprintf("attempt %d", attempt), []queue.Status{queue.StatusFailed}, to)
		diff(t, "run_at of the retry", e.clock.Now().Add(retryIn), got.RunAt)
		diff(t, "last_error", fmt.Sprintf("boom %d", attempt), got.LastError)
		e.clock.Advance(retryIn - time.Millisecond)
		diff(t, "tick before the retry is due", queue.TickResult{}, e.tick())
		if ls := e.fetch(1); len(ls) != 0 {
			t.Fatalf("a failed job was fetched before its retry was due")
		}
		e.clock.Advance(time.Millisecond)
		diff(t, "tick when the retry is due", queue.TickResult{Retried: 1}, e.tick())
		got = e.get(j.ID)
		diff(t, "status after the tick", queue.StatusPending, got.Status)
		diff(t, "ready_at of a due retry", got.RunAt, got.ReadyAt)
	}
	s := e.stats("default")
	diff(t, "dead count and totals", [3]int64{1, 1, 3}, [3]int64{s.Dead, s.Enqueued, s.Failed})
}

func testRecurring(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	j := e.enqueue("", "ping", 0, func(j *queue.Job) { j.IntervalSeconds = 60 })
	for run := 1; run <= 3; run++ {
		l := e.fetchOne()
		if l.Job.ID != j.ID {
			t.Fatalf("run %d fetched %s, want %s", run, l.Job.ID, j.ID)
		}
		if run == 2 { // a failure in between does not end the recurrence
			diff(t, "failure of a recurring job", []queue.Status{queue.StatusFailed}, e.finish(fail(l, "x", time.Second)))
			e.clock.Advance(time.Second)
			e.tick()
			l = e.fetchOne()
		}
		diff(t, "Finish of a recurring job", []queue.Status{queue.StatusScheduled}, e.finish(ok(l, `"pong"`)))
		got := e.get(j.ID)
		diff(t, "next run_at", e.clock.Now().Add(60*time.Second), got.RunAt)
		diff(t, "retries reset after a success", 0, got.Retries)
		e.clock.Advance(59 * time.Second)
		diff(t, "tick before the interval", queue.TickResult{}, e.tick())
		e.clock.Advance(time.Second)
		diff(t, "tick at the interval", queue.TickResult{Scheduled: 1}, e.tick())
	}
	all, err := e.b.List(e.ctx, queue.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "a recurring job is listed once", []string{j.ID}, ids(all))
	diff(t, "attempts over its runs", 4, all[0].Attempts)
}

func testCancel(t *testing.T, nb NewBroker) {
	tests := []struct {
		name  string
		setup func(e *env) (*queue.Job, *queue.Lease)
		from  queue.Status
	}{
		{"pending", func(e *env) (*queue.Job, *queue.Lease) { return e.enqueue("", "ping", 0), nil }, queue.StatusPending},
		{"scheduled", func(e *env) (*queue.Job, *queue.Lease) { return e.enqueue("", "ping", time.Hour), nil }, queue.StatusScheduled},
		{"failed", func(e *env) (*queue.Job, *queue.Lease) {
			j := e.enqueue("", "fail", 0)
			e.finish(fail(e.fetchOne(), "x", time.Second))
			return j, nil
		}, queue.StatusFailed},
		{"running", func(e *env) (*queue.Job, *queue.Lease) {
			j := e.enqueue("", "sleep", 0)
			l := e.fetchOne()
			return j, &l
		}, queue.StatusRunning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, nb, 0)
			j, l := tt.setup(e)
			got, from, err := e.b.Cancel(e.ctx, j.ID)
			if err != nil {
				t.Fatalf("Cancel: %v", err)
			}
			diff(t, "from", tt.from, from)
			diff(t, "returned status", queue.StatusCancelled, got.Status)
			diff(t, "stored status", queue.StatusCancelled, e.get(j.ID).Status)
			e.clock.Advance(2 * time.Hour)
			e.tick()
			if ls := e.fetch(5); len(ls) != 0 {
				t.Errorf("a cancelled job was fetched")
			}
			if l != nil {
				okv, err := e.b.Extend(e.ctx, []queue.Ref{l.Ref()}, lease)
				if err != nil {
					t.Fatal(err)
				}
				diff(t, "Extend after cancel", []bool{false}, okv)
				diff(t, "Finish after cancel", []queue.Status{""}, e.finish(ok(*l, `1`)))
				diff(t, "status after a zombie finish", queue.StatusCancelled, e.get(j.ID).Status)
			}
			s := e.stats("default")
			diff(t, "gauges after cancel", [4]int64{}, [4]int64{s.Pending, s.Running, s.Scheduled, s.Retry})
		})
	}
}

func testRequeue(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	dead := e.enqueue("", "fail", 0, func(j *queue.Job) { j.MaxRetries = 0 })
	diff(t, "fail with no retries", []queue.Status{queue.StatusDead}, e.finish(fail(e.fetchOne(), "x", 0)))
	cancelled := e.enqueue("", "ping", 0)
	if _, _, err := e.b.Cancel(e.ctx, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	for _, j := range []*queue.Job{dead, cancelled} {
		got, from, err := e.b.Requeue(e.ctx, j.ID)
		if err != nil {
			t.Fatalf("Requeue: %v", err)
		}
		want := queue.StatusDead
		if j == cancelled {
			want = queue.StatusCancelled
		}
		diff(t, "from", want, from)
		diff(t, "requeued", [3]any{queue.StatusPending, 0, e.clock.Now()}, [3]any{got.Status, got.Retries, got.ReadyAt})
	}
	diff(t, "requeued jobs run again, in order", []string{dead.ID, cancelled.ID}, leaseIDs(e.fetch(5)))
	s := e.stats("default")
	diff(t, "dead gauge after requeue", int64(0), s.Dead)
	hist, err := e.b.List(e.ctx, queue.Filter{Status: queue.StatusDead})
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "dead list after requeue", []string{}, append([]string{}, ids(hist)...))
}

func testIllegalTransitions(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	pending := e.enqueue("", "ping", 0)
	scheduled := e.enqueue("", "ping", time.Hour)
	running := e.enqueue("", "ping", 0)
	succeeded := e.enqueue("", "ping", 0)
	failed := e.enqueue("", "fail", 0)
	dead := e.enqueue("", "fail", 0, func(j *queue.Job) { j.MaxRetries = 0 })
	cancelled := e.enqueue("", "ping", 0)
	// Take everything but the pending one (the first).
	for _, l := range e.fetch(10)[1:] {
		switch l.Job.ID {
		case succeeded.ID:
			e.finish(ok(l, `1`))
		case failed.ID:
			e.finish(fail(l, "x", time.Hour))
		case dead.ID:
			e.finish(fail(l, "x", 0))
		}
	}
	e.b.Enqueue(e.ctx) // an empty enqueue is a no-op
	if _, _, err := e.b.Cancel(e.ctx, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	// Put pending back in line: it was fetched above with the others.
	tests := []struct {
		name string
		job  *queue.Job
		op   string
	}{
		{"cancel succeeded", succeeded, "cancel"},
		{"cancel dead", dead, "cancel"},
		{"cancel cancelled", cancelled, "cancel"},
		{"requeue scheduled", scheduled, "requeue"},
		{"requeue running", running, "requeue"},
		{"requeue succeeded", succeeded, "requeue"},
		{"requeue failed", failed, "requeue"},
		{"run running", running, "claim"},
		{"run succeeded", succeeded, "claim"},
		{"run dead", dead, "claim"},
		{"run cancelled", cancelled, "claim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.get(tt.job.ID)
			var err error
			switch tt.op {
			case "cancel":
				_, _, err = e.b.Cancel(e.ctx, tt.job.ID)
			case "requeue":
				_, _, err = e.b.Requeue(e.ctx, tt.job.ID)
			case "claim":
				_, err = e.b.Claim(e.ctx, tt.job.ID, lease)
			}
			wantCode(t, tt.name, err, core.CodeConflict)
			diff(t, "job unchanged", before, e.get(tt.job.ID))
		})
	}
	for _, op := range []string{"cancel", "requeue", "claim"} {
		var err error
		switch op {
		case "cancel":
			_, _, err = e.b.Cancel(e.ctx, "nope")
		case "requeue":
			_, _, err = e.b.Requeue(e.ctx, "nope")
		case "claim":
			_, err = e.b.Claim(e.ctx, "nope", lease)
		}
		wantCode(t, op+" of an unknown id", err, core.CodeNotFound)
	}
	_ = pending
}

func testLeaseExpiry(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	j := e.enqueue("", "sleep", 0, func(j *queue.Job) { j.MaxRetries = 1 })
	l := e.fetchOne()
	e.clock.Advance(lease - time.Millisecond)
	diff(t, "tick before the lease ends", queue.TickResult{}, e.tick())
	e.clock.Advance(time.Millisecond)
	diff(t, "tick at the lease's end", queue.TickResult{Recovered: 1}, e.tick())
	got := e.get(j.ID)
	diff(t, "recovered job", [4]any{queue.StatusPending, 1, 1, "lease expired"}, [4]any{got.Status, got.Attempts, got.Retries, got.LastError})
	diff(t, "ready_at of a recovered job", e.clock.Now(), got.ReadyAt)
	diff(t, "the zombie's finish is refused", []queue.Status{""}, e.finish(ok(l, `"late"`)))
	okv, _ := e.b.Extend(e.ctx, []queue.Ref{l.Ref()}, lease)
	diff(t, "the zombie's extend is refused", []bool{false}, okv)

	l2 := e.fetchOne()
	if l2.Token == l.Token {
		t.Errorf("a new run got the old token %d", l.Token)
	}
	e.clock.Advance(lease)
	diff(t, "second expiry uses the last retry", queue.TickResult{RecoveredDead: 1,
		Dead: []queue.DeadJob{{ID: j.ID, Queue: "default", Type: "sleep", Attempts: 2, LastError: "lease expired"}}}, e.tick())
	got = e.get(j.ID)
	diff(t, "dead after its leases expired", [3]any{queue.StatusDead, 2, 2}, [3]any{got.Status, got.Attempts, got.Retries})
}

// testTickNamesDead: a tick names every job it made dead (its worker lost
// during the last attempt, no handler reports it) with its queue, type and
// attempts, across queues and beyond one batch of a script (the Redis
// broker's is 1000), even when the history, here of 5, has already dropped
// the job; and none that it recovered with retries left.
func testTickNamesDead(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 5)
	const many = 1100
	jobs := make([]queue.NewJob, 0, many+3)
	var want []queue.DeadJob
	for i := range many + 2 {
		j := &queue.Job{ID: queue.NewID(), Queue: "doomed", Type: "sleep", Source: queue.SourceAPI}
		if i >= many {
			j.Queue, j.Type = "also-doomed", "echo"
		}
		jobs = append(jobs, queue.NewJob{Job: j})
		want = append(want, queue.DeadJob{ID: j.ID, Queue: j.Queue, Type: j.Type, Attempts: 1, LastError: queue.LeaseExpired})
	}
	twice := &queue.Job{ID: queue.NewID(), Queue: "doomed", Type: "ping", MaxRetries: 1, Source: queue.SourceAPI}
	survivor := &queue.Job{ID: queue.NewID(), Queue: "also-doomed", Type: "ping", MaxRetries: 1, Source: queue.SourceAPI}
	jobs = append(jobs, queue.NewJob{Job: twice})
	if err := e.b.Enqueue(e.ctx, jobs...); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Enqueue(e.ctx, queue.NewJob{Job: survivor}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Claim(e.ctx, twice.ID, lease); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(lease)
	diff(t, "the first lost run of a job with a retry left", queue.TickResult{Recovered: 1}, e.tick())
	if n := len(e.fetch(many + 10)); n != many+4 {
		t.Fatalf("fetched %d jobs, want %d", n, many+4)
	}
	want = append(want, queue.DeadJob{ID: twice.ID, Queue: "doomed", Type: "ping", Attempts: 2, LastError: queue.LeaseExpired})
	e.clock.Advance(lease)
	got := e.tick()
	byID := func(a, b queue.DeadJob) int { return strings.Compare(a.ID, b.ID) }
	slices.SortFunc(want, byID)
	slices.SortFunc(got.Dead, byID)
	diff(t, "the jobs the tick made dead", want, got.Dead)
	diff(t, "counts", [2]int{1, many + 3}, [2]int{got.Recovered, got.RecoveredDead})
	if j := e.get(survivor.ID); j.Status != queue.StatusPending {
		t.Errorf("the job with a retry left is %s, want pending", j.Status)
	}
	diff(t, "a tick that made none dead names none", queue.TickResult{}, e.tick())
}

func testExtendAndFencing(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	e.enqueue("", "sleep", 0)
	e.enqueue("", "sleep", 0)
	ls := e.fetch(2)
	e.clock.Advance(lease / 2)
	bogus := ls[1].Ref()
	bogus.Token++
	okv, err := e.b.Extend(e.ctx, []queue.Ref{ls[0].Ref(), bogus}, lease)
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "Extend", []bool{true, false}, okv)
	diff(t, "lease_until after Extend", e.clock.Now().Add(lease), e.get(ls[0].Job.ID).LeaseUntil)
	e.clock.Advance(lease/2 + time.Millisecond)
	diff(t, "only the unextended lease expires", queue.TickResult{Recovered: 1}, e.tick())
	diff(t, "the extended job still runs", queue.StatusRunning, e.get(ls[0].Job.ID).Status)
	diff(t, "wrong token", []queue.Status{""}, e.finish(queue.Outcome{Ref: bogus}))
}

func testRelease(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	a := e.enqueue("", "ping", 0)
	b := e.enqueue("", "ping", 0)
	c := e.enqueue("", "ping", 0)
	ls := e.fetch(2)
	okv, err := e.b.Release(e.ctx, []queue.Ref{ls[0].Ref(), ls[1].Ref()})
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "Release", []bool{true, true}, okv)
	diff(t, "handed-back jobs go first, in order", []string{a.ID, b.ID, c.ID}, leaseIDs(e.fetch(3)))
	got := e.get(a.ID)
	diff(t, "a handed-back job's attempt is not counted", 1, got.Attempts)
	okv, _ = e.b.Release(e.ctx, []queue.Ref{ls[0].Ref()})
	diff(t, "Release with an old token", []bool{false}, okv)
}

func testClaim(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	for _, delay := range []time.Duration{0, time.Hour} {
		j := e.enqueue("", "ping", delay)
		l, err := e.b.Claim(e.ctx, j.ID, lease)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		diff(t, "claimed", [2]any{queue.StatusRunning, 1}, [2]any{l.Job.Status, l.Job.Attempts})
		diff(t, "finish a claimed job", []queue.Status{queue.StatusSucceeded}, e.finish(ok(l, `1`)))
	}
	f := e.enqueue("", "fail", 0)
	e.finish(fail(e.fetchOne(), "x", time.Hour))
	l, err := e.b.Claim(e.ctx, f.ID, 3*time.Hour)
	if err != nil {
		t.Fatalf("Claim of a failed job: %v", err)
	}
	diff(t, "claimed failed job", 2, l.Job.Attempts)
	e.clock.Advance(2 * time.Hour)
	diff(t, "a claimed job is not promoted again", queue.TickResult{}, e.tick())
	s := e.stats("default")
	diff(t, "gauges", [4]int64{0, 1, 0, 0}, [4]int64{s.Pending, s.Running, s.Scheduled, s.Retry})
}

// testClaimedEarlyThenReleased: a job claimed before it was due (scheduled,
// or failed and waiting to retry) becomes ready when claimed, so when it is
// handed back its age in pending counts from the claim, neither from the
// epoch nor hidden.
func testClaimedEarlyThenReleased(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	s := e.enqueue("", "ping", time.Hour)
	f := e.enqueue("", "fail", 0)
	e.finish(fail(e.fetchOne(), "x", time.Hour))
	for _, id := range []string{s.ID, f.ID} {
		e.clock.Advance(time.Second)
		claimedAt := e.clock.Now()
		l, err := e.b.Claim(e.ctx, id, lease)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		diff(t, "ready_at of a job claimed before it was due", claimedAt, l.Job.ReadyAt)
		okv, err := e.b.Release(e.ctx, []queue.Ref{l.Ref()})
		if err != nil || !okv[0] {
			t.Fatalf("Release: %v %v", okv, err)
		}
		e.clock.Advance(2 * time.Second)
		st := e.stats("default")
		diff(t, "pending, and the oldest's age from its claim", [2]any{int64(1), 2 * time.Second},
			[2]any{st.Pending, st.OldestPendingAge})
		diff(t, "ready_at of the handed-back job", claimedAt, e.get(id).ReadyAt)
		e.finish(ok(e.fetchOne(), "1"))
	}
}

func testHistoryCapAndDedup(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 3)
	var done []string
	for i := range 5 {
		j := e.enqueue("", "ping", 0)
		e.clock.Advance(time.Millisecond)
		e.finish(ok(e.fetchOne(), fmt.Sprint(i)))
		done = append(done, j.ID)
	}
	hist, err := e.b.List(e.ctx, queue.Filter{Status: queue.StatusSucceeded})
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "history keeps the 3 latest, latest first", []string{done[4], done[3], done[2]}, ids(hist))
	_, err = e.b.Get(e.ctx, done[0])
	wantCode(t, "Get of an evicted job", err, core.CodeNotFound)

	// A job that dies, is requeued and then succeeds is in the history once.
	j := e.enqueue("", "fail", 0, func(j *queue.Job) { j.MaxRetries = 0 })
	e.clock.Advance(time.Millisecond)
	e.finish(fail(e.fetchOne(), "x", 0))
	if _, _, err := e.b.Requeue(e.ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Millisecond)
	e.finish(ok(e.fetchOne(), `1`))
	all, err := e.b.List(e.ctx, queue.Filter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	queue.SortRecentFirst(all, queue.StatusSucceeded)
	diff(t, "history after a requeue", []string{j.ID, done[4], done[3]}, ids(all))
	diff(t, "dead gauge", int64(0), e.stats("default").Dead)

	// Dead jobs evicted leave the dead gauge: the oldest dead job beyond
	// the cap of 3, by a fourth (a success evicts none).
	for range 4 {
		e.enqueue("", "fail", 0, func(j *queue.Job) { j.MaxRetries = 0 })
		e.clock.Advance(time.Millisecond)
		e.finish(fail(e.fetchOne(), "x", 0))
	}
	e.enqueue("", "ping", 0)
	e.clock.Advance(time.Millisecond)
	e.finish(ok(e.fetchOne(), `1`))
	diff(t, "dead gauge after eviction", int64(3), e.stats("default").Dead)
}

// claim starts job id now, whatever its run_at.
func (e *env) claim(id string) queue.Lease {
	e.t.Helper()
	l, err := e.b.Claim(e.ctx, id, lease)
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// cancel cancels job id.
func (e *env) cancel(id string) {
	e.t.Helper()
	if _, _, err := e.b.Cancel(e.ctx, id); err != nil {
		e.t.Fatal(err)
	}
}

// list lists f's jobs by id.
func (e *env) list(f queue.Filter) []string {
	e.t.Helper()
	jobs, err := e.b.List(e.ctx, f)
	if err != nil {
		e.t.Fatalf("List(%+v): %v", f, err)
	}
	return append([]string{}, ids(jobs)...)
}

// die runs a new job of queue q with no retries to its death, either by its
// handler failing (finish) or by its lease expiring (tick), and returns it.
func (e *env) die(q string, byTick bool) *queue.Job {
	e.t.Helper()
	j := e.enqueue(q, "fail", 0, func(j *queue.Job) { j.MaxRetries = 0 })
	l, err := e.b.Claim(e.ctx, j.ID, lease)
	if err != nil {
		e.t.Fatal(err)
	}
	if byTick {
		e.clock.Advance(lease)
		if r := e.tick(); r.RecoveredDead != 1 {
			e.t.Fatalf("tick: %+v, want one job made dead", r)
		}
	} else {
		diff(e.t, "a failure with no retries left", []queue.Status{queue.StatusDead}, e.finish(fail(l, "x", 0)))
	}
	e.clock.Advance(time.Millisecond)
	return j
}

// succeed runs a new ping of queue q to its success and returns it.
func (e *env) succeed(q string) *queue.Job {
	e.t.Helper()
	j := e.enqueue(q, "ping", 0)
	l, err := e.b.Claim(e.ctx, j.ID, lease)
	if err != nil {
		e.t.Fatal(err)
	}
	diff(e.t, "a success", []queue.Status{queue.StatusSucceeded}, e.finish(ok(l, `"pong"`)))
	e.clock.Advance(time.Millisecond)
	return j
}

// cancelNew cancels a new job of queue q and returns it.
func (e *env) cancelNew(q string) *queue.Job {
	e.t.Helper()
	j := e.enqueue(q, "ping", time.Hour)
	if _, _, err := e.b.Cancel(e.ctx, j.ID); err != nil {
		e.t.Fatal(err)
	}
	e.clock.Advance(time.Millisecond)
	return j
}

// testDeadOutlivesSuccesses: dead jobs are kept apart from the succeeded and
// cancelled ones, each up to JOB_HISTORY (here 5): however many jobs succeed
// or are cancelled after it, a dead job (its handler failed, or its lease
// expired on its last attempt) stays gettable, listed, counted and
// requeueable. A reviewer's `serve --job-history 5` lost a dead job to the
// 5 pings that followed it.
func testDeadOutlivesSuccesses(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 5)
	failed := e.die("", false)
	lost := e.die("", true)
	var done []*queue.Job
	for i := range 8 {
		if i%3 == 2 {
			done = append(done, e.cancelNew(""))
		} else {
			done = append(done, e.succeed(""))
		}
	}
	for _, j := range []*queue.Job{failed, lost} {
		if got, err := e.b.Get(e.ctx, j.ID); err != nil || got.Status != queue.StatusDead {
			t.Fatalf("Get of a dead job after 8 later finished jobs: %+v, %v; want it dead", got, err)
		}
	}
	_, err := e.b.Get(e.ctx, done[2].ID)
	wantCode(t, "Get of a finished job beyond the history's 5", err, core.CodeNotFound)
	diff(t, "dead jobs listed, latest first", []string{lost.ID, failed.ID}, e.list(queue.Filter{Status: queue.StatusDead}))
	diff(t, "dead jobs of the queue", []string{lost.ID, failed.ID}, e.list(queue.Filter{Queue: "default", Status: queue.StatusDead}))
	diff(t, "dead gauge", int64(2), e.stats("default").Dead)

	got, from, err := e.b.Requeue(e.ctx, failed.ID)
	if err != nil {
		t.Fatalf("Requeue of a dead job after 8 later finished jobs: %v", err)
	}
	diff(t, "requeued", [2]queue.Status{queue.StatusDead, queue.StatusPending}, [2]queue.Status{from, got.Status})
	diff(t, "dead after the requeue", []string{lost.ID}, e.list(queue.Filter{Status: queue.StatusDead}))
	diff(t, "dead gauge after the requeue", int64(1), e.stats("default").Dead)
	// Run again, it succeeds: in the history (pushing the oldest out), no
	// longer among the dead.
	l := e.fetchOne()
	diff(t, "the requeued job runs", failed.ID, l.Job.ID)
	e.finish(ok(l, `1`))
	want := []string{failed.ID}
	for i := len(done) - 1; len(want) < 5; i-- {
		want = append(want, done[i].ID)
	}
	var finished []string
	for _, st := range []queue.Status{queue.StatusSucceeded, queue.StatusCancelled} {
		finished = append(finished, e.list(queue.Filter{Status: st})...)
	}
	slices.Sort(finished)
	slices.Sort(want)
	diff(t, "the history's 5 after the requeued job succeeded", want, finished)
	diff(t, "dead, unchanged", []string{lost.ID}, e.list(queue.Filter{Status: queue.StatusDead}))
}

// testDeadBound: a queue keeps up to JOB_HISTORY (here 3) dead jobs, the
// oldest evicted (its job gone: Get answers not found) by a newer dead job,
// whether a failure or a tick made it dead; the history of successes is
// left as it was.
func testDeadBound(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 3)
	s1, s2 := e.succeed(""), e.succeed("")
	var dead []*queue.Job
	for i := range 3 {
		dead = append(dead, e.die("", i == 1))
	}
	diff(t, "3 dead jobs", []string{dead[2].ID, dead[1].ID, dead[0].ID}, e.list(queue.Filter{Status: queue.StatusDead}))
	dead = append(dead, e.die("", false))
	diff(t, "a fourth pushes the oldest out", []string{dead[3].ID, dead[2].ID, dead[1].ID}, e.list(queue.Filter{Status: queue.StatusDead}))
	_, err := e.b.Get(e.ctx, dead[0].ID)
	wantCode(t, "Get of the evicted dead job", err, core.CodeNotFound)
	dead = append(dead, e.die("", true), e.die("", true))
	diff(t, "dead jobs a tick made push the oldest out too", []string{dead[5].ID, dead[4].ID, dead[3].ID}, e.list(queue.Filter{Status: queue.StatusDead}))
	for _, j := range dead[:3] {
		_, err := e.b.Get(e.ctx, j.ID)
		wantCode(t, "Get of an evicted dead job", err, core.CodeNotFound)
	}
	diff(t, "dead gauge", int64(3), e.stats("default").Dead)
	diff(t, "the successes stay", []string{s2.ID, s1.ID}, e.list(queue.Filter{Status: queue.StatusSucceeded}))
	if _, _, err := e.b.Requeue(e.ctx, dead[3].ID); err != nil {
		t.Fatalf("Requeue of the oldest dead job kept: %v", err)
	}
	diff(t, "dead after a requeue", []string{dead[5].ID, dead[4].ID}, e.list(queue.Filter{Status: queue.StatusDead}))

	// A queue's removal takes its dead jobs with it, counted once.
	e.fetchOne()
	e.clock.Advance(lease)
	e.tick() // the requeued job dies again, by its lease
	n, err := e.b.RemoveQueue(e.ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "jobs removed with the queue: 2 succeeded, 3 dead", 5, n)
	for _, j := range append([]*queue.Job{s1, s2}, dead[3:]...) {
		_, err := e.b.Get(e.ctx, j.ID)
		wantCode(t, "Get of a removed queue's job", err, core.CodeNotFound)
	}
}

// testListAllFinished: a listing of every status shows a queue's dead and
// its succeeded and cancelled jobs, each kept to JOB_HISTORY (here 4) on its
// own: with no job waiting, in the order they finished (here the order they
// were enqueued in, the listing's), latest first, in one queue or across
// queues, cut to the limit.
func testListAllFinished(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 4)
	var order []*queue.Job // finished, oldest first, in both queues
	isDead := map[string]bool{}
	for i := range 14 {
		q := []string{"all-a", "all-b"}[i%2]
		var j *queue.Job
		switch i % 7 {
		case 0, 3:
			j = e.die(q, i%7 == 3)
			isDead[j.ID] = true
		case 5:
			j = e.cancelNew(q)
		default:
			j = e.succeed(q)
		}
		order = append(order, j)
	}
	// kept: per queue, the latest 4 dead and the latest 4 others.
	kept := map[string]bool{}
	for _, q := range []string{"all-a", "all-b"} {
		n := map[bool]int{}
		for i := len(order) - 1; i >= 0; i-- {
			if j := order[i]; j.Queue == q && n[isDead[j.ID]] < 4 {
				n[isDead[j.ID]]++
				kept[j.ID] = true
			}
		}
	}
	for _, j := range order {
		if st := e.statusOf(j.ID); (st != "") != kept[j.ID] {
			t.Errorf("job %s (dead: %v) is %q, want it kept: %v", j.ID, isDead[j.ID], st, kept[j.ID])
		}
	}
	for _, q := range []string{"", "all-a"} {
		for _, limit := range []int{3, 100} {
			want := []string{}
			for i := len(order) - 1; i >= 0 && len(want) < limit; i-- {
				if j := order[i]; kept[j.ID] && (q == "" || j.Queue == q) {
					want = append(want, j.ID)
				}
			}
			diff(t, fmt.Sprintf("every finished job of queue %q, limit %d", q, limit), want, e.list(queue.Filter{Queue: q, Limit: limit}))
		}
	}
}

// statusOf is job id's status, "" when it is gone.
func (e *env) statusOf(id string) queue.Status {
	e.t.Helper()
	j, err := e.b.Get(e.ctx, id)
	if err != nil {
		wantCode(e.t, "Get", err, core.CodeNotFound)
		return ""
	}
	return j.Status
}

// testLargeBatches moves more jobs in one call than a store may pass to one
// command (the Redis scripts split their writes in chunks): 1,300 jobs
// enqueued, fetched and finished in one call each, 1,000 succeeding and 300
// dying, then evicted from a history of 10 and 10 dead jobs.
func testLargeBatches(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 10)
	const n, dying = 1300, 300
	jobs := make([]queue.NewJob, n)
	for i := range jobs {
		jobs[i] = queue.NewJob{Job: &queue.Job{ID: queue.NewID(), Queue: queue.DefaultQueue, Type: "ping", Source: queue.SourceAPI}}
	}
	if err := e.b.Enqueue(e.ctx, jobs...); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Millisecond)
	ls := e.fetch(n)
	if len(ls) != n {
		// What follows finishes ls by position: short, it checks nothing.
		t.Fatalf("fetched %d jobs, want %d", len(ls), n)
	}
	diff(t, "running after the fetch", int64(n), e.stats("default").Running)
	outs := make([]queue.Outcome, n)
	for i, l := range ls {
		if i < n-dying {
			outs[i] = ok(l, "1")
		} else {
			outs[i] = fail(l, "x", 0)
		}
	}
	e.clock.Advance(time.Millisecond)
	got := e.finish(outs...)
	want := make([]queue.Status, n)
	for i := range want {
		want[i] = queue.StatusSucceeded
		if i >= n-dying {
			want[i] = queue.StatusDead
		}
	}
	diff(t, "statuses", want, got)
	hist, err := e.b.List(e.ctx, queue.Filter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "jobs left: the history's 10 and the dead's 10", 20, len(hist))
	dead := 0
	for _, j := range hist {
		if j.Status == queue.StatusDead {
			dead++
		}
	}
	s := e.stats("default")
	diff(t, "gauges: running, dead", [2]int64{0, 10}, [2]int64{s.Running, s.Dead})
	diff(t, "dead jobs listed", 10, dead)
	kept := 0
	for _, nj := range jobs {
		if _, err := e.b.Get(e.ctx, nj.Job.ID); err == nil {
			kept++
		} else {
			wantCode(t, "Get of an evicted job", err, core.CodeNotFound)
		}
	}
	diff(t, "jobs that Get still finds", 20, kept)
}

func testStats(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	diff(t, "stats of an unknown queue", queue.Stats{Queue: "nope"}, e.stats("nope"))
	e.enqueue("", "ping", 0)
	e.clock.Advance(3 * time.Second)
	e.enqueue("", "ping", 0)
	e.enqueue("", "ping", time.Minute)
	e.enqueue("", "ping", 0)
	e.clock.Advance(2 * time.Second)
	ls := e.fetch(1)
	e.finish(fail(ls[0], "x", time.Minute))
	e.fetch(1)
	want := queue.Stats{Queue: "default", Pending: 1, Running: 1, Scheduled: 1, Retry: 1,
		OldestPendingAge: 2 * time.Second, OldestPendingSec: 2, Enqueued: 4, Started: 2, Failed: 1}
	diff(t, "stats", want, e.stats("default"))
}

func testList(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	var pend []string
	for range 4 {
		pend = append(pend, e.enqueue("", "ping", 0).ID)
		e.clock.Advance(time.Millisecond)
	}
	other := e.enqueue("other", "ping", 0)
	e.clock.Advance(time.Millisecond)
	s1 := e.enqueue("", "ping", 2*time.Minute)
	e.clock.Advance(time.Millisecond)
	s2 := e.enqueue("", "ping", time.Minute)
	list := func(f queue.Filter) []string {
		t.Helper()
		jobs, err := e.b.List(e.ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		return append([]string{}, ids(jobs)...)
	}
	diff(t, "pending of default, in run order", pend, list(queue.Filter{Queue: "default", Status: queue.StatusPending}))
	diff(t, "limit", pend[:2], list(queue.Filter{Queue: "default", Status: queue.StatusPending, Limit: 2}))
	diff(t, "scheduled by run_at", []string{s2.ID, s1.ID}, list(queue.Filter{Status: queue.StatusScheduled}))
	diff(t, "queue filter", []string{other.ID}, list(queue.Filter{Queue: "other"}))
	diff(t, "no such queue", []string{}, list(queue.Filter{Queue: "nope"}))
	diff(t, "all, most recently enqueued first", []string{s2.ID, s1.ID, other.ID}, list(queue.Filter{Limit: 3}))
	diff(t, "running", []string{}, list(queue.Filter{Status: queue.StatusRunning}))
}

// testListFinished: succeeded, cancelled and dead jobs are listed latest
// first, cut to the limit, across queues or in one, however many of the
// latest finished jobs are in another status; a job requeued or run again
// on its interval is not listed as finished.
func testListFinished(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	type done struct {
		id, q string
		st    queue.Status
	}
	var finished []done // oldest first
	claim := func(id string) queue.Lease {
		t.Helper()
		l, err := e.b.Claim(e.ctx, id, lease)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	queues := []string{"fin-a", "fin-b", "fin-c"}
	statuses := []queue.Status{queue.StatusSucceeded, queue.StatusSucceeded, queue.StatusCancelled, queue.StatusDead,
		queue.StatusSucceeded, queue.StatusCancelled, queue.StatusSucceeded}
	for i := range 40 {
		q, st := queues[i%len(queues)], statuses[i%len(statuses)]
		// A run of each status at the end: the latest of a status lie behind
		// many of the others.
		if i >= 30 {
			st = queue.StatusSucceeded
		}
		j := e.enqueue(q, "ping", 0, func(j *queue.Job) { j.MaxRetries = 0 })
		switch st {
		case queue.StatusSucceeded:
			e.finish(ok(claim(j.ID), `1`))
		case queue.StatusCancelled:
			if _, _, err := e.b.Cancel(e.ctx, j.ID); err != nil {
				t.Fatal(err)
			}
		case queue.StatusDead:
			e.finish(fail(claim(j.ID), "x", 0))
		}
		finished = append(finished, done{j.ID, q, st})
		e.clock.Advance(time.Millisecond)
	}
	// Neither a requeued job nor a recurring one is finished.
	requeued := finished[2] // cancelled
	if _, _, err := e.b.Requeue(e.ctx, requeued.id); err != nil {
		t.Fatal(err)
	}
	finished = slices.Delete(finished, 2, 3)
	rec := e.enqueue("fin-a", "ping", 0, func(j *queue.Job) { j.IntervalSeconds = 60 })
	e.finish(ok(claim(rec.ID), `1`))
	e.clock.Advance(time.Millisecond)

	for _, st := range []queue.Status{queue.StatusSucceeded, queue.StatusCancelled, queue.StatusDead} {
		for _, q := range []string{"", "fin-b"} {
			for _, limit := range []int{1, 2, 3, 7, 100} {
				want := []string{}
				for i := len(finished) - 1; i >= 0 && len(want) < limit; i-- {
					if f := finished[i]; f.st == st && (q == "" || f.q == q) {
						want = append(want, f.id)
					}
				}
				jobs, err := e.b.List(e.ctx, queue.Filter{Queue: q, Status: st, Limit: limit})
				if err != nil {
					t.Fatal(err)
				}
				diff(t, fmt.Sprintf("%s jobs of queue %q, limit %d", st, q, limit), want, append([]string{}, ids(jobs)...))
				for _, j := range jobs {
					if j.Status != st || j.FinishedAt.IsZero() {
						t.Errorf("listed as %s: %+v", st, j)
					}
				}
			}
		}
	}
}

// testListPages: a listing read a page at a time (Filter.Offset) is the
// listing read in one request, for each status and for every status, of one
// queue and of several, whatever the page size; a page from the end on is
// empty. Every status holds more jobs than a page, and pending, scheduled and
// failed ones several pages of one queue; a listing of every status merges
// sets read in their own order (pending jobs oldest first), so its pages
// agree with it only while no queue holds more of those than a page: it is
// read with pages that large.
func testListPages(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	queues := []string{"page-a", "page-b"}
	// Every job a millisecond after the one before: no two tie on the time
	// a listing orders them by.
	for i := range 40 {
		q := queues[i%len(queues)]
		retries := func(j *queue.Job) { j.MaxRetries = 0 }
		switch {
		case i < 8:
			e.enqueue(q, "ping", 0)
		case i < 16:
			e.enqueue(q, "ping", time.Hour+time.Duration(i)*time.Millisecond)
		case i < 24:
			j := e.enqueue(q, "fail", 0)
			e.finish(fail(e.claim(j.ID), "x", time.Hour+time.Duration(i)*time.Millisecond))
		case i < 28:
			e.claim(e.enqueue(q, "ping", 0).ID)
		case i%3 == 0:
			e.finish(ok(e.claim(e.enqueue(q, "ping", 0, retries).ID), `1`))
		case i%3 == 1:
			e.cancel(e.enqueue(q, "ping", 0).ID)
		default:
			e.finish(fail(e.claim(e.enqueue(q, "fail", 0, retries).ID), "x", 0))
		}
		e.clock.Advance(time.Millisecond)
	}
	for _, q := range []string{"", "page-a"} {
		for _, st := range append([]queue.Status{""}, queue.Statuses...) {
			whole := e.list(queue.Filter{Queue: q, Status: st, Limit: queue.MaxListLimit})
			if len(whole) < 2 {
				t.Fatalf("%q jobs of queue %q: %d, want several", st, q, len(whole))
			}
			sizes := []int{1, 2, 3, 5}
			if st == "" {
				sizes = []int{5, 7}
			}
			for _, size := range sizes {
				paged := []string{}
				for off := 0; off <= len(whole); off += size {
					got := e.list(queue.Filter{Queue: q, Status: st, Limit: size, Offset: off})
					if want := min(size, len(whole)-off); len(got) != want {
						t.Errorf("%q jobs of queue %q, offset %d, limit %d: %d jobs, want %d", st, q, off, size, len(got), want)
					}
					paged = append(paged, got...)
				}
				diff(t, fmt.Sprintf("%q jobs of queue %q in pages of %d", st, q, size), whole, paged)
				for _, off := range []int{len(whole), len(whole) + size, 10 * len(whole)} {
					diff(t, fmt.Sprintf("%q jobs of queue %q from offset %d", st, q, off), []string{},
						e.list(queue.Filter{Queue: q, Status: st, Limit: size, Offset: off}))
				}
			}
		}
	}
}

// testListPagesTied: pages of one queue's jobs of one status follow each
// other when the jobs tie on the time the listing orders them by (the
// clock never moves: one outcome batch, or one tick, stamps its jobs with
// one time). A cut among tied jobs picked them in the set's order, not the
// listing's, so pages of dead jobs (and, on memory, of every finished
// status) repeated some and never showed others (review cr33 HIGH-1).
func testListPagesTied(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	noRetry := func(j *queue.Job) { j.MaxRetries = 0 }
	for range 9 {
		e.enqueue("tied", "ping", 0)
		e.enqueue("tied", "ping", time.Hour)
		e.finish(fail(e.claim(e.enqueue("tied", "fail", 0).ID), "x", time.Hour))
		e.claim(e.enqueue("tied", "ping", 0).ID)
		e.finish(ok(e.claim(e.enqueue("tied", "ping", 0, noRetry).ID), `1`))
		e.cancel(e.enqueue("tied", "ping", 0).ID)
		e.finish(fail(e.claim(e.enqueue("tied", "fail", 0, noRetry).ID), "x", 0))
	}
	for _, st := range queue.Statuses {
		whole := e.list(queue.Filter{Queue: "tied", Status: st, Limit: queue.MaxListLimit})
		if len(whole) != 9 {
			t.Fatalf("%s jobs: %d, want 9", st, len(whole))
		}
		for _, size := range []int{1, 2, 4} {
			paged := []string{}
			for off := 0; off < len(whole); off += size {
				paged = append(paged, e.list(queue.Filter{Queue: "tied", Status: st, Limit: size, Offset: off})...)
			}
			diff(t, fmt.Sprintf("%s jobs, all at one time, in pages of %d", st, size), whole, paged)
		}
	}
}

func testBlockingFetch(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	e.enqueue("", "ping", 0)
	e.fetchOne() // the queue exists and is empty
	start := time.Now()
	ls, err := e.b.Fetch(e.ctx, queue.FetchRequest{N: 1, Lease: lease, Wait: 1500 * time.Millisecond})
	if err != nil || len(ls) != 0 {
		t.Fatalf("Fetch of an empty queue = %v, %v; want nothing", ls, err)
	}
	if el := time.Since(start); el < 500*time.Millisecond {
		t.Errorf("Fetch with Wait returned after %v: it did not block", el)
	}
	got := make(chan []queue.Lease, 1)
	go func() {
		ls, _ := e.b.Fetch(e.ctx, queue.FetchRequest{N: 1, Lease: lease, Wait: 5 * time.Second})
		got <- ls
	}()
	time.Sleep(50 * time.Millisecond)
	j := e.enqueue("", "ping", 0)
	select {
	case ls := <-got:
		diff(t, "woken fetch", []string{j.ID}, leaseIDs(ls))
	case <-time.After(5 * time.Second):
		t.Fatal("a blocked Fetch did not take a job enqueued meanwhile")
	}
	// A job enqueued in a queue the broker has never seen wakes it too.
	go func() {
		ls, _ := e.b.Fetch(e.ctx, queue.FetchRequest{N: 1, Lease: lease, Wait: 5 * time.Second})
		got <- ls
	}()
	time.Sleep(50 * time.Millisecond)
	j = e.enqueue("fresh", "ping", 0)
	select {
	case ls := <-got:
		diff(t, "woken fetch, new queue", []string{j.ID}, leaseIDs(ls))
	case <-time.After(5 * time.Second):
		t.Fatal("a blocked Fetch did not take a job of a new queue")
	}
}

func (e *env) queues() []string {
	e.t.Helper()
	qs, err := e.b.Queues(e.ctx)
	if err != nil {
		e.t.Fatalf("Queues: %v", err)
	}
	return append([]string{}, qs...)
}

// testRemoveQueue: an idle queue goes with its finished jobs (succeeded,
// dead, cancelled) and totals; the other queues stay; the name can be used
// again, from zero.
func testRemoveQueue(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	_, err := e.b.RemoveQueue(e.ctx, "never")
	wantCode(t, "RemoveQueue of a queue that never was", err, core.CodeNotFound)

	keep := e.enqueue("keep", "ping", 0)
	done := e.enqueue("old", "ping", 0)
	dead := e.enqueue("old", "fail", 0, func(j *queue.Job) { j.MaxRetries = 0 })
	cancelled := e.enqueue("old", "ping", time.Hour)
	ls := e.fetch(2, "old")
	diff(t, "fetched", []string{done.ID, dead.ID}, leaseIDs(ls))
	diff(t, "finished", []queue.Status{queue.StatusSucceeded, queue.StatusDead}, e.finish(ok(ls[0], `1`), fail(ls[1], "x", 0)))
	if _, _, err := e.b.Cancel(e.ctx, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	diff(t, "queues before", []string{"keep", "old"}, e.queues())

	n, err := e.b.RemoveQueue(e.ctx, "old")
	if err != nil {
		t.Fatalf("RemoveQueue: %v", err)
	}
	diff(t, "jobs removed with the queue", 3, n)
	diff(t, "queues after", []string{"keep"}, e.queues())
	for _, j := range []*queue.Job{done, dead, cancelled} {
		_, err := e.b.Get(e.ctx, j.ID)
		wantCode(t, "Get of a removed queue's job", err, core.CodeNotFound)
	}
	diff(t, "stats of the removed queue", queue.Stats{Queue: "old"}, e.stats("old"))
	listed, err := e.b.List(e.ctx, queue.Filter{Queue: "old"})
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "jobs listed in the removed queue", 0, len(listed))
	_, err = e.b.RemoveQueue(e.ctx, "old")
	wantCode(t, "RemoveQueue twice", err, core.CodeNotFound)
	diff(t, "the other queue's job", queue.StatusPending, e.get(keep.ID).Status)

	// The name is free: a job makes the queue again, with fresh totals.
	again := e.enqueue("old", "ping", 0)
	diff(t, "queues after a new job", []string{"keep", "old"}, e.queues())
	s := e.stats("old")
	diff(t, "totals of the queue made again", [2]int64{1, 1}, [2]int64{s.Enqueued, s.Pending})
	diff(t, "the new job is fetched", []string{again.ID}, leaseIDs(e.fetch(5, "old")))
}

// testRemoveQueueBusy: a queue with a job still to run, in any of the four
// states, is refused and left exactly as it was.
func testRemoveQueueBusy(t *testing.T, nb NewBroker) {
	tests := []struct {
		name  string
		setup func(e *env) *queue.Job
		state string
	}{
		{"pending", func(e *env) *queue.Job { return e.enqueue("q", "ping", 0) }, "1 pending"},
		{"scheduled", func(e *env) *queue.Job { return e.enqueue("q", "ping", time.Hour) }, "1 scheduled"},
		{"retry", func(e *env) *queue.Job {
			j := e.enqueue("q", "fail", 0)
			e.finish(fail(e.fetchOne(), "x", time.Hour))
			return j
		}, "1 awaiting a retry"},
		{"running", func(e *env) *queue.Job {
			j := e.enqueue("q", "sleep", 0)
			e.fetchOne()
			return j
		}, "1 running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, nb, 0)
			j := tt.setup(e)
			before := e.get(j.ID)
			statsBefore := e.stats("q")
			_, err := e.b.RemoveQueue(e.ctx, "q")
			wantCode(t, "RemoveQueue of a busy queue", err, core.CodeConflict)
			if err != nil && !strings.Contains(err.Error(), tt.state) {
				t.Errorf("refusal %q does not say %q", err, tt.state)
			}
			diff(t, "queues", []string{"q"}, e.queues())
			diff(t, "the job", before, e.get(j.ID))
			diff(t, "stats", statsBefore, e.stats("q"))
		})
	}
}

// testRemoveQueueRacingEnqueue runs RaceRemoveQueue on one broker.
func testRemoveQueueRacingEnqueue(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	RaceRemoveQueue(t, e.b, e.b)
}

// RaceRemoveQueue: removals of a queue (by remover) racing with enqueues
// into it (by enqueuer, which may be another broker on the same backend,
// still thinking the queue listed) never lose a job. Each job stored is
// pending and its queue is listed (at once, or within a moment on a
// cluster, where a removal takes the queue out of the index and puts it
// back when jobs made it again); the enqueuer then runs them, so that the
// queue is often idle, but for the last few, which must be fetched from all
// queues at the end.
func RaceRemoveQueue(t *testing.T, enqueuer, remover queue.Broker) {
	ctx := context.Background()
	const jobs, kept = 200, 5
	var left []string
	var done atomic.Bool
	var removed atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		defer done.Store(true)
		for i := range jobs {
			before := removed.Load()
			j := &queue.Job{ID: queue.NewID(), Queue: "race", Type: "ping", Source: queue.SourceAPI}
			if err := enqueuer.Enqueue(ctx, queue.NewJob{Job: j}); err != nil {
				t.Errorf("Enqueue: %v", err)
				return
			}
			if got, err := enqueuer.Get(ctx, j.ID); err != nil || got.Status != queue.StatusPending {
				t.Errorf("job %s just stored: %v, %v", j.ID, got, err)
				return
			}
			if !listedSoon(remover, "race") {
				t.Errorf("job %s is pending in queue race, which is not listed", j.ID)
				return
			}
			if i >= jobs-kept {
				left = append(left, j.ID)
				continue
			}
			for {
				ls, err := enqueuer.Fetch(ctx, queue.FetchRequest{Queues: []string{"race"}, N: 10, Lease: lease})
				if err != nil || len(ls) == 0 {
					break
				}
				outs := make([]queue.Outcome, len(ls))
				for k, l := range ls {
					outs[k] = ok(l, `1`)
				}
				if _, err := enqueuer.Finish(ctx, outs); err != nil {
					t.Errorf("Finish: %v", err)
					return
				}
			}
			runtime.Gosched() // the remover's turn, on an in-process broker
			if i%20 == 0 {    // and now and then, wait for a removal of the idle queue
				for t0 := time.Now(); removed.Load() == before && time.Since(t0) < time.Second; {
					time.Sleep(50 * time.Microsecond)
				}
			}
		}
	})
	wg.Go(func() {
		for !done.Load() {
			if _, err := remover.RemoveQueue(ctx, "race"); err == nil {
				removed.Add(1)
			} else if c := core.ErrorCode(err); c != core.CodeConflict && c != core.CodeNotFound {
				t.Errorf("RemoveQueue: %v", err)
				return
			}
		}
	})
	wg.Wait()
	if t.Failed() {
		return
	}
	qs, err := remover.Queues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "queues at the end", []string{"race"}, append([]string{}, qs...))
	var got []string
	for {
		ls, err := remover.Fetch(ctx, queue.FetchRequest{N: 50, Lease: lease})
		if err != nil {
			t.Fatal(err)
		}
		if len(ls) == 0 {
			break
		}
		got = append(got, leaseIDs(ls)...)
	}
	diff(t, "the last jobs, fetched from all queues", left, got)
	if removed.Load() < jobs/20 {
		t.Errorf("%d removals among %d enqueues: the race was not run", removed.Load(), jobs)
	}
	t.Logf("%d removals among %d enqueues", removed.Load(), jobs)
}

// listedSoon reports whether b lists queue q now or within 100ms.
func listedSoon(b queue.Broker, q string) bool {
	for range 100 {
		qs, err := b.Queues(context.Background())
		if err == nil && slices.Contains(qs, q) {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return false
}
