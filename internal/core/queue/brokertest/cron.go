package brokertest

import (
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// testCron: a cron job's schedule (cron, timezone) is stored and read back
// by Get, List and the lease of its run; it first runs at NewJob.At (the
// enqueue answers it scheduled then),
// whatever the delay; a success given Outcome.NextRunAt schedules it
// again at exactly that time (not at an interval), a failure retries it as
// any job's, and a success without NextRunAt (an earlier daemon's) ends it;
// NextRunAt on a job without cron is ignored.
func testCron(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	const q = "cron"
	now := e.clock.Now()
	first := now.Add(90 * time.Second).Truncate(time.Minute)
	j := &queue.Job{ID: queue.NewID(), Queue: q, Type: "ping", MaxRetries: 2, Source: queue.SourceCLI,
		Cron: "*/5 * * * *", Timezone: "Europe/Paris"}
	if err := e.b.Enqueue(e.ctx, queue.NewJob{Job: j, At: first}); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	type view struct {
		Status         queue.Status
		Cron, Timezone string
		RunAt          time.Time
	}
	see := func(j *queue.Job) view { return view{j.Status, j.Cron, j.Timezone, j.RunAt} }
	// The enqueue's answer (the 202 body, jobs enqueue's output) as Get's.
	diff(t, "the enqueue's answer", view{queue.StatusScheduled, "*/5 * * * *", "Europe/Paris", first}, see(j))
	diff(t, "enqueued", view{queue.StatusScheduled, "*/5 * * * *", "Europe/Paris", first}, see(e.get(j.ID)))
	all, err := e.b.List(e.ctx, queue.Filter{Queue: q})
	if err != nil || len(all) != 1 {
		t.Fatalf("List: %v %d jobs", err, len(all))
	}
	diff(t, "listed", view{queue.StatusScheduled, "*/5 * * * *", "Europe/Paris", first}, see(all[0]))

	e.clock.Advance(first.Sub(e.clock.Now()))
	diff(t, "tick at its first run", queue.TickResult{Scheduled: 1}, e.tick())
	l := e.fetchOne()
	diff(t, "its run's lease carries the schedule", [2]string{"*/5 * * * *", "Europe/Paris"}, [2]string{l.Job.Cron, l.Job.Timezone})

	// A failure is retried as any job's; the retry's success is scheduled
	// at the outcome's next run.
	diff(t, "a failure", []queue.Status{queue.StatusFailed}, e.finish(fail(l, "x", time.Second)))
	e.clock.Advance(time.Second)
	e.tick()
	l = e.fetchOne()
	next := first.Add(5 * time.Minute)
	o := ok(l, `"pong"`)
	o.NextRunAt = next
	diff(t, "success", []queue.Status{queue.StatusScheduled}, e.finish(o))
	got := e.get(j.ID)
	diff(t, "scheduled at the outcome's next run", view{queue.StatusScheduled, "*/5 * * * *", "Europe/Paris", next}, see(got))
	diff(t, "retries reset, source schedule", [2]any{0, queue.SourceSchedule}, [2]any{got.Retries, got.Source})
	s := e.stats(q)
	diff(t, "scheduled gauge", int64(1), s.Scheduled)

	e.clock.Advance(next.Add(-time.Millisecond).Sub(e.clock.Now()))
	diff(t, "tick before the next run", queue.TickResult{}, e.tick())
	e.clock.Advance(time.Millisecond)
	diff(t, "tick at the next run", queue.TickResult{Scheduled: 1}, e.tick())
	diff(t, "a success without a next run ends it", []queue.Status{queue.StatusSucceeded}, e.finish(ok(e.fetchOne(), `"pong"`)))

	// A next run given for a job without cron is no schedule.
	e.enqueue(q, "ping", 0)
	o = ok(e.fetchOne(), `"pong"`)
	o.NextRunAt = next.Add(time.Hour)
	diff(t, "a next run for a job without cron", []queue.Status{queue.StatusSucceeded}, e.finish(o))
}
