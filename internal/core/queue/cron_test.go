package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/fakeclock"
)

// TestCronSchedule drives a daily 03:00 Paris job with an injected clock,
// on both brokers: enqueued at 02:59:30 it waits scheduled for 03:00, runs
// then and is scheduled for 03:00 the next day; a failure and its retry's
// success within one occurrence keep that schedule, as do a run whose
// lease expired (recovered by the tick) and a manual run (run ID) a day
// ahead of time; occurrences missed while nothing ran run once, then the
// schedule goes on from the run's end (no catch-up).
func TestCronSchedule(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	at := func(day, h, m, s int) time.Time { return time.Date(2026, 1, day, h, m, s, 0, paris) }
	forEachBackend(t, func(t *testing.T, be backend) {
		clock := fakeclock.New(at(10, 2, 59, 30).UTC())
		var fails atomic.Int32
		reg := queue.NewRegistry()
		if err := reg.Register("flaky", queue.Handler{Run: func(context.Context, json.RawMessage) (json.RawMessage, error) {
			if fails.Add(-1) >= 0 {
				return nil, errors.New("flaky")
			}
			return json.RawMessage(`"ok"`), nil
		}}); err != nil {
			t.Fatal(err)
		}
		b := be.new(t, clock)
		s := queue.NewService(queue.Deps{Broker: b, Clock: clock, Registry: reg}, queue.Config{})
		ctx := context.Background()
		type view struct {
			Status queue.Status
			RunAt  time.Time
		}
		see := func(what string, want view, id string) {
			t.Helper()
			j := mustGet(t, s, id)
			diff(t, what, want, view{j.Status, j.RunAt.In(paris)})
		}
		j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "flaky", Cron: "0 3 * * *", Timezone: "Europe/Paris", MaxRetries: intp(3)})
		diff(t, "stored schedule", [2]string{"0 3 * * *", "Europe/Paris"}, [2]string{j.Cron, j.Timezone})
		see("enqueued at 02:59:30", view{queue.StatusScheduled, at(10, 3, 0, 0)}, j.ID)
		if _, err := s.RunNext(ctx, ""); core.ErrorCode(err) != core.CodeNotFound {
			t.Fatalf("RunNext before 03:00: %v, want not_found", err)
		}
		clock.Advance(29 * time.Second)
		tick(t, s, queue.TickResult{})
		clock.Advance(time.Second)
		tick(t, s, queue.TickResult{Scheduled: 1})
		got := runNext(t, s)
		diff(t, "ran at 03:00", [2]any{j.ID, queue.StatusScheduled}, [2]any{got.ID, got.Status})
		see("after the 03:00 run", view{queue.StatusScheduled, at(11, 3, 0, 0)}, j.ID)

		// A failure, then its retry's success: still 03:00 the next day.
		clock.Advance(24 * time.Hour)
		tick(t, s, queue.TickResult{Scheduled: 1})
		fails.Store(1)
		got = runNext(t, s)
		diff(t, "a failed run is retried", queue.StatusFailed, got.Status)
		clock.Advance(time.Second)
		tick(t, s, queue.TickResult{Retried: 1})
		runNext(t, s)
		see("after the retry's success", view{queue.StatusScheduled, at(12, 3, 0, 0)}, j.ID)

		// A run whose lease expires (its daemon died): the tick recovers
		// it, it runs again and keeps the schedule.
		clock.Advance(24 * time.Hour)
		tick(t, s, queue.TickResult{Scheduled: 1})
		if _, err := b.Claim(ctx, j.ID, time.Second); err != nil {
			t.Fatal(err)
		}
		clock.Advance(2 * time.Second)
		if r := tick(t, s, queue.TickResult{}); r.Recovered != 1 {
			t.Errorf("tick recovered %d, want 1", r.Recovered)
		}
		runNext(t, s)
		see("after a recovered lease", view{queue.StatusScheduled, at(13, 3, 0, 0)}, j.ID)

		// A manual run hours before the occurrence: the next run is still
		// that occurrence.
		clock.Advance(12 * time.Hour) // 12 15:00:02
		got, err := s.RunID(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "run ID", queue.StatusScheduled, got.Status)
		see("after a manual run", view{queue.StatusScheduled, at(13, 3, 0, 0)}, j.ID)

		// Three days with nothing running: one run, then the schedule.
		clock.Advance(3 * 24 * time.Hour) // 15 15:00:02
		tick(t, s, queue.TickResult{Scheduled: 1})
		runNext(t, s)
		see("after missed days", view{queue.StatusScheduled, at(16, 3, 0, 0)}, j.ID)
		if _, err := s.RunNext(ctx, ""); core.ErrorCode(err) != core.CodeNotFound {
			t.Errorf("RunNext after the catch-up run: %v, want not_found (no storm)", err)
		}
	})
}

func tick(t *testing.T, s *queue.Service, want queue.TickResult) queue.TickResult {
	t.Helper()
	r, err := s.Tick(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want.Recovered == 0 {
		r2 := r
		r2.Recovered = 0
		diff(t, "tick", want, r2)
	}
	return r
}

func runNext(t *testing.T, s *queue.Service) *queue.Job {
	t.Helper()
	j, err := s.RunNext(context.Background(), "")
	if err != nil {
		t.Fatalf("RunNext: %v", err)
	}
	return j
}

// TestCronEnqueueRefused: bad schedules and the options a schedule
// excludes are refused with one line, code invalid, storing nothing.
func TestCronEnqueueRefused(t *testing.T) {
	s := queue.NewService(queue.Deps{Broker: backends(t)[0].new(t, nil)}, queue.Config{})
	for _, tc := range []struct {
		name string
		req  queue.EnqueueRequest
		want string
	}{
		{"out of range", queue.EnqueueRequest{Type: "ping", Cron: "61 * * * *"}, "cron: minute 61 out of range 0-59"},
		{"never fires", queue.EnqueueRequest{Type: "ping", Cron: "0 0 30 2 *"}, `cron: "0 0 30 2 *" never fires (no day of any year matches its day and month fields)`},
		{"bad zone", queue.EnqueueRequest{Type: "ping", Cron: "@daily", Timezone: "Europe/Atlantis"}, `cron: timezone "Europe/Atlantis" is not an IANA zone name`},
		{"zone without cron", queue.EnqueueRequest{Type: "ping", Timezone: "Europe/Paris"}, "timezone is only for a cron schedule: add cron"},
		{"with an interval", queue.EnqueueRequest{Type: "ping", Cron: "@daily", IntervalSeconds: 60}, "cron and interval_seconds are two schedules: give one"},
		{"with a delay", queue.EnqueueRequest{Type: "ping", Cron: "@daily", DelayMS: 1000}, "cron decides the first run: drop delay_ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Enqueue(context.Background(), tc.req, queue.SourceAPI)
			if core.ErrorCode(err) != core.CodeInvalid {
				t.Fatalf("Enqueue: %v, want code invalid", err)
			}
			diff(t, "message", tc.want, core.ErrorMessage(err))
		})
	}
}

// TestCronIdempotencyKey: the schedule is part of an idempotency key's
// fingerprint, so re-running a deploy's enqueue replays the one job, and
// the same key with another schedule or zone is refused, not replayed.
func TestCronIdempotencyKey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil)}, queue.Config{})
		ctx := context.Background()
		req := queue.EnqueueRequest{Type: "ping", Cron: "0 3 * * *", Timezone: "Europe/Paris", IdempotencyKey: "nightly"}
		first := mustEnqueue(t, s, req)
		again, err := s.Enqueue(ctx, req, queue.SourceAPI)
		if err != nil || again.ID != first.ID || !again.Replayed {
			t.Fatalf("the same request again: %v %+v, want the first job replayed", err, again)
		}
		for _, other := range []queue.EnqueueRequest{
			{Type: "ping", Cron: "0 4 * * *", Timezone: "Europe/Paris", IdempotencyKey: "nightly"},
			{Type: "ping", Cron: "0 3 * * *", Timezone: "America/New_York", IdempotencyKey: "nightly"},
			{Type: "ping", Cron: "0 3 * * *", IdempotencyKey: "nightly"},
		} {
			if _, err := s.Enqueue(ctx, other, queue.SourceAPI); core.ErrorCode(err) != core.CodeKeyReused {
				t.Errorf("the key with %q in %q: %v, want %s", other.Cron, other.Timezone, err, core.CodeKeyReused)
			}
		}
	})
}

// TestCronTimezoneUTC: "UTC" and no zone are one schedule: stored alike
// (no zone) and one idempotency fingerprint, so either spelling replays.
func TestCronTimezoneUTC(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil)}, queue.Config{})
		first := mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping", Cron: "0 3 * * *", Timezone: "UTC", IdempotencyKey: "nightly"})
		diff(t, "stored zone", "", mustGet(t, s, first.ID).Timezone)
		again, err := s.Enqueue(context.Background(), queue.EnqueueRequest{Type: "ping", Cron: "0 3 * * *", IdempotencyKey: "nightly"}, queue.SourceAPI)
		if err != nil || again.ID != first.ID || !again.Replayed {
			t.Fatalf("the same schedule without a zone: %v %+v, want the first job replayed", err, again)
		}
	})
}

// TestCronRunAheadOfItsOccurrence: a manual run (RunID) before the
// occurrence the job waits for, however little before, leaves that
// occurrence: it is not the occurrence's run.
func TestCronRunAheadOfItsOccurrence(t *testing.T) {
	for _, tc := range []struct {
		name  string
		early time.Duration
	}{
		{"half a second early", 500 * time.Millisecond},
		{"two seconds early", 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := fakeclock.New(time.Date(2026, 1, 10, 2, 58, 0, 0, time.UTC))
			s := queue.NewService(queue.Deps{Broker: backends(t)[0].new(t, clock), Clock: clock}, queue.Config{})
			j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping", Cron: "*/5 * * * *"})
			clock.Advance(2*time.Minute - tc.early)
			got, err := s.RunID(context.Background(), j.ID)
			if err != nil {
				t.Fatal(err)
			}
			diff(t, "next run", time.Date(2026, 1, 10, 3, 0, 0, 0, time.UTC), got.RunAt)
		})
	}
}
