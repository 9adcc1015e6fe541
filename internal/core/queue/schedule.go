package queue

import (
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
	return sched.Next(s.clock.Now()), nil
}

// skewTolerance is how far ahead of a cron job's run_at a run may end and
// still count as that occurrence's run: a daemon whose clock is behind the
// backend's (Redis TIME decides when a job is due) sees the job due a
// little early, and without this would schedule it again at the very
// occurrence it just ran for.
const skewTolerance = time.Second

// nextRun is when a cron job that just succeeded runs again: its
// schedule's first occurrence strictly after the run's end (so occurrences
// missed while no daemon ran are run once, never caught up one by one).
// Zero for a job without a schedule, or with one this version cannot read
// (it then finishes as a one-shot job, as an earlier version would).
func (s *Service) nextRun(j *Job) time.Time {
	if j.Cron == "" {
		return time.Time{}
	}
	sched, err := cron.Parse(j.Cron, j.Timezone)
	if err != nil {
		return time.Time{}
	}
	from := s.clock.Now()
	if d := j.RunAt.Sub(from); d > 0 && d < skewTolerance {
		from = j.RunAt
	}
	return sched.Next(from)
}
