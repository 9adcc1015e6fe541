package brokertest

import (
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
)

// setPaused runs SetPaused and fails the test on an error.
func (e *env) setPaused(q string, paused bool) bool {
	e.t.Helper()
	changed, err := e.b.SetPaused(e.ctx, q, paused)
	if err != nil {
		e.t.Fatalf("SetPaused(%s, %v): %v", q, paused, err)
	}
	return changed
}

// testPause: a paused queue gives Fetch nothing, named or not, while the
// other queues' jobs run; it still takes enqueues, its tick still makes a
// due scheduled job pending, and Claim still starts its jobs; resumed,
// Fetch takes its jobs in line. Pausing a paused queue (resuming a running
// one) changes nothing and is no error; an unknown queue is not found; a
// queue removed while paused and made again is not paused.
func testPause(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	const q, other = "held", "held-other"
	a1 := e.enqueue(q, "ping", 0)
	a2 := e.enqueue(q, "ping", 0)
	o1 := e.enqueue(other, "ping", 0)

	diff(t, "pause: changed", true, e.setPaused(q, true))
	diff(t, "pause again: unchanged", false, e.setPaused(q, true))
	diff(t, "paused gauges: queue, other", [2]bool{true, false}, [2]bool{e.stats(q).Paused, e.stats(other).Paused})

	diff(t, "fetch of every queue: only the other's job", []string{o1.ID}, leaseIDs(e.fetch(10)))
	diff(t, "fetch of the paused queue: nothing", []string{}, append([]string{}, leaseIDs(e.fetch(10, q))...))

	a3 := e.enqueue(q, "ping", 0)
	sch := e.enqueue(q, "ping", time.Second)
	e.clock.Advance(2 * time.Second)
	r := e.tick()
	diff(t, "tick promotes the due scheduled job", 1, r.Scheduled)
	diff(t, "the scheduled job is pending", queue.StatusPending, e.statusOf(sch.ID))
	s := e.stats(q)
	diff(t, "pending, started while paused", [2]int64{4, 0}, [2]int64{s.Pending, s.Started})

	c := e.claim(a3.ID)
	diff(t, "Claim of a paused queue's job", queue.StatusRunning, e.statusOf(a3.ID))
	e.finish(ok(c, `"pong"`))

	diff(t, "resume: changed", true, e.setPaused(q, false))
	diff(t, "resume again: unchanged", false, e.setPaused(q, false))
	diff(t, "paused gauge after resume", false, e.stats(q).Paused)
	got := e.fetch(10, q)
	diff(t, "resumed: its jobs in line", []string{a1.ID, a2.ID, sch.ID}, leaseIDs(got))

	for _, paused := range []bool{true, false} {
		_, err := e.b.SetPaused(e.ctx, "held-nope", paused)
		wantCode(t, "SetPaused of an unknown queue", err, core.CodeNotFound)
	}
	diff(t, "an unknown queue is not made", 0, len(e.list(queue.Filter{Queue: "held-nope"})))

	// Removed while paused, then made again: it runs.
	for _, l := range got {
		e.finish(ok(l, `"pong"`))
	}
	e.setPaused(q, true)
	if _, err := e.b.RemoveQueue(e.ctx, q); err != nil {
		t.Fatalf("RemoveQueue: %v", err)
	}
	again := e.enqueue(q, "ping", 0)
	diff(t, "made again: not paused", false, e.stats(q).Paused)
	diff(t, "made again: its job fetched", []string{again.ID}, leaseIDs(e.fetch(10, q)))
}

// testPauseBlockingFetch: a Fetch blocked on a paused queue's pending job
// stays blocked, and returns the job promptly once the queue is resumed,
// long before its wait ends.
func testPauseBlockingFetch(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	const q = "held-wait"
	j := e.enqueue(q, "ping", 0)
	e.setPaused(q, true)
	const wait = 30 * time.Second
	type result struct {
		ls  []queue.Lease
		err error
	}
	done := make(chan result, 1)
	go func() {
		ls, err := e.b.Fetch(e.ctx, queue.FetchRequest{Queues: []string{q}, N: 1, Lease: lease, Wait: wait})
		done <- result{ls, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("Fetch of a paused queue returned %v, %v before the resume", leaseIDs(r.ls), r.err)
	case <-time.After(500 * time.Millisecond):
	}
	resumed := time.Now()
	e.setPaused(q, false)
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("Fetch: %v", r.err)
		}
		diff(t, "fetched after the resume", []string{j.ID}, leaseIDs(r.ls))
		if since := time.Since(resumed); since > 5*time.Second {
			t.Errorf("Fetch returned %v after the resume, want well before its %v wait", since, wait)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Fetch still blocked 10s after the resume (its wait: %v)", wait)
	}
}
