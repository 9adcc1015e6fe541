package redisbroker_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
)

// The tests of this file stall Redis (see stall_test.go) under the scripts
// that start and finish runs: run late, a fetch or claim would lease jobs
// to a caller that has gone, and a finish would write outcomes that its
// caller then writes again, finding the lease gone, so that the transition
// is never counted.

// stallTimeout bounds a call that must fail on a stalled Redis, with room
// for go-redis's own retries (which these tests must survive when run
// without the deadlines, so that they fail on what they check).
const stallTimeout = 15 * time.Second

// await returns what ch delivers, failing the test after stallTimeout.
func await[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(stallTimeout):
		t.Fatalf("%s: no answer within %v", what, stallTimeout)
		panic("unreachable")
	}
}

// wantJob checks a job's status and attempts.
func wantJob(t *testing.T, b *redisbroker.Broker, id string, status queue.Status, attempts int) {
	t.Helper()
	j, err := b.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	type state struct {
		Status   queue.Status
		Attempts int
	}
	if diff := cmp.Diff(state{status, attempts}, state{j.Status, j.Attempts}); diff != "" {
		t.Errorf("job %s (-want +got):\n%s", id, diff)
	}
}

type fetched struct {
	leases []queue.Lease
	err    error
}

// fetchOne fetches from the default queue without waiting, in the
// background, as the pool does (a context without deadline).
func fetchOne(b *redisbroker.Broker) <-chan fetched {
	ch := make(chan fetched, 1)
	go func() {
		ls, err := b.Fetch(context.Background(), queue.FetchRequest{Queues: []string{queue.DefaultQueue}, N: 1, Lease: 30 * time.Second})
		ch <- fetched{ls, err}
	}()
	return ch
}

// enqueued enqueues a ping job and returns it.
func enqueued(t *testing.T, b *redisbroker.Broker) *queue.Job {
	t.Helper()
	j := pingJob()
	if err := b.Enqueue(context.Background(), queue.NewJob{Job: j}); err != nil {
		t.Fatal(err)
	}
	return j
}

// warmFetch fetches (and so starts) one job, so that the connection and
// the clock are there before a stall.
func warmFetch(t *testing.T, b *redisbroker.Broker) queue.Lease {
	t.Helper()
	enqueued(t, b)
	r := await(t, "warm-up fetch", fetchOne(b))
	if r.err != nil || len(r.leases) != 1 {
		t.Fatalf("warm-up fetch: %v, %v", r.leases, r.err)
	}
	return r.leases[0]
}

// TestFetchDuringStallStartsNothing: a fetch that times out on a stalled
// Redis fails after about one read timeout, and when Redis resumes and runs
// the dequeue script it held, the script starts nothing: the job is still
// pending, its start uncounted, and the next fetch gets it at its first
// attempt.
func TestFetchDuringStallStartsNothing(t *testing.T) {
	const readTimeout = time.Second
	srv, b, _ := stallBroker(t, readTimeout)
	warmFetch(t, b)
	j := enqueued(t, b)
	srv.Pause()
	start := time.Now()
	r := await(t, "fetch from a stalled Redis", fetchOne(b))
	waited := time.Since(start)
	if r.err == nil && len(r.leases) > 0 {
		t.Fatalf("fetch from a stalled Redis got %d leases", len(r.leases))
	}
	if waited > 3*readTimeout+readTimeout/2 {
		t.Errorf("fetch from a stalled Redis took %v to fail, want about one read timeout (%v)", waited, readTimeout)
	}
	resume(t, srv)
	wantJob(t, b, j.ID, queue.StatusPending, 0)
	st, err := b.Stats(context.Background(), queue.DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([2]int64{1, 1}, [2]int64{st.Pending, st.Started}); diff != "" {
		t.Errorf("after the stall, {pending, started} (-want +got):\n%s", diff)
	}
	r = await(t, "fetch after the stall", fetchOne(b))
	if r.err != nil || len(r.leases) != 1 {
		t.Fatalf("fetch after the stall: %v, %v", r.leases, r.err)
	}
	if l := r.leases[0]; l.Job.ID != j.ID || l.Job.Attempts != 1 {
		t.Errorf("fetch after the stall got job %s at attempt %d, want %s at attempt 1", l.Job.ID, l.Job.Attempts, j.ID)
	}
}

// TestFetchRunLateRefused: a dequeue script that Redis runs after the
// deadline it carries (half its caller's time), the caller still waiting,
// starts nothing, and the caller gets an error (Redis answered: nothing
// was started), so it simply fetches again.
func TestFetchRunLateRefused(t *testing.T) {
	const readTimeout = 4 * time.Second // the script's deadline is 2 s after it is sent
	srv, b, _ := stallBroker(t, readTimeout)
	warmFetch(t, b)
	j := enqueued(t, b)
	srv.Pause()
	ch := fetchOne(b)
	time.Sleep(readTimeout*2/3 - 50*time.Millisecond) // past the script's deadline, before the caller's
	srv.Resume()
	r := await(t, "fetch run late", ch)
	if r.err == nil || len(r.leases) > 0 {
		t.Errorf("a dequeue script run after its deadline: leases %v, error %v; want no lease and an error", r.leases, r.err)
	}
	resume(t, srv)
	wantJob(t, b, j.ID, queue.StatusPending, 0)
	r = await(t, "fetch after the stall", fetchOne(b))
	if r.err != nil || len(r.leases) != 1 || r.leases[0].Job.Attempts != 1 {
		t.Errorf("fetch after the stall: %v, %v; want the job at attempt 1", r.leases, r.err)
	}
}

// TestClaimRunLateRefused: a claim script that Redis runs after its
// deadline starts nothing (the job stays pending) and Claim fails; a claim
// afterwards starts the job at its first attempt.
func TestClaimRunLateRefused(t *testing.T) {
	const readTimeout = 4 * time.Second
	srv, b, calls := stallBroker(t, readTimeout)
	warmFetch(t, b)
	j := enqueued(t, b)
	// Claim's Get runs first (on a single server, a script too: the
	// first EVALSHA), then its claim script stalls.
	calls.onceBefore("evalsha", func() { calls.onceBefore("evalsha", srv.Pause) })
	type claimed struct {
		l   queue.Lease
		err error
	}
	ch := make(chan claimed, 1)
	go func() {
		l, err := b.Claim(context.Background(), j.ID, 30*time.Second)
		ch <- claimed{l, err}
	}()
	time.Sleep(readTimeout*2/3 - 50*time.Millisecond)
	srv.Resume()
	c := await(t, "claim run late", ch)
	if c.err == nil {
		t.Errorf("a claim script run after its deadline started job %s (attempt %d)", c.l.Job.ID, c.l.Job.Attempts)
	}
	resume(t, srv)
	wantJob(t, b, j.ID, queue.StatusPending, 0)
	l, err := b.Claim(context.Background(), j.ID, 30*time.Second)
	if err != nil || l.Job.Attempts != 1 {
		t.Errorf("claim after the stall: %+v, %v; want the job at attempt 1", l.Job, err)
	}
}

// TestFinishRunLateRefused: a finish script that Redis runs after its
// deadline, its caller still waiting, writes nothing, and Finish reports
// the outcome unwritten (a *queue.FinishError), not a lost lease: the
// caller sends it again, and that write succeeds.
func TestFinishRunLateRefused(t *testing.T) {
	const readTimeout = 4 * time.Second
	srv, b, _ := stallBroker(t, readTimeout)
	l := warmFetch(t, b)
	o := []queue.Outcome{{Ref: l.Ref(), Result: json.RawMessage(`"done"`)}}
	srv.Pause()
	type finished struct {
		to  []queue.Status
		err error
	}
	ch := make(chan finished, 1)
	go func() {
		to, err := b.Finish(context.Background(), o)
		ch <- finished{to, err}
	}()
	time.Sleep(readTimeout*2/3 - 50*time.Millisecond)
	srv.Resume()
	f := await(t, "finish run late", ch)
	var fe *queue.FinishError
	if !errors.As(f.err, &fe) {
		t.Fatalf("a finish script run after its deadline: statuses %q, error %v; want a *queue.FinishError", f.to, f.err)
	}
	if diff := cmp.Diff([]bool{true}, fe.Unwritten); diff != "" {
		t.Errorf("unwritten outcomes (-want +got):\n%s", diff)
	}
	resume(t, srv)
	wantJob(t, b, l.Job.ID, queue.StatusRunning, 1)
	to, err := b.Finish(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]queue.Status{queue.StatusSucceeded}, to); diff != "" {
		t.Errorf("finish sent again (-want +got):\n%s", diff)
	}
}

// finishObserver counts transitions and says when a finish failed.
type finishObserver struct {
	transitions
	failed chan struct{} // gets one value per failed finish, if there is room
}

func (o *finishObserver) BackendError(op string, _ error) {
	if op == "finish" {
		select {
		case o.failed <- struct{}{}:
		default:
		}
	}
}

// TestFinishDuringStallWritesNothing: a pool's finish that times out on a
// stalled Redis writes nothing when Redis runs it later; the pool's retry
// writes the outcome and counts its transition, once.
func TestFinishDuringStallWritesNothing(t *testing.T) {
	srv, b, _ := stallBroker(t, time.Second)
	obs := &finishObserver{failed: make(chan struct{}, 1)}
	reg := queue.NewRegistry()
	running, release := make(chan struct{}, 1), make(chan struct{})
	err := reg.Register("block", queue.Handler{Run: func(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
		running <- struct{}{}
		<-release
		return json.RawMessage(`"done"`), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	svc := queue.NewService(queue.Deps{Broker: b, Registry: reg, Observer: obs},
		queue.Config{Concurrency: 1, Prefetch: -1, Lease: 30 * time.Second, TickInterval: time.Hour})
	j := &queue.Job{ID: queue.NewID(), Queue: queue.DefaultQueue, Type: "block", Source: queue.SourceAPI}
	if err := b.Enqueue(context.Background(), queue.NewJob{Job: j}); err != nil {
		t.Fatal(err)
	}
	pool := queue.NewPool(svc)
	pool.Start()
	var once sync.Once
	shutdown := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), stallTimeout)
			defer cancel()
			if err := pool.Shutdown(ctx); err != nil {
				t.Errorf("pool shutdown: %v", err)
			}
		})
	}
	t.Cleanup(shutdown)
	await(t, "the job's start", running)
	srv.Pause()
	close(release)
	await(t, "the finish on a stalled Redis to fail", obs.failed)
	resume(t, srv) // the stalled script runs now
	deadline := time.Now().Add(stallTimeout)
	for obs.count(queue.StatusRunning, queue.StatusSucceeded) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	shutdown()
	if got := obs.count(queue.StatusRunning, queue.StatusSucceeded); got != 1 {
		t.Errorf("running→succeeded counted %d times, want 1: the outcome written by a stalled finish was not counted", got)
	}
	wantJob(t, b, j.ID, queue.StatusSucceeded, 1)
	st, err := b.Stats(context.Background(), queue.DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	if st.Succeeded != 1 {
		t.Errorf("succeeded total %d, want 1", st.Succeeded)
	}
}

// TestLeaseScriptsWithDeadline: with the clock learnt (so every script
// carries a deadline), fetch, claim and finish work as ever, a finish of
// several queues included.
func TestLeaseScriptsWithDeadline(t *testing.T) {
	_, b, _ := stallBroker(t, 3*time.Second)
	ctx := context.Background()
	var jobs []*queue.Job
	for _, q := range []string{queue.DefaultQueue, queue.DefaultQueue, "other"} {
		j := pingJob()
		j.Queue = q
		jobs = append(jobs, j)
		if err := b.Enqueue(ctx, queue.NewJob{Job: j}); err != nil {
			t.Fatal(err)
		}
	}
	fetch := func(q string) queue.Lease {
		t.Helper()
		ls, err := b.Fetch(ctx, queue.FetchRequest{Queues: []string{q}, N: 1, Lease: 30 * time.Second})
		if err != nil || len(ls) != 1 {
			t.Fatalf("Fetch from %s: %v, %v", q, ls, err)
		}
		return ls[0]
	}
	first := fetch(queue.DefaultQueue)
	claimed, err := b.Claim(ctx, jobs[1].ID, 30*time.Second)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	ls := []queue.Lease{first, claimed, fetch("other")}
	for i, l := range ls {
		if l.Job.ID != jobs[i].ID || l.Job.Attempts != 1 || l.Job.Status != queue.StatusRunning {
			t.Errorf("lease %d: job %s %s at attempt %d, want %s running at attempt 1", i, l.Job.ID, l.Job.Status, l.Job.Attempts, jobs[i].ID)
		}
	}
	out := []queue.Outcome{
		{Ref: ls[0].Ref(), Result: json.RawMessage(`1`)},
		{Ref: ls[1].Ref(), Err: "boom", RetryIn: time.Minute}, // max_retries 0: dead
		{Ref: ls[2].Ref(), Result: json.RawMessage(`2`)},
	}
	to, err := b.Finish(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]queue.Status{queue.StatusSucceeded, queue.StatusDead, queue.StatusSucceeded}, to); diff != "" {
		t.Errorf("Finish (-want +got):\n%s", diff)
	}
	// Finishing again: every lease is gone, nothing written.
	to, err = b.Finish(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]queue.Status{"", "", ""}, to); diff != "" {
		t.Errorf("Finish again (-want +got):\n%s", diff)
	}
}
