package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/refrakt/refrakt/internal/core"
)

// execute runs the handler of a leased job under ctx, bounded by its
// timeout (runBounded), and returns the outcome to record: the manual runs'
// (run-next, run ID). A panic in a handler is a failure of that job, not
// of the worker. The pool bounds its runs itself (worker.run).
func (s *Service) execute(ctx context.Context, l Lease) Outcome {
	start := s.begin(l.Job)
	var res json.RawMessage
	var err error
	timedOut := false
	if h, ok := s.registry.Lookup(l.Job.Type); ok {
		res, timedOut, err = s.runBounded(ctx, h, l.Job, s.Timeout(l.Job))
	} else {
		err = noHandler(l.Job.Type)
	}
	return s.outcome(ctx, l, start, res, err, timedOut)
}

// begin tells the observer how long j waited to start, and returns when
// its run starts.
func (s *Service) begin(j *Job) time.Time {
	start := s.clock.Now()
	s.runs.busy.Add(1)
	if !j.ReadyAt.IsZero() {
		s.obs.Waited(j.Queue, max(0, start.Sub(j.ReadyAt)))
	}
	return start
}

func noHandler(typ string) error { return fmt.Errorf("no handler registered for type %q", typ) }

// outcome times the run of l's job that started at start and ended with
// res and err under ctx (timedOut: its timeout ended it), and returns the
// outcome to record.
func (s *Service) outcome(ctx context.Context, l Lease, start time.Time, res json.RawMessage, err error, timedOut bool) Outcome {
	j := l.Job
	status := string(StatusSucceeded)
	// A failure not to retry: the handler's own verdict, so not a run its
	// context ended (a cancel, a lost lease, a shutdown, a caller gone),
	// whose job is handed back or dropped and must not be counted dead. A
	// timed-out run needs no check of its own: its err is ErrTimedOut's,
	// never ErrNoRetry. Only a failure pays the check, an errors.Is down
	// err's chain (comparisons and type assertions, no allocation); the
	// context only for such.
	noRetry := err != nil && errors.Is(err, ErrNoRetry) && ctx.Err() == nil
	switch {
	case errors.Is(context.Cause(ctx), ErrJobCancelled):
		status = string(StatusCancelled)
	case timedOut:
		// Failed, retried or dead as any failure; timed apart, so that
		// the runs a timeout cut short are seen.
		status = StatusTimeout
	case noRetry:
		// Dead at once, whatever retries are left: the finish makes it so.
		status = string(StatusDead)
	case err != nil && Exhausted(j.Retries+1, j.MaxRetries):
		// Its last attempt: the finish makes it dead (as both brokers
		// decide, retries beyond max_retries), and its run is timed so.
		status = string(StatusDead)
	case err != nil:
		status = string(StatusFailed)
	}
	elapsed := s.clock.Now().Sub(start)
	var next time.Time
	var nextErr error
	if status == string(StatusSucceeded) && j.Cron != "" {
		// A cron job's next run; without one it is dead, not succeeded.
		// Only a success's (err is nil): a cancelled run stays cancelled.
		if next, nextErr = s.nextRun(j, elapsed); nextErr != nil {
			status = string(StatusDead)
		}
	}
	s.obs.Finished(j.Type, status, elapsed)
	s.runs.finished(status)
	o := Outcome{Ref: l.Ref()}
	if err != nil {
		o.Err = err.Error()
		if o.Err == "" {
			o.Err = "failed"
		}
		if noRetry {
			// No retry to wait for: a Retry-After it carries is moot.
			o.Err += NotRetried
			o.NoRetry = true
			return o
		}
		o.RetryIn = retryDelay(s.cfg.Backoff, err, j.Retries+1)
		return o
	}
	if nextErr != nil {
		o.Err, o.NoRetry, o.noNextRun = NoNextRun+nextErr.Error(), true, true
		return o
	}
	if len(res) > 0 && !json.Valid(res) {
		res, _ = json.Marshal(string(res))
	}
	o.Result = res
	o.NextRunAt = next
	return o
}

// runHandler runs h on job j: its RunJob when it has one, else its Run on
// the payload.
func runHandler(ctx context.Context, h Handler, j *Job) (res json.RawMessage, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	if h.RunJob != nil {
		return h.RunJob(ctx, j)
	}
	return h.Run(ctx, j.Payload)
}

// recordFinish writes outcomes and reports what happened; jobs[i] is the
// job of outcomes[i] as its run started. It returns the new status of each
// job ("" when its lease was lost and nothing was written). With a
// *FinishError it reports the outcomes that were written, and returns their
// statuses with the error.
func (s *Service) recordFinish(ctx context.Context, outcomes []Outcome, jobs []*Job) ([]Status, error) {
	to, err := s.broker.Finish(ctx, outcomes)
	if err != nil {
		s.obs.BackendError("finish", err)
		var fe *FinishError
		if !errors.As(err, &fe) {
			return nil, err
		}
	}
	for i, st := range to {
		if st == "" {
			continue
		}
		s.obs.Transition(string(StatusRunning), string(st))
		switch st {
		case StatusFailed:
			s.obs.Enqueued(SourceRetry)
		case StatusScheduled:
			s.obs.Enqueued(SourceSchedule)
		case StatusDead:
			j := jobs[i]
			why := DeadRetriesExhausted
			switch {
			case outcomes[i].noNextRun:
				why = DeadNoNextRun
			case outcomes[i].NoRetry:
				why = DeadNotRetried
			}
			s.obs.Dead(DeadJob{ID: j.ID, Queue: j.Queue, Type: j.Type, Attempts: j.Attempts, LastError: outcomes[i].Err}, why)
		}
		s.notify(outcomes[i].ID)
	}
	return to, err
}

// RunNext runs the oldest pending job of queue q (any queue when q is empty)
// in the caller's goroutine and returns it finished: manual mode's run-next.
// With no pending job it answers core.CodeNotFound, and core.CodeConflict
// (QueuePausedError) when q is paused with jobs pending; without q it skips
// paused queues.
func (s *Service) RunNext(ctx context.Context, q string) (*Job, error) {
	if q != "" {
		if err := CheckQueue(q); err != nil {
			return nil, err
		}
	}
	queues := []string{q}
	var held []string // without q: the paused queues holding pending jobs
	if q == "" {
		oldest, paused, err := s.oldestQueue(ctx)
		if err != nil {
			return nil, err
		}
		held = paused
		// nil (no queue has a pending job now): any queue, so that a job
		// made pending meanwhile still runs.
		queues = oldest
	}
	leases, err := s.broker.Fetch(ctx, FetchRequest{Queues: queues, N: 1, Lease: s.cfg.Lease})
	if err == nil && len(leases) == 0 && q == "" && queues != nil {
		// Taken meanwhile by another: any queue's.
		leases, err = s.broker.Fetch(ctx, FetchRequest{N: 1, Lease: s.cfg.Lease})
	}
	if err != nil {
		// A fetch may answer a job with the error of a queue it could not
		// read (a Cluster master failing): the job is run, not dropped
		// leased to nobody until its lease ends.
		err = s.backendErr("fetch", err)
		if len(leases) == 0 {
			return nil, err
		}
	}
	if len(leases) == 0 {
		if q == "" && len(held) > 0 {
			return nil, core.Errorf(core.CodeNotFound, "no pending job but in paused queues (%s): refrakt jobs resume QUEUE runs them",
				strings.Join(held, ", "))
		}
		if q == "" {
			return nil, core.Errorf(core.CodeNotFound, "no pending job")
		}
		// Paused is no "no pending job": the jobs are held on purpose
		// (a paused queue with none pending has none to hold).
		if st, err := s.broker.Stats(ctx, q); err == nil && st.Paused && st.Pending > 0 {
			return nil, QueuePausedError(q)
		}
		return nil, core.Errorf(core.CodeNotFound, "no pending job in queue %s", q)
	}
	s.obs.Transition(string(StatusPending), string(StatusRunning))
	return s.runLeased(ctx, leases[0])
}

// oldestQueue returns, as a one-name list, the queue not paused whose
// oldest pending job has waited longest (nil when no queue has one), so
// that run-next without a queue runs the oldest pending job of all, on
// every daemon and CLI alike (a fetch of any queue takes the queues in a
// per-process turn); and the paused queues that hold pending jobs, by name.
func (s *Service) oldestQueue(ctx context.Context) (oldest, paused []string, err error) {
	stats, err := s.Stats(ctx)
	if err != nil {
		return nil, nil, err
	}
	var best *Stats
	for i := range stats {
		st := &stats[i]
		switch {
		case st.Pending == 0:
		case st.Paused:
			paused = append(paused, st.Queue)
		case best == nil || st.OldestPendingAge > best.OldestPendingAge:
			best = st
		}
	}
	if best == nil {
		return nil, paused, nil
	}
	return []string{best.Queue}, paused, nil
}

// RunID runs job id now, in the caller's goroutine, whatever its run_at: a
// pending, scheduled or failed job; any other is a conflict.
func (s *Service) RunID(ctx context.Context, id string) (*Job, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	from, err := s.broker.Get(ctx, id)
	if err != nil {
		return nil, s.backendErr("get", err)
	}
	l, err := s.broker.Claim(ctx, id, s.cfg.Lease)
	if err != nil {
		return nil, s.backendErr("claim", err)
	}
	s.obs.Transition(string(from.Status), string(StatusRunning))
	return s.runLeased(ctx, l)
}

// runLeased runs one job with its own heartbeat, records the outcome and
// returns the job as stored afterwards. When ctx ends first (the CLI
// interrupted, the daemon shutting down) the run is not the job's failure:
// the job is handed back to pending, not counted as an attempt, as a
// worker's is at shutdown, and the error says so. (The daemon runs it under
// a context its client's leaving does not end: see handleRunJob.)
func (s *Service) runLeased(ctx context.Context, l Lease) (*Job, error) {
	if s.cfg.HandBackUnhandled {
		if _, ok := s.registry.Lookup(l.Job.Type); !ok {
			return nil, s.handBackUnhandled(ctx, l)
		}
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The entry is this run's: an earlier run of the same job whose lease
	// lapsed may still be ending, and must not remove a later run's.
	me := &manualRun{stop: cancel}
	s.mu.Lock()
	s.manualRuns[l.Job.ID] = me
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.manualRuns[l.Job.ID] == me {
			delete(s.manualRuns, l.Job.ID)
		}
		s.mu.Unlock()
	}()
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(s.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				ok, err := s.broker.Extend(runCtx, []Ref{l.Ref()}, s.cfg.Lease)
				if err != nil {
					s.obs.BackendError("extend", err)
					continue
				}
				if !ok[0] {
					cancel(s.lostCause(runCtx, l.Job.ID)) // stop the handler; its outcome is dropped
					return
				}
			}
		}
	}()
	o := s.execute(runCtx, l)
	close(done)
	// Interrupted: the handler failed as its caller left. A handler that
	// succeeded all the same is recorded.
	if ctx.Err() != nil && o.Err != "" && !errors.Is(context.Cause(runCtx), ErrLeaseLost) {
		return nil, s.handBackInterrupted(ctx, l)
	}
	if _, err := s.recordFinish(context.WithoutCancel(ctx), []Outcome{o}, []*Job{l.Job}); err != nil {
		return nil, core.Wrap(core.CodeUnavailable, err, "the job ran but its outcome could not be recorded")
	}
	// The run is over and recorded: its caller gets the job even if it is
	// leaving.
	gctx, stop := context.WithTimeout(context.WithoutCancel(ctx), handBackTimeout)
	defer stop()
	return s.Get(gctx, l.Job.ID)
}

// manualRun is a manual run in progress, as Service.manualRuns holds it.
type manualRun struct{ stop context.CancelCauseFunc }

// ErrInterrupted is in the error of a manual run whose caller stopped
// waiting (RunID, RunNext): the message says what became of the job.
var ErrInterrupted = errors.New("manual run interrupted")

// handBackTimeout bounds each release of a manual run's hand-back (handBack),
// and the read of its job once its run is recorded.
const handBackTimeout = 2 * time.Second

// handBack is what became of a manual run's job released unrun.
type handBack int

const (
	handedBack    handBack = iota // running → pending, the attempt not counted
	notHeld                       // no longer this run's: cancelled, or its lease lost
	notHandedBack                 // the release failed: the job waits for its lease to end
)

// leaseExpiryCounts says what becomes of a job its release could not hand
// back.
const leaseExpiryCounts = `it returns to pending when its lease (JOB_LEASE) ends, and that counts as a failed attempt ("lease expired")`

// handBack releases the job of l unrun (running → pending, the attempt not
// counted), trying a release that fails up to tries times, each with a
// budget of its own. A "not held" answer is final (the release is
// token-checked), so it is not tried again. The error is the last
// release's, with notHandedBack.
func (s *Service) handBack(ctx context.Context, l Lease, tries int) (handBack, error) {
	var err error
	for range tries {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handBackTimeout)
		var ok []bool
		ok, err = s.broker.Release(rctx, []Ref{l.Ref()})
		cancel()
		switch {
		case err != nil:
			s.obs.BackendError("release", err)
		case len(ok) == 1 && ok[0]:
			s.obs.Transition(string(StatusRunning), string(StatusPending))
			return handedBack, nil
		default:
			return notHeld, nil
		}
	}
	return notHandedBack, err
}

// handBackInterrupted releases the job of a manual run whose caller stopped
// waiting (handBack, one try) and returns the CodeUnavailable error that
// tells the caller what became of it.
func (s *Service) handBackInterrupted(ctx context.Context, l Lease) error {
	var msg string
	switch hb, err := s.handBack(ctx, l, 1); hb {
	case handedBack:
		msg = fmt.Sprintf("interrupted: job %s was handed back to pending, not counted as an attempt", l.Job.ID)
	case notHeld:
		msg = fmt.Sprintf("interrupted: job %s was no longer held (cancelled or its lease lost)", l.Job.ID)
	default:
		msg = fmt.Sprintf("interrupted: job %s could not be handed back (%v); %s", l.Job.ID, err, leaseExpiryCounts)
	}
	return core.Wrap(core.CodeUnavailable, ErrInterrupted, msg)
}

// UnhandledError is the error of a manual run, with
// Config.HandBackUnhandled, of a job whose type this process has no
// handler for: nothing was run.
type UnhandledError struct {
	ID, Type string
	// HandedBack is true when the job was released to pending, not
	// counted as an attempt. When it is false and NotHeld too, the release
	// failed twice (Redis failing): the job stays running until its lease
	// (JOB_LEASE) ends, and the tick counts that expiry as a failed
	// attempt ("lease expired"), as any lost lease.
	HandedBack bool
	// NotHeld is true when the release answered that the job was no
	// longer this run's: cancelled, or its lease lost, meanwhile.
	NotHeld bool
}

func (e *UnhandledError) Error() string {
	head := fmt.Sprintf("job %s is of type %q, which this process has no handler for; nothing was run", e.ID, e.Type)
	switch {
	case e.HandedBack:
		return head + ", it was handed back to pending"
	case e.NotHeld:
		return head + ", and it was no longer held by this run (cancelled, or its lease lost meanwhile)"
	default:
		return head + ", but it could not be handed back: " + leaseExpiryCounts
	}
}

// handBackUnhandled releases the job of l unrun (handBack; a release that
// fails is tried once more: a job left to its lease loses an attempt) and
// returns the *UnhandledError that says what became of it.
func (s *Service) handBackUnhandled(ctx context.Context, l Lease) error {
	hb, _ := s.handBack(ctx, l, 2)
	return &UnhandledError{ID: l.Job.ID, Type: l.Job.Type, HandedBack: hb == handedBack, NotHeld: hb == notHeld}
}

// notify wakes the callers waiting for job id (see Wait).
func (s *Service) notify(id string) {
	s.mu.Lock()
	chans := s.waiters[id]
	delete(s.waiters, id)
	s.mu.Unlock()
	for _, c := range chans {
		close(c)
	}
}

// Done reports whether a caller waiting for j's result can stop: it
// finished, or it is a recurring job that has completed a run.
func Done(j *Job) bool {
	return j.Status.Finished() || (j.Status == StatusScheduled && (j.IntervalSeconds > 0 || j.Cron != "") && !j.FinishedAt.IsZero())
}

// waitPoll is how often Wait re-reads a job run by another daemon; jobs run
// by this process wake their waiters at once.
const waitPoll = 100 * time.Millisecond

// Wait blocks until job id is Done or ctx ends, and returns the job as last
// read (with ctx's error when it ended first).
func (s *Service) Wait(ctx context.Context, id string) (*Job, error) {
	for {
		ch := make(chan struct{})
		s.mu.Lock()
		s.waiters[id] = append(s.waiters[id], ch)
		s.mu.Unlock()
		j, err := s.Get(context.WithoutCancel(ctx), id)
		if err != nil || Done(j) {
			s.dropWaiter(id, ch)
			return j, err
		}
		t := time.NewTimer(waitPoll)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			s.dropWaiter(id, ch)
			return j, ctx.Err()
		}
		t.Stop()
		s.dropWaiter(id, ch)
	}
}

// awaited reports whether a caller in this process waits for job id (Wait).
func (s *Service) awaited(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiters[id]) > 0
}

func (s *Service) dropWaiter(id string, ch chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.waiters[id]
	for i, c := range list {
		if c == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.waiters, id)
	} else {
		s.waiters[id] = list
	}
}

// ErrLeaseLost is the cause of a handler's context when its job's lease was
// lost (recovered by another daemon, or cancelled).
var ErrLeaseLost = errors.New("job lease lost")

// ErrJobCancelled is the cause of a handler's context when its job was
// cancelled through this process: the handler is stopped at once, rather
// than at its next heartbeat. It is a lost lease (the outcome is dropped).
var ErrJobCancelled = fmt.Errorf("%w: the job was cancelled", ErrLeaseLost)

// lostCause is the cause to stop the handler of job id with when its lease
// was found lost: ErrJobCancelled when the job was cancelled (by another
// process: a cancel through this one stops the handler at once), so that
// the run is timed as cancelled; ErrLeaseLost otherwise. It reads the job,
// one round trip, only when a lease is lost.
func (s *Service) lostCause(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if j, err := s.broker.Get(ctx, id); err == nil && j.Status == StatusCancelled {
		return ErrJobCancelled
	}
	return ErrLeaseLost
}

// stopRunning stops this process's handler of job id, if it runs one: the
// pool's workers' and the manual runs'.
func (s *Service) stopRunning(id string) {
	s.mu.Lock()
	run := s.manualRuns[id]
	pool := s.pool
	s.mu.Unlock()
	if run != nil {
		run.stop(ErrJobCancelled)
	}
	if pool != nil {
		pool.stopJob(id)
	}
}
