package brokertest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
)

// requeueDead runs RequeueDead and fails the test on an error.
func (e *env) requeueDead(q string, before time.Time, limit int) queue.RequeueDeadResult {
	e.t.Helper()
	r, err := e.b.RequeueDead(e.ctx, q, before, limit)
	if err != nil {
		e.t.Fatalf("RequeueDead(%s, %v, %d): %v", q, before, limit, err)
	}
	return r
}

// testRequeueDead: RequeueDead moves exactly one queue's dead jobs that
// died at or before the cut, oldest death first, to the tail of pending
// with their retries reset, at most limit of them, and says how many are
// left; the other statuses and the other queue stay as they were; a job
// that dies after the cut (one this very call requeued included) is not
// taken; an unknown queue is not found, one with no dead job moves none.
// Fetched, each job comes once.
func testRequeueDead(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	const q = "bulk"
	ping := e.enqueue(q, "ping", 0) // pending, ahead of the requeued ones
	d1 := e.die(q, false)
	other := e.die("bulk-other", false)
	d2 := e.die(q, true) // its lease expired on its last try
	done := e.succeed(q)
	cancelled := e.cancelNew(q)
	retrying := e.enqueue(q, "fail", 0)
	e.finish(fail(e.claim(retrying.ID), "x", time.Hour))
	d3 := e.die(q, false)
	cut := e.get(d3.ID).FinishedAt
	d4 := e.die(q, false) // after the cut

	r := e.requeueDead(q, cut, 2)
	diff(t, "first call: the two oldest deaths", []string{d1.ID, d2.ID}, r.IDs)
	diff(t, "first call: remaining at or before the cut, cut", [2]any{1, cut}, [2]any{r.Remaining, r.Cut})
	r = e.requeueDead(q, r.Cut, 10)
	diff(t, "second call: the last one at or before the cut", []string{d3.ID}, r.IDs)
	diff(t, "second call: remaining", 0, r.Remaining)
	for _, j := range []*queue.Job{d1, d2, d3} {
		g := e.get(j.ID)
		diff(t, "requeued "+j.ID, [4]any{queue.StatusPending, 0, time.Time{}, e.clock.Now()},
			[4]any{g.Status, g.Retries, g.FinishedAt, g.ReadyAt})
	}
	for id, want := range map[string]queue.Status{d4.ID: queue.StatusDead, other.ID: queue.StatusDead, done.ID: queue.StatusSucceeded,
		cancelled.ID: queue.StatusCancelled, retrying.ID: queue.StatusFailed, ping.ID: queue.StatusPending} {
		diff(t, "untouched "+id, want, e.statusOf(id))
	}
	diff(t, "pending, in line: the ping, then the deaths in order", []string{ping.ID, d1.ID, d2.ID, d3.ID},
		e.list(queue.Filter{Queue: q, Status: queue.StatusPending}))
	diff(t, "dead list", []string{d4.ID}, e.list(queue.Filter{Queue: q, Status: queue.StatusDead}))
	diff(t, "dead gauges", [2]int64{1, 1}, [2]int64{e.stats(q).Dead, e.stats("bulk-other").Dead})

	// No cut: those that died before the call. d4 is taken, runs, and dies
	// again in the call's millisecond: after its cut, so not taken again.
	r = e.requeueDead(q, time.Time{}, 10)
	diff(t, "no cut: d4, cut now - 1ms", [3]any{[]string{d4.ID}, 0, e.clock.Now().Add(-time.Millisecond)},
		[3]any{r.IDs, r.Remaining, r.Cut})
	e.finish(fail(e.claim(d4.ID), "again", 0))
	diff(t, "d4 dead again", queue.StatusDead, e.statusOf(d4.ID))
	again := e.requeueDead(q, r.Cut, 10)
	diff(t, "a job that died after the cut: not taken", [2]any{[]string(nil), 0}, [2]any{again.IDs, again.Remaining})
	diff(t, "d4 still dead", queue.StatusDead, e.statusOf(d4.ID))

	// A queue with no dead job, and one that does not exist.
	e.succeed("bulk-none")
	r = e.requeueDead("bulk-none", time.Time{}, 10)
	diff(t, "a queue with no dead job", [2]any{[]string(nil), 0}, [2]any{r.IDs, r.Remaining})
	_, err := e.b.RequeueDead(e.ctx, "bulk-nope", time.Time{}, 10)
	wantCode(t, "RequeueDead of an unknown queue", err, core.CodeNotFound)

	diff(t, "fetched, each once, in line", []string{ping.ID, d1.ID, d2.ID, d3.ID}, leaseIDs(e.fetch(100, q)))
	diff(t, "nothing more to fetch", []string{}, append([]string{}, leaseIDs(e.fetch(100, q))...))
}

// makeDead makes n new jobs of queue q dead (MakeDead).
func (e *env) makeDead(q string, n int) []string {
	e.t.Helper()
	return MakeDead(e.t, e.b, e.clock, q, n)
}

// MakeDead makes n new jobs of queue q dead on b in one batch (they die in
// the same millisecond of clock, which it then moves on by one) and returns
// their ids in the order RequeueDead takes them: by id, as ties of a death
// time are ordered.
func MakeDead(tb testing.TB, b queue.Broker, clock *Clock, q string, n int) []string {
	tb.Helper()
	ctx := context.Background()
	jobs := make([]queue.NewJob, n)
	for i := range jobs {
		jobs[i] = queue.NewJob{Job: &queue.Job{ID: queue.NewID(), Queue: q, Type: "fail", Source: queue.SourceAPI}}
	}
	if err := b.Enqueue(ctx, jobs...); err != nil {
		tb.Fatal(err)
	}
	ls, err := b.Fetch(ctx, queue.FetchRequest{Queues: []string{q}, N: n, Lease: lease})
	if err != nil || len(ls) != n {
		tb.Fatalf("fetched %d jobs, want %d (%v)", len(ls), n, err)
	}
	outs := make([]queue.Outcome, n)
	ids := make([]string, n)
	for i, l := range ls {
		outs[i] = fail(l, "x", 0)
		ids[i] = l.Job.ID
	}
	if _, err := b.Finish(ctx, outs); err != nil {
		tb.Fatalf("Finish: %v", err)
	}
	clock.Advance(time.Millisecond)
	slices.Sort(ids)
	return ids
}

// testRequeueDeadMany: more dead jobs than one Redis script call takes
// (500) are moved in order across calls, up to the limit, the rest counted.
func testRequeueDeadMany(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 2000)
	const q = "bulk-many"
	first := e.makeDead(q, 700)
	second := e.makeDead(q, 500)
	want := slices.Concat(first, second)
	r := e.requeueDead(q, time.Time{}, 1100)
	diff(t, "the first 1100, in order of death", want[:1100], r.IDs)
	diff(t, "remaining", 100, r.Remaining)
	r = e.requeueDead(q, r.Cut, queue.MaxRequeueDead)
	diff(t, "the last 100", want[1100:], r.IDs)
	diff(t, "remaining at the end", 0, r.Remaining)
	s := e.stats(q)
	diff(t, "gauges: pending, dead", [2]int64{1200, 0}, [2]int64{s.Pending, s.Dead})
	diff(t, "fetched, each once, in order", want, leaseIDs(e.fetch(2000, q)))
}

// testRequeueDeadRacing: two RequeueDead calls and a Requeue of each job,
// all at once, move each dead job to pending exactly once: the calls'
// ids and the successful Requeues together name every job once, and the
// queue's line holds each once.
func testRequeueDeadRacing(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 1000)
	const q = "bulk-race"
	dead := e.makeDead(q, 300)
	var (
		mu    sync.Mutex
		moved []string
		wg    sync.WaitGroup
	)
	add := func(ids ...string) {
		mu.Lock()
		moved = append(moved, ids...)
		mu.Unlock()
	}
	for range 2 {
		wg.Go(func() {
			r, err := e.b.RequeueDead(e.ctx, q, time.Time{}, queue.MaxRequeueDead)
			if err != nil {
				t.Errorf("RequeueDead: %v", err)
			}
			add(r.IDs...)
		})
	}
	for _, part := range [][]string{dead[:150], dead[150:]} {
		wg.Go(func() {
			for i := len(part) - 1; i >= 0; i-- { // from the other end
				_, from, err := e.b.Requeue(e.ctx, part[i])
				switch {
				case err == nil && from == queue.StatusDead:
					add(part[i])
				case err == nil:
					t.Errorf("Requeue(%s) moved it from %s", part[i], from)
				case core.ErrorCode(err) != core.CodeConflict:
					t.Errorf("Requeue(%s): %v, want a conflict or success", part[i], err)
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(moved)
	diff(t, "jobs moved, each once", dead, moved)
	s := e.stats(q)
	diff(t, "gauges: pending (the line's length), dead", [2]int64{300, 0}, [2]int64{s.Pending, s.Dead})
	got := leaseIDs(e.fetch(1000, q))
	slices.Sort(got)
	diff(t, "fetched, each once", dead, got)
}
