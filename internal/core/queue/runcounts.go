package queue

import "sync/atomic"

// RunCounts are the runs of one Service (one daemon): the handlers running
// now and the runs finished since it was built, by outcome. A daemon
// publishes them in its heartbeat (`refrakt jobs daemons`).
type RunCounts struct {
	// Busy is the number of handlers running now (the workers' and the
	// manual runs'), not counting those abandoned past their timeout.
	Busy int64
	// Succeeded, Failed and Dead count the runs that ended so. A run its
	// timeout ended counts as failed, also on its last attempt (the
	// broker, not the run, decides that it dies then); a cancelled run
	// counts in none.
	Succeeded, Failed, Dead int64
}

// runCounts are RunCounts as the runs move them: three atomic adds per run,
// one at its start (busy) and two at its end (busy, and its outcome's
// count), no lock and no allocation. The four counters share one cache
// line (with the service's abandoned count beside them), which every
// worker writes.
type runCounts struct {
	busy, succeeded, failed, dead atomic.Int64
}

// finished counts the end of a run whose observed status is status (as
// Observer.Finished is told it): begin and outcome pair one to one, also
// for a run its timeout took over (the handler's later return records
// nothing).
func (c *runCounts) finished(status string) {
	c.busy.Add(-1)
	switch status {
	case string(StatusSucceeded):
		c.succeeded.Add(1)
	case string(StatusFailed), StatusTimeout:
		c.failed.Add(1)
	case string(StatusDead):
		c.dead.Add(1)
	}
}

// RunCounts returns the service's run counts now.
func (s *Service) RunCounts() RunCounts {
	return RunCounts{Busy: s.runs.busy.Load(), Succeeded: s.runs.succeeded.Load(),
		Failed: s.runs.failed.Load(), Dead: s.runs.dead.Load()}
}
