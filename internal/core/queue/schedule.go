package queue

import (
	"fmt"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/cron"
)

// prepareCron validates req's cron schedule and returns its first
// occurrence strictly after now: the job waits scheduled until then. A
// schedule decides every run, so it excludes interval_seconds (another
// recurrence) and delay_ms (another first run).
func (s *Service) prepareCron(req EnqueueRequest) (time.Time, error) {
	if req.Cron == "" {
		return time.Time{}, core.Errorf(core.CodeInvalid, "timezone is only for a cron schedule: add cron")
	}
	if req.IntervalSeconds != 0 {
		return time.Time{}, core.Errorf(core.CodeInvalid, "cron and interval_seconds are two schedules: give one")
	}
	if req.DelayMS != 0 {
		return time.Time{}, core.Errorf(core.CodeInvalid, "cron decides the first run: drop delay_ms")
	}
	sched, err := cron.Parse(req.Cron, req.Timezone)
	if err != nil {
		return time.Time{}, core.Errorf(core.CodeInvalid, "%v", err)
	}
	at := sched.Next(s.clock.Now())
	if at.IsZero() { // Parse refuses what never fires: a guard, as at finish
		return time.Time{}, core.Errorf(core.CodeInvalid, "cron: %q never fires", req.Cron)
	}
	return at, nil
}

// NoNextRun begins the last_error of a cron job whose run succeeded but
// which has no next run this daemon can compute (its schedule unreadable
// here, a zone this build lacks, or no occurrence): it is made dead, never
// succeeded as if its schedule had ended.
const NoNextRun = "succeeded, but its schedule gives no next run: "

// nextRun is when a cron job whose run just succeeded runs again: the
// first occurrence strictly after base, on the backend's clock (Redis TIME
// decides when a job is due, so the daemon's must not decide its next
// run). base is the run's start as the broker recorded it (the lease's
// StartedAt, from Redis TIME) plus elapsed, the run's time on this
// daemon's monotonic clock; for a run that was due, no earlier than the
// occurrence it ran for (its RunAt). So a run of occurrence X schedules
// strictly after X whatever the skew (no run again at X), a daemon ahead
// of Redis skips nothing, and occurrences missed while no daemon ran run
// once. A run ahead of time (RunID before RunAt) leaves the occurrence.
// Zero and no error for a job without a schedule; an error when the
// schedule cannot be read here or has no next occurrence.
func (s *Service) nextRun(j *Job, elapsed time.Duration) (time.Time, error) {
	if j.Cron == "" {
		return time.Time{}, nil
	}
	sched, err := cron.Parse(j.Cron, j.Timezone)
	if err != nil {
		return time.Time{}, err
	}
	base := s.clock.Now() // a broker that did not record the start
	if !j.StartedAt.IsZero() {
		base = j.StartedAt.Add(max(elapsed, 0))
		if !j.StartedAt.Before(j.RunAt) && base.Before(j.RunAt) {
			base = j.RunAt
		}
	}
	next := sched.Next(base)
	if next.IsZero() {
		return time.Time{}, fmt.Errorf("cron: %q has no occurrence after %s", j.Cron, base.UTC().Format(time.RFC3339))
	}
	return next, nil
}
