package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// The bounds of a job's timeout: JOB_TIMEOUT's default, and what
// JOB_TIMEOUT and a job's timeout_ms may be. Every job has a bound: a
// handler that hangs would otherwise hold its worker for ever, its lease
// renewed by the heartbeat, neither finished nor retried.
const (
	DefaultJobTimeout = 30 * time.Minute
	MinJobTimeout     = time.Millisecond
	MaxJobTimeout     = 7 * 24 * time.Hour
)

// ErrTimedOut is the cause of a handler's context, and in the error of its
// attempt, when the run reached its timeout.
var ErrTimedOut = errors.New("timed out")

// StatusTimeout is the status Observer.Finished names for a run its
// timeout cut short (the attempt failed, retried or dead): no job status,
// only the run's.
const StatusTimeout = "timeout"

// TimeoutObserver is an Observer that is told of runs cut short by their
// timeout, and of the handlers left running past it.
type TimeoutObserver interface {
	// TimedOut is told of one run its timeout ended: its attempt failed.
	TimedOut(j TimedOutJob)
	// Abandoned is told that the number of handlers still running past
	// their timeout (their goroutine left to return on its own) changed
	// by delta: +1 at a deadline a handler did not return by, -1 when such
	// a handler returns at last.
	Abandoned(delta int)
}

// TimedOutJob is what a TimeoutObserver is told of a run cut short: never
// the payload.
type TimedOutJob struct {
	ID, Queue, Type string
	Attempts        int
	Timeout         time.Duration
}

// Timeout is how long a run of j may take: its own timeout_ms, else the
// service's JobTimeout.
func (s *Service) Timeout(j *Job) time.Duration {
	if j.TimeoutMS > 0 {
		// A timeout_ms written by hand beyond the bound (or beyond what a
		// Duration holds) runs as the longest a job may have.
		if j.TimeoutMS > MaxJobTimeout.Milliseconds() {
			return MaxJobTimeout
		}
		return time.Duration(j.TimeoutMS) * time.Millisecond
	}
	return s.cfg.JobTimeout
}

// AbandonedHandlers is the number of handlers of this service still
// running past their timeout.
func (s *Service) AbandonedHandlers() int64 { return s.abandoned.Load() }

func (s *Service) abandon(delta int) {
	s.abandoned.Add(int64(delta))
	if s.timeouts != nil {
		s.timeouts.Abandoned(delta)
	}
}

// Handler states of a bounded run.
const (
	handlerRunning int32 = iota
	handlerReturned
	handlerAbandoned
)

// runBounded runs h on j's payload in a goroutine of its own and waits for
// it at most timeout: the manual runs' bound (run-next, run ID, the CLI's
// jobs run; the pool's workers bound theirs with a timer, worker.run). At
// the deadline the handler's context is cancelled and the run ends at
// once, failed with ErrTimedOut (timedOut): the caller is answered even if
// the handler ignores its context. Its goroutine is
// left to return on its own, counted as abandoned until it does, and what
// it returns then is dropped. When ctx had ended before the deadline
// (shutdown, a lost lease, a cancel) and the handler ignores that too, the
// run ends at the deadline with ctx's cause instead: not the job's
// timeout, so that the caller hands the job back or drops its outcome as
// it would have.
func (s *Service) runBounded(ctx context.Context, h Handler, j *Job, timeout time.Duration) (res json.RawMessage, timedOut bool, err error) {
	hctx, cancel := context.WithCancelCause(ctx)
	type ran struct {
		res json.RawMessage
		err error
	}
	done := make(chan ran, 1)
	var state atomic.Int32
	go func() {
		res, err := runHandler(hctx, h, j)
		if !state.CompareAndSwap(handlerRunning, handlerReturned) {
			s.abandon(-1) // late: its result goes nowhere
		}
		done <- ran{res, err}
	}()
	t := time.NewTimer(timeout)
	select {
	case r := <-done:
		t.Stop()
		cancel(nil)
		return r.res, false, r.err
	case <-t.C:
	}
	// Counted before the handler can see it abandoned, so that the gauge
	// never dips below zero.
	s.abandon(1)
	if !state.CompareAndSwap(handlerRunning, handlerAbandoned) {
		// It returned at the deadline: its result stands.
		s.abandon(-1)
		r := <-done
		cancel(nil)
		return r.res, false, r.err
	}
	if ctx.Err() != nil {
		err = context.Cause(ctx)
		cancel(err)
		return nil, false, err
	}
	err = s.timedOut(j, timeout)
	cancel(err)
	return nil, true, err
}

// timedOut tells the observer that j's run reached its timeout, and
// returns the run's error.
func (s *Service) timedOut(j *Job, timeout time.Duration) error {
	if s.timeouts != nil {
		s.timeouts.TimedOut(TimedOutJob{ID: j.ID, Queue: j.Queue, Type: j.Type, Attempts: j.Attempts, Timeout: timeout})
	}
	return fmt.Errorf("%w after %s", ErrTimedOut, timeout)
}
