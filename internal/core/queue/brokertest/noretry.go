package brokertest

import (
	"slices"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// finalFail is a failed outcome not to retry (Outcome.NoRetry).
func finalFail(l queue.Lease, msg string) queue.Outcome {
	o := fail(l, msg, time.Hour)
	o.NoRetry = true
	return o
}

// testNoRetry: a failure not to retry makes its job dead at once, its
// retries left notwithstanding, as the last retry's failure does (retries
// counted, last_error, finished_at, in the dead list and gauge, the failed
// total), in the same Finish as an ordinary failure of a job with retries
// left, which is still retried; a recurring job's too (no next run, as for
// any death). Its idempotency key replays it, dead, as any dead job's.
// Requeue and RequeueDead bring such jobs back, retries reset.
func testNoRetry(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	const q = "noretry"
	five := func(j *queue.Job) { j.MaxRetries = 5 }
	keyedFinal := keyed(q, "order-1", "fp")
	keyedFinal.Type, keyedFinal.MaxRetries = "fail", 5
	e.enqueueKeyed(keyedFinal)
	final := keyedFinal.Job
	retried := e.enqueue(q, "fail", 0, five)
	recurring := e.enqueue(q, "fail", 0, five, func(j *queue.Job) { j.IntervalSeconds = 60 })
	ls := e.fetch(3, q)
	diff(t, "fetched", []string{final.ID, retried.ID, recurring.ID}, leaseIDs(ls))
	to := e.finish(finalFail(ls[0], "bad address (not retried)"), fail(ls[1], "boom", time.Second),
		finalFail(ls[2], "gone (not retried)"))
	diff(t, "statuses", []queue.Status{queue.StatusDead, queue.StatusFailed, queue.StatusDead}, to)

	type view struct {
		Status    queue.Status
		Attempts  int
		Retries   int
		LastError string
		Finished  time.Time
	}
	see := func(j *queue.Job) view { return view{j.Status, j.Attempts, j.Retries, j.LastError, j.FinishedAt} }
	now := e.clock.Now()
	diff(t, "dead at its first attempt", view{queue.StatusDead, 1, 1, "bad address (not retried)", now}, see(e.get(final.ID)))
	diff(t, "recurring, dead", view{queue.StatusDead, 1, 1, "gone (not retried)", now}, see(e.get(recurring.ID)))
	got := e.get(retried.ID)
	diff(t, "an ordinary failure is retried", [3]any{queue.StatusFailed, "boom", now.Add(time.Second)},
		[3]any{got.Status, got.LastError, got.RunAt})
	diff(t, "dead list", slices.Sorted(slices.Values([]string{final.ID, recurring.ID})), slices.Sorted(slices.Values(e.list(queue.Filter{Queue: q, Status: queue.StatusDead}))))
	s := e.stats(q)
	diff(t, "dead, retry, scheduled gauges; failed total", [4]int64{2, 1, 0, 3}, [4]int64{s.Dead, s.Retry, s.Scheduled, s.Failed})

	replay := keyed(q, "order-1", "fp")
	e.enqueueKeyed(replay)
	diff(t, "its idempotency key replays it, dead", [2]any{final.ID, queue.StatusDead}, [2]any{replay.Idem.Existing, e.statusOf(final.ID)})

	e.clock.Advance(2 * time.Hour)
	diff(t, "tick: only the ordinary failure is retried", queue.TickResult{Retried: 1}, e.tick())
	back, from, err := e.b.Requeue(e.ctx, final.ID)
	if err != nil {
		t.Fatalf("Requeue: %v", err)
	}
	diff(t, "Requeue", [3]any{queue.StatusDead, queue.StatusPending, 0}, [3]any{from, back.Status, back.Retries})
	r := e.requeueDead(q, time.Time{}, 10)
	diff(t, "RequeueDead", []string{recurring.ID}, r.IDs)
	diff(t, "all run again", []string{retried.ID, final.ID, recurring.ID}, leaseIDs(e.fetch(5, q)))
}
