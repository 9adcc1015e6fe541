package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/membroker"
	"github.com/refrakt/refrakt/internal/fakeclock"
)

// TestCronSkewedDaemon: the next run is computed on the backend's clock
// (the run's start as the broker recorded it, plus the run's time), so a
// daemon behind it does not run an occurrence again and again (the run
// storm of a next run computed on the daemon's clock, which the backend
// already sees as due), and a daemon ahead of it skips no occurrence.
func TestCronSkewedDaemon(t *testing.T) {
	for _, tc := range []struct {
		name      string
		skew      time.Duration // the daemon's clock minus the backend's
		expr      string
		runTime   time.Duration // the handler's run, on the daemon's clock
		wantRuns  int
		wantRunAt time.Time
	}{
		{"behind by 2 s", -2 * time.Second, "0 3 * * *", 0, 1, time.Date(2026, 1, 11, 3, 0, 0, 0, time.UTC)},
		{"behind by an hour", -time.Hour, "0 3 * * *", 0, 1, time.Date(2026, 1, 11, 3, 0, 0, 0, time.UTC)},
		{"ahead by 90 s", 90 * time.Second, "* * * * *", 0, 1, time.Date(2026, 1, 10, 3, 1, 0, 0, time.UTC)},
		{"ahead, a run of 90 s", 90 * time.Second, "* * * * *", 90 * time.Second, 1, time.Date(2026, 1, 10, 3, 2, 0, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backendClock := fakeclock.New(time.Date(2026, 1, 10, 2, 58, 0, 0, time.UTC))
			daemonClock := fakeclock.New(backendClock.Now().Add(tc.skew))
			reg := queue.NewRegistry()
			if err := reg.Register("ping", queue.Handler{Run: func(context.Context, json.RawMessage) (json.RawMessage, error) {
				daemonClock.Advance(tc.runTime)
				return nil, nil
			}}); err != nil {
				t.Fatal(err)
			}
			b := membroker.New(membroker.Options{Clock: backendClock})
			s := queue.NewService(queue.Deps{Broker: b, Clock: daemonClock, Registry: reg}, queue.Config{})
			j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping", Cron: tc.expr})
			backendClock.Advance(2 * time.Minute) // 03:00 for the backend
			runs := 0
			for range 1000 {
				s.Tick(context.Background())
				if _, err := s.RunNext(context.Background(), ""); err == nil {
					runs++
				} else if core.ErrorCode(err) != core.CodeNotFound {
					t.Fatal(err)
				}
			}
			got := mustGet(t, s, j.ID)
			diff(t, "runs at 03:00 (backend)", tc.wantRuns, runs)
			diff(t, "next run", [2]any{queue.StatusScheduled, tc.wantRunAt}, [2]any{got.Status, got.RunAt})
		})
	}
}

// TestCronLongGap: a schedule whose days come years apart (the Vixie AND
// of a "*"-prefixed weekday: Sunday 31 December) is enqueued scheduled at
// its first occurrence, and after its run is scheduled at the next one,
// 11 years on, on both brokers; Feb 29 on a Sunday is accepted, Feb 30
// refused.
func TestCronLongGap(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		clock := fakeclock.New(time.Date(2034, 12, 30, 12, 0, 0, 0, time.UTC))
		s := queue.NewService(queue.Deps{Broker: be.new(t, clock), Clock: clock}, queue.Config{})
		j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping", Cron: "0 0 31 12 */7"})
		first := time.Date(2034, 12, 31, 0, 0, 0, 0, time.UTC)
		diff(t, "enqueued", [2]any{queue.StatusScheduled, first}, [2]any{j.Status, j.RunAt})
		clock.Advance(12 * time.Hour)
		s.Tick(ctx)
		if _, err := s.RunNext(ctx, ""); err != nil {
			t.Fatal(err)
		}
		got := mustGet(t, s, j.ID)
		next := time.Date(2045, 12, 31, 0, 0, 0, 0, time.UTC)
		diff(t, "after its run", [3]any{queue.StatusScheduled, next, ""}, [3]any{got.Status, got.RunAt, got.LastError})
		clock.Advance(24 * time.Hour)
		j2 := mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping", Cron: "0 0 31 12 */7"})
		diff(t, "enqueued on 1 January", [2]any{queue.StatusScheduled, next}, [2]any{j2.Status, j2.RunAt})
		j3 := mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping", Cron: "0 0 29 2 */7"})
		diff(t, "Sunday 29 February", [2]any{queue.StatusScheduled, time.Date(2060, 2, 29, 0, 0, 0, 0, time.UTC)}, [2]any{j3.Status, j3.RunAt})
		_, err := s.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Cron: "0 0 30 2 *"}, queue.SourceAPI)
		diff(t, "30 February", core.CodeInvalid, core.ErrorCode(err))
	})
}

// TestCronNoNextRunIsDead: a cron job whose schedule this daemon cannot
// read (a zone name an earlier or other build took) is made dead when its
// run succeeds, with a last_error that says why, never succeeded.
func TestCronNoNextRunIsDead(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		clock := fakeclock.New(time.Date(2026, 1, 10, 2, 58, 0, 0, time.UTC))
		b := be.new(t, clock)
		rec := newRecorder()
		s := queue.NewService(queue.Deps{Broker: b, Clock: clock, Observer: rec}, queue.Config{})
		j := &queue.Job{ID: queue.NewID(), Queue: "default", Type: "ping", MaxRetries: 3, Source: queue.SourceAPI,
			Cron: "*/5 * * * *", Timezone: "posix/Europe/Paris"}
		if err := b.Enqueue(ctx, queue.NewJob{Job: j}); err != nil {
			t.Fatal(err)
		}
		got, err := s.RunNext(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		got = mustGet(t, s, got.ID)
		diff(t, "status", queue.StatusDead, got.Status)
		want := queue.NoNextRun + `cron: timezone "posix/Europe/Paris" is not an IANA zone name`
		if !strings.HasPrefix(got.LastError, want) {
			t.Errorf("last_error %q, want it to begin %q", got.LastError, want)
		}
		diff(t, "dead cause", []queue.DeadCause{queue.DeadNoNextRun}, rec.deadWhy)
		diff(t, "runs timed dead", 1, rec.snapshot()["finished"]["ping:dead"])
		// A failed attempt, as README and RUNBOOK say: retries + 1, no result.
		diff(t, "retries, result", [2]any{1, ""}, [2]any{got.Retries, string(got.Result)})
	})
}

// TestNoRetryWithNoNextRunTextIsNotRetried: the cause of death travels
// with the outcome, not in its text: a job without cron whose handler's
// failure not to retry begins like NoNextRun is dead as not retried.
func TestNoRetryWithNoNextRunTextIsNotRetried(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		reg := queue.NewRegistry()
		if err := reg.Register("mimic", queue.Handler{Run: func(context.Context, json.RawMessage) (json.RawMessage, error) {
			return nil, queue.NoRetry(errors.New(queue.NoNextRun + "x"))
		}}); err != nil {
			t.Fatal(err)
		}
		rec := newRecorder()
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: reg, Observer: rec}, queue.Config{})
		j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "mimic"})
		got, err := s.RunID(context.Background(), j.ID)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "status", queue.StatusDead, got.Status)
		diff(t, "dead cause", []queue.DeadCause{queue.DeadNotRetried}, rec.deadWhy)
	})
}

// TestCronCancelledRunStaysCancelled: a cancelled run of a cron job whose
// handler returned nil is timed cancelled, even when its schedule gives no
// next run here: the next run is computed for a success only.
func TestCronCancelledRunStaysCancelled(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		reg := queue.NewRegistry()
		if err := reg.Register("quiet", queue.Handler{Run: func(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
			<-ctx.Done()
			return nil, nil
		}}); err != nil {
			t.Fatal(err)
		}
		rec := newRecorder()
		b := be.new(t, nil)
		s := queue.NewService(queue.Deps{Broker: b, Registry: reg, Observer: rec},
			queue.Config{Concurrency: queue.ManualMode, Lease: 30 * time.Second})
		ctx := context.Background()
		j := &queue.Job{ID: queue.NewID(), Queue: "default", Type: "quiet", MaxRetries: 3, Source: queue.SourceAPI,
			Cron: "*/5 * * * *", Timezone: "posix/Europe/Paris"}
		if err := b.Enqueue(ctx, queue.NewJob{Job: j}); err != nil {
			t.Fatal(err)
		}
		ran := make(chan *queue.Job, 1)
		go func() { got, _ := s.RunID(ctx, j.ID); ran <- got }()
		eventuallyRunning(t, s, j.ID)
		if _, err := s.Cancel(ctx, j.ID); err != nil {
			t.Fatal(err)
		}
		wantCancelledRun(t, ran, "the run went on after the cancel")
		fin := rec.snapshot()["finished"]
		diff(t, "runs timed cancelled, dead", [2]int{1, 0}, [2]int{fin["quiet:cancelled"], fin["quiet:dead"]})
	})
}

// TestDone: a waiter stops at a finished job, and at a recurring job (an
// interval or a cron schedule) once a run of it completed.
func TestDone(t *testing.T) {
	ran := time.Date(2026, 1, 10, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		job  queue.Job
		want bool
	}{
		{"succeeded", queue.Job{Status: queue.StatusSucceeded}, true},
		{"pending", queue.Job{Status: queue.StatusPending}, false},
		{"scheduled one-shot", queue.Job{Status: queue.StatusScheduled, FinishedAt: ran}, false},
		{"interval, ran", queue.Job{Status: queue.StatusScheduled, IntervalSeconds: 60, FinishedAt: ran}, true},
		{"cron, ran", queue.Job{Status: queue.StatusScheduled, Cron: "0 3 * * *", FinishedAt: ran}, true},
		{"cron, not yet run", queue.Job{Status: queue.StatusScheduled, Cron: "0 3 * * *"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			diff(t, "Done", tc.want, queue.Done(&tc.job))
		})
	}
}
