package brokertest

import (
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
)

const idemTTL = time.Hour

// keyed is a new ping job of queue q carrying idempotency key key with
// fingerprint fp, kept idemTTL.
func keyed(q, key, fp string) queue.NewJob {
	return queue.NewJob{Job: &queue.Job{ID: queue.NewID(), Queue: q, Type: "ping", MaxRetries: 2, Source: queue.SourceAPI},
		Idem: &queue.Idempotency{Key: key, Fingerprint: fp, TTL: idemTTL}}
}

// enqueueKeyed enqueues jobs and fails the test on an error.
func (e *env) enqueueKeyed(jobs ...queue.NewJob) {
	e.t.Helper()
	if err := e.b.Enqueue(e.ctx, jobs...); err != nil {
		e.t.Fatalf("Enqueue: %v", err)
	}
}

// gone says whether job id is not stored.
func (e *env) gone(id string) bool {
	e.t.Helper()
	_, err := e.b.Get(e.ctx, id)
	if err != nil && core.ErrorCode(err) != core.CodeNotFound {
		e.t.Fatalf("Get(%s): %v", id, err)
	}
	return err != nil
}

// testIdempotency: a key's first job is stored and the key recorded; the
// same key and fingerprint again store nothing and name that job (a
// replay), with another fingerprint are refused (KeyReusedError), storing
// nothing; keys of different queues never meet; a batch replays its keyed
// job and stores the others; an expired key makes a new job.
func testIdempotency(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	const q, other = "idem", "idem-other"

	first := keyed(q, "order-1", "fp-a")
	e.enqueueKeyed(first)
	diff(t, "first: stored, no replay", [2]any{queue.StatusPending, ""}, [2]any{e.statusOf(first.ID), first.Idem.Existing})

	again := keyed(q, "order-1", "fp-a")
	e.enqueueKeyed(again)
	diff(t, "again: the first job named", first.ID, again.Idem.Existing)
	diff(t, "again: not stored", true, e.gone(again.ID))
	s := e.stats(q)
	diff(t, "one job enqueued, one pending", [2]int64{1, 1}, [2]int64{s.Enqueued, s.Pending})

	reused := keyed(q, "order-1", "fp-b")
	err := e.b.Enqueue(e.ctx, reused, keyed(q, "order-2", "fp-a"))
	wantCode(t, "another fingerprint", err, core.CodeKeyReused)
	if ie := queue.IdempotencyRefusal(err); ie == nil || ie.JobID != first.ID || !ie.Reused {
		t.Errorf("refusal %v: want the key's job %s, reused", err, first.ID)
	}
	diff(t, "refused: nothing stored", [2]int64{1, 1}, [2]int64{e.stats(q).Enqueued, e.stats(q).Pending})

	elsewhere := keyed(other, "order-1", "fp-b")
	e.enqueueKeyed(elsewhere)
	diff(t, "another queue: stored", [2]any{queue.StatusPending, ""}, [2]any{e.statusOf(elsewhere.ID), elsewhere.Idem.Existing})

	plain := queue.NewJob{Job: &queue.Job{ID: queue.NewID(), Queue: q, Type: "ping", Source: queue.SourceAPI}}
	replay, fresh := keyed(q, "order-1", "fp-a"), keyed(q, "order-3", "fp-a")
	delayed := keyed(q, "order-4", "fp-a")
	delayed.Delay = time.Minute
	e.enqueueKeyed(plain, replay, fresh, delayed)
	diff(t, "batch: replay of the first", first.ID, replay.Idem.Existing)
	diff(t, "batch: the others stored", []queue.Status{queue.StatusPending, queue.StatusPending, queue.StatusScheduled},
		[]queue.Status{e.statusOf(plain.ID), e.statusOf(fresh.ID), e.statusOf(delayed.ID)})
	diff(t, "batch: the replay not stored", true, e.gone(replay.ID))
	diff(t, "enqueued: first and three of the batch", int64(4), e.stats(q).Enqueued)
	r1, plain2, r3, fresh5 := keyed(q, "order-1", "fp-a"), queue.NewJob{Job: &queue.Job{ID: queue.NewID(), Queue: q, Type: "echo", Source: queue.SourceAPI}},
		keyed(q, "order-3", "fp-a"), keyed(q, "order-5", "fp-a")
	e.enqueueKeyed(r1, plain2, r3, fresh5)
	diff(t, "two replays in a batch", [2]string{first.ID, fresh.ID}, [2]string{r1.Idem.Existing, r3.Idem.Existing})
	diff(t, "two replays in a batch: the others stored as sent", [2]string{"echo", "ping"}, [2]string{e.get(plain2.ID).Type, e.get(fresh5.ID).Type})
	diff(t, "two replays in a batch: not stored", [2]bool{true, true}, [2]bool{e.gone(r1.ID), e.gone(r3.ID)})
	diff(t, "enqueued: and two more", int64(6), e.stats(q).Enqueued)
	d2 := keyed(q, "order-4", "fp-a")
	d2.Delay = time.Minute
	e.enqueueKeyed(d2)
	diff(t, "a delayed job's key replays", delayed.ID, d2.Idem.Existing)

	e.clock.Advance(idemTTL)
	late := keyed(q, "order-1", "fp-b")
	e.enqueueKeyed(late)
	diff(t, "expired key: a new job, whatever its fingerprint", [2]any{queue.StatusPending, ""}, [2]any{e.statusOf(late.ID), late.Idem.Existing})
	after := keyed(q, "order-1", "fp-b")
	e.enqueueKeyed(after)
	diff(t, "recorded again: the new job", late.ID, after.Idem.Existing)
}

// testIdempotencyGone: a key whose job is no longer kept (trimmed from
// the history) is refused (KeyGoneError), storing nothing, until it
// expires; a removed queue's keys go with it, so a key makes a new job.
func testIdempotencyGone(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 1)
	const q = "idem-gone"
	j := keyed(q, "k", "fp")
	e.enqueueKeyed(j)
	l := e.claim(j.ID)
	e.finish(ok(l, `"pong"`))
	e.clock.Advance(time.Millisecond)
	r := keyed(q, "k", "fp")
	e.enqueueKeyed(r)
	diff(t, "kept: replayed", j.ID, r.Idem.Existing)
	e.succeed(q) // trims j (history of 1)
	diff(t, "trimmed", true, e.gone(j.ID))
	enq := e.stats(q).Enqueued

	err := e.b.Enqueue(e.ctx, keyed(q, "k", "fp"))
	wantCode(t, "key of a job no longer kept", err, core.CodeConflict)
	if ie := queue.IdempotencyRefusal(err); ie == nil || ie.JobID != j.ID || ie.Reused {
		t.Errorf("refusal %v: want the key's job %s, gone", err, j.ID)
	}
	err = e.b.Enqueue(e.ctx, keyed(q, "k", "other-fp"))
	wantCode(t, "another fingerprint still says reused", err, core.CodeKeyReused)
	diff(t, "refused: nothing stored", enq, e.stats(q).Enqueued)

	// Removed with its queue: the key is free.
	const rq = "idem-removed"
	k1 := keyed(rq, "k", "fp")
	e.enqueueKeyed(k1)
	e.finish(ok(e.claim(k1.ID), `"pong"`))
	if _, err := e.b.RemoveQueue(e.ctx, rq); err != nil {
		t.Fatalf("RemoveQueue: %v", err)
	}
	k2 := keyed(rq, "k", "other-fp")
	e.enqueueKeyed(k2)
	diff(t, "after remove-queue: a new job", [2]any{queue.StatusPending, ""}, [2]any{e.statusOf(k2.ID), k2.Idem.Existing})
}
