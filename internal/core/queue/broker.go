package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/refrakt/refrakt/internal/core"
)

// Broker stores jobs and moves them between states. Every method that changes
// a job does so atomically (one Lua script per queue in Redis, one critical
// section in memory) and refuses an illegal move with a core.CodeConflict
// error; an unknown id is core.CodeNotFound. Other errors are backend errors.
//
// Time comes from the broker's own clock (Redis TIME for the redis broker),
// so daemons sharing a backend never disagree about what is due.
type Broker interface {
	// Enqueue stores new jobs (ID, Queue, Type, Payload, MaxRetries,
	// IntervalSeconds, Cron, Timezone, Source set by the caller; Delay or
	// At in the Enqueued wrapper). A job with a positive delay or an At is
	// scheduled, any other pending.
	// It fills in Status, EnqueuedAt, RunAt and ReadyAt of each job. It is
	// atomic per queue: the jobs of one queue are all stored or none is
	// (a queue is the unit a Redis Cluster keeps in one slot).
	//
	// A failed Enqueue has stored nothing, with two exceptions: when jobs
	// of several queues were stored in some queues and not in others, the
	// error is a *PartialEnqueueError naming the queues stored (see
	// StoredQueues); and when the
	// backend may have stored the jobs and its answer was lost (a remote
	// backend timing out, its connection broken after the command was
	// sent), or its command failed part way (a Redis script's runtime
	// error, which Redis does not roll back: not atomic then), the error is
	// an *UncertainEnqueueError naming them (see MaybeStored). A call whose ctx has ended stores nothing, and a caller
	// waits at most until its ctx ends or one backend command times out.
	Enqueue(ctx context.Context, jobs ...NewJob) error
	// Get returns one job.
	Get(ctx context.Context, id string) (*Job, error)
	// List returns jobs matching f: pending and scheduled ones in the order
	// they will run, finished ones most recent first.
	List(ctx context.Context, f Filter) ([]*Job, error)
	// Queues returns the names of every queue that ever had a job, sorted.
	Queues(ctx context.Context) ([]string, error)
	// Stats returns one queue's gauges and totals, in O(1) or O(log n).
	Stats(ctx context.Context, queue string) (Stats, error)
	// StatsMany returns the Stats of each of queues, in their order, read
	// together (on Redis, in one round trip). When some can be read and
	// others not, it returns those read, in order, and a *StatsError
	// naming the others.
	StatsMany(ctx context.Context, queues []string) ([]Stats, error)

	// Fetch moves up to req.N pending jobs, oldest first, to running under a
	// lease. When none is pending it waits up to req.Wait for one to be
	// enqueued (a blocking or notified wait, not a poll) and returns an empty
	// slice if none came. Beyond the first req.N-req.Ahead jobs it takes,
	// it takes none on its last try (see FetchRequest.Ahead), and when it
	// left one pending for that reason it returns at once, without waiting.
	Fetch(ctx context.Context, req FetchRequest) ([]Lease, error)
	// Claim starts the job id now, whatever its run_at: pending, scheduled or
	// failed → running. It is how "run ID" works in manual mode.
	Claim(ctx context.Context, id string, lease time.Duration) (Lease, error)
	// Extend renews the leases of running jobs. ok[i] is false when refs[i]
	// no longer holds its job (recovered, cancelled, started again): its
	// worker must stop and write nothing more.
	Extend(ctx context.Context, refs []Ref, lease time.Duration) (ok []bool, err error)
	// Finish records the outcomes of runs: running → succeeded, scheduled
	// (a recurring job: after its interval, or at the outcome's NextRunAt),
	// failed (to retry after RetryIn) or dead. to[i] is the
	// job's new status, or "" when outcomes[i] lost its lease and nothing was
	// written. When only some queues' outcomes could not be written (on a
	// Redis Cluster, those of a master that is down; on any Redis, those a
	// stalled server ran after the caller's deadline, which write nothing),
	// the error is a *FinishError naming them, and to holds the statuses of
	// the others.
	Finish(ctx context.Context, outcomes []Outcome) (to []Status, err error)
	// Release hands running jobs back: running → pending, at the head of the
	// queue, not counted as an attempt. Used at shutdown.
	Release(ctx context.Context, refs []Ref) (ok []bool, err error)

	// Cancel moves a scheduled, pending, failed or running job to cancelled
	// and returns it with the status it had.
	Cancel(ctx context.Context, id string) (job *Job, from Status, err error)
	// Requeue moves a dead or cancelled job back to pending, with its retries
	// reset, and returns it with the status it had.
	Requeue(ctx context.Context, id string) (job *Job, from Status, err error)
	// RequeueDead moves queue's dead jobs that died (finished_at) at or
	// before the cut, oldest death first, at most limit of them, back to
	// pending as Requeue does each (at the tail, retries reset), and wakes
	// the fetchers of queue. A zero before means the broker's now less 1ms
	// (the jobs that died before the call), and a cut later than that is
	// taken as that: a job this call requeues that dies again dies after the
	// cut, so calls repeated with the first one's Cut never take it twice
	// and end. Each job moves atomically, and only while it is dead: one
	// requeued meanwhile by Requeue or another RequeueDead is pushed to
	// pending once. A queue that does not exist is core.CodeNotFound; one
	// with no dead job answers nothing moved.
	RequeueDead(ctx context.Context, queue string, before time.Time, limit int) (RequeueDeadResult, error)
	// RemoveQueue deletes queue name with its finished jobs (succeeded,
	// cancelled and dead), its totals and its idempotency keys, and returns how many jobs went
	// with it. A queue still holding a job to run (pending, scheduled,
	// failed awaiting its retry, or running) is refused with
	// core.CodeConflict and left as it was; a queue that does not exist is
	// core.CodeNotFound. A job enqueued into the queue meanwhile is never
	// lost: either the removal sees it and refuses, or the job makes the
	// queue again after the removal.
	RemoveQueue(ctx context.Context, name string) (removed int, err error)
	// SetPaused pauses queue name (paused true) or resumes it, and says
	// whether that changed anything (pausing a paused queue is no error).
	// A paused queue still takes enqueues, its tick still promotes due
	// jobs and recovers expired leases, its running jobs finish and Claim
	// still starts its jobs by id: only Fetch skips it, atomically with
	// its take (a Fetch that starts after SetPaused returns takes nothing
	// from it). Resuming wakes the fetchers of queue. The flag is kept
	// until resumed or the queue removed (a queue made again runs). A
	// queue that does not exist is core.CodeNotFound.
	SetPaused(ctx context.Context, name string, paused bool) (changed bool, err error)
	// Tick promotes due scheduled and failed jobs to pending and recovers
	// running jobs whose lease expired (to pending, or dead when that was
	// their last retry), in every queue. It names the jobs it made dead in
	// TickResult.Dead; when it fails part way, the result is what it moved
	// before, dead jobs named.
	Tick(ctx context.Context) (TickResult, error)

	// Ping checks that the backend answers.
	Ping(ctx context.Context) error
}

// NewJob is a job to enqueue: the caller's fields, plus how long to wait
// before it becomes pending.
type NewJob struct {
	*Job
	Delay time.Duration
	// At, when set, is when the job first runs (it is scheduled till
	// then), in place of Delay: a cron job's first occurrence, exact
	// whatever the backend's clock.
	At time.Time
	// Idem, when set, is the job's idempotency key: Enqueue records it for
	// the job's queue with the job's id and Fingerprint, for TTL, unless
	// it is recorded there already. Recorded for the same fingerprint and
	// its job still kept, the job is not stored and Enqueue sets
	// Idem.Existing to that job's id (a replay; the call's other jobs are
	// stored); recorded for another fingerprint, Enqueue stores nothing of
	// that job's queue and answers KeyReusedError; recorded for a job no
	// longer kept, nothing of its queue and KeyGoneError. The check and the
	// record are atomic with the store of the queue's jobs: a call of jobs
	// of several queues is atomic per queue on Redis (one script a queue),
	// whole in memory. A call's jobs of one queue have distinct keys.
	Idem *Idempotency
}

// FetchRequest says how many jobs to take, from which queues (all when
// empty), for how long, how long to wait for one, and how many of them the
// caller will hold ready rather than start at once.
type FetchRequest struct {
	Queues []string
	N      int
	Lease  time.Duration
	Wait   time.Duration
	// Ahead is how many of the N jobs the caller holds ready ahead of a
	// free worker (a pool's prefetch) rather than starting at once; 0, as
	// every caller but the worker pool passes, means all N start at once.
	//
	// A fetched job is running, its attempt counted, before a worker has
	// it: if the caller dies while holding it, the tick recovers its
	// expired lease as a failed attempt. So beyond the first N-Ahead jobs
	// a fetch takes (across all its queues), it takes none on its last try
	// (LastTry: no retry left, which that recovery would make dead
	// although its handler never started): such a job stays at the head
	// of its queue, in order, and that queue's part of the batch ends
	// there (the other queues' may go on, except with Strict). A crash can then cost a held
	// job a retry, never its life.
	Ahead int
	// Held, when set, is told the queue whose head job was so left
	// pending (the first, if several), "" when none was.
	Held *string
	// Prefer is a queue to try first (then the others, round-robin): the
	// pool names the queue a fetch left a job on its last try in, and
	// fetches for free workers only (Ahead 0), so that the job is taken
	// then rather than left behind every other queue's backlog.
	Prefer string
	// Ordered visits Queues (after Prefer) in the order given, every
	// fetch, instead of rotating through them: a pool's strict or
	// weighted order (WORKER_QUEUES). A job of a later queue is taken only
	// when the earlier ones had none pending, or req.N is not reached yet.
	Ordered bool
	// Strict, with Ordered, keeps the order over a Redis wake-up's queue
	// too (WORKER_QUEUE_ORDER=strict): a fetch woken by a job of a later
	// queue still tries the earlier ones first. Without it, the queue the
	// wake-up names is tried first, as for any fetch. And a strict fetch
	// ends at the first queue that held a job (see Ahead): a later queue's
	// jobs, held ahead of a free worker, would start before the earlier
	// queue's pending ones.
	Strict bool
	// Only marks Queues as the set a worker pool works (WORKER_QUEUES),
	// not queues the caller asks about (run-next): a queue of it left out
	// because its Redis Cluster master is failing is passed over as in a
	// fetch of every queue, not reported as an error (which would make
	// the pool back off from every other queue of its set).
	Only bool
}

// existing is the id of the job nj's idempotency key had made already,
// which Enqueue set in place of storing nj (a replay), or "".
func (nj NewJob) existing() string {
	if nj.Idem == nil {
		return ""
	}
	return nj.Idem.Existing
}

// Ref names one run of a job: its id, queue and fencing token.
type Ref struct {
	ID    string
	Queue string
	Token int64
}

// Ref returns the reference of a lease.
func (l Lease) Ref() Ref { return Ref{ID: l.Job.ID, Queue: l.Job.Queue, Token: l.Token} }

// Outcome is the result of one run. Err empty means success, with Result as
// the job's result; otherwise the job failed with Err and, if it has retries
// left and NoRetry is false, runs again after RetryIn.
type Outcome struct {
	Ref
	Result  json.RawMessage
	Err     string
	RetryIn time.Duration
	// NoRetry, with Err, makes the job dead at once whatever retries it
	// has left (its handler's failure was ErrNoRetry), as the last retry's
	// failure does: retries counted, finished_at, among the dead.
	NoRetry bool
	// NextRunAt, on a success of a cron job, schedules it again at that
	// time (its next occurrence, which only Go can compute); zero, or a
	// job without cron: the job's interval_seconds decide, as before.
	NextRunAt time.Time
	// noNextRun: the job is dead because its run succeeded but its
	// schedule gives no next run (set by Service.outcome, read by
	// recordFinish), so that the cause never depends on Err's text.
	noNextRun bool
}

// UncertainEnqueueError is an Enqueue that failed after its command may
// have reached the backend: the jobs JobIDs may be stored (and then run)
// although the caller got an error, because the answer was lost (a
// timeout, a broken connection, the backend killed right after it ran the
// command), or the command failed part way, its writes before the error
// kept (Failed). A caller that retries should first read these jobs, or it
// may run the work twice. Any other Enqueue error means nothing was stored,
// but in the queues a *PartialEnqueueError names (StoredQueues).
type UncertainEnqueueError struct {
	JobIDs []string
	Err    error
	// Failed: the backend ran the command and it failed part way (a
	// Redis script's error, its writes before it kept), not an answer lost.
	Failed bool
}

func (e *UncertainEnqueueError) Error() string {
	what := "no answer"
	if e.Failed {
		what = "failed part way"
	}
	return fmt.Sprintf("enqueue: %s, job %s may have been stored: %v", what, strings.Join(e.JobIDs, ", "), e.Err)
}

// Unwrap returns the cause.
func (e *UncertainEnqueueError) Unwrap() error { return e.Err }

// MaybeStored returns the ids of the jobs a failed enqueue may have stored
// all the same (the *UncertainEnqueueError in err's chain), or nil when no
// job is in doubt: then the jobs of the queues StoredQueues names (a
// *PartialEnqueueError) are stored, and the others are not.
func MaybeStored(err error) []string {
	var u *UncertainEnqueueError
	if errors.As(err, &u) {
		return u.JobIDs
	}
	return nil
}

// PartialEnqueueError is an Enqueue of jobs in several queues that failed
// after the jobs of some queues were stored: Enqueue is atomic per queue,
// not as a whole (one Redis script per queue). Stored names the queues
// whose jobs are stored; the jobs of the others are not, or may be when Err
// carries an *UncertainEnqueueError (see MaybeStored).
type PartialEnqueueError struct {
	Stored []string
	Err    error
}

func (e *PartialEnqueueError) Error() string {
	return fmt.Sprintf("%v (the jobs of queue %s are stored)", e.Err, strings.Join(e.Stored, ", "))
}

// Unwrap returns the cause.
func (e *PartialEnqueueError) Unwrap() error { return e.Err }

// StoredQueues returns the queues whose jobs a failed enqueue stored all
// the same (the *PartialEnqueueError in err's chain), or nil.
func StoredQueues(err error) []string {
	var p *PartialEnqueueError
	if errors.As(err, &p) {
		return p.Stored
	}
	return nil
}

// FinishError is Finish's error when the outcomes of some queues were
// written and others were not: Unwritten[i] is true for each outcomes[i] to
// send again. The others are recorded, with their statuses in Finish's to.
type FinishError struct {
	Unwritten []bool
	Err       error
}

func (e *FinishError) Error() string { return e.Err.Error() }
func (e *FinishError) Unwrap() error { return e.Err }

// StatsError is StatsMany's error when some queues' gauges could not be
// read (on a Redis Cluster, their master does not answer, or their slot is
// moving) while the others' were: StatsMany returns those, and Failed names
// the queues left out, which are not gone.
type StatsError struct {
	Failed []string
	Err    error
}

func (e *StatsError) Error() string { return e.Err.Error() }
func (e *StatsError) Unwrap() error { return e.Err }

// QueueBusyError is RemoveQueue's refusal of a queue that still holds jobs
// to run, counted by status.
func QueueBusyError(name string, pending, scheduled, retry, running int64) error {
	var parts []string
	for _, c := range []struct {
		n    int64
		what string
	}{{pending, "pending"}, {scheduled, "scheduled"}, {retry, "awaiting a retry"}, {running, "running"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return core.Errorf(core.CodeConflict, "queue %s still holds jobs to run (%s): cancel them or let them finish first",
		name, strings.Join(parts, ", "))
}

// QueueNotFoundError is RemoveQueue's answer for a queue that does not exist.
func QueueNotFoundError(name string) error {
	return core.Errorf(core.CodeNotFound, "queue %s not found", name)
}

// QueuePausedError is run-next's answer when every queue it may take
// from is paused: the jobs are there, held on purpose.
func QueuePausedError(name string) error {
	return core.Errorf(core.CodeConflict, "queue %s is paused: resume it (refrakt jobs resume %s) to run its jobs", name, name)
}

// RequeueDeadResult is what one RequeueDead did.
type RequeueDeadResult struct {
	// IDs are the jobs moved dead → pending, in the order they died (and
	// now stand in line).
	IDs []string
	// Remaining counts the queue's dead jobs that died at or before Cut
	// and are still dead after the call: 0 once every one is requeued.
	Remaining int
	// Cut is the cut the call used (see Broker.RequeueDead): pass it as
	// before to go on with the same operation.
	Cut time.Time
}

// MaxRequeueDead is the most dead jobs one RequeueDead call of the API
// moves; a caller that has more repeats the call with the first one's cut.
const MaxRequeueDead = 10000

// DeadCut is the cut RequeueDead uses given before at the broker's time
// now: before, but never later than 1ms before now (the zero before: that
// very cut), so that a job the call requeues, dying again, dies after it.
func DeadCut(before, now time.Time) time.Time {
	latest := now.Add(-time.Millisecond)
	if before.IsZero() || before.After(latest) {
		return latest
	}
	return before
}

// TickResult counts the jobs one tick moved, and names those it made dead.
type TickResult struct {
	Scheduled     int `json:"scheduled"`      // scheduled → pending
	Retried       int `json:"retried"`        // failed → pending
	Recovered     int `json:"recovered"`      // running → pending, lease expired
	RecoveredDead int `json:"recovered_dead"` // running → dead, lease expired on the last retry
	// Dead are the RecoveredDead jobs, in no particular order (nil when
	// there are none): their worker was lost during their last attempt, so
	// no handler's failure reports them, and the history keeps them only
	// among their queue's last JOB_HISTORY finished jobs.
	Dead []DeadJob `json:"dead_jobs,omitempty"`
}

// Add sums two tick results. Their Dead are joined in a new slice only when
// both name jobs; otherwise the sum shares the one that does (nil when
// neither does), so that summing many queues' results, most naming none,
// copies nothing.
func (r TickResult) Add(o TickResult) TickResult {
	dead := r.Dead
	switch {
	case len(o.Dead) == 0:
	case len(r.Dead) == 0:
		dead = o.Dead
	default:
		dead = slices.Concat(r.Dead, o.Dead)
	}
	return TickResult{r.Scheduled + o.Scheduled, r.Retried + o.Retried, r.Recovered + o.Recovered, r.RecoveredDead + o.RecoveredDead, dead}
}

// DeadJob names a job that has just gone dead, as Observer.Dead and
// TickResult report it.
type DeadJob struct {
	ID        string `json:"id"`
	Queue     string `json:"queue"`
	Type      string `json:"type"`
	Attempts  int    `json:"attempts"` // runs started, the last one included
	LastError string `json:"last_error"`
}

// LeaseExpired is the last_error a tick gives a running job whose lease it
// found expired (its worker lost: crashed, stalled or cut off).
const LeaseExpired = "lease expired"

// Stats are one queue's gauges and running totals. The totals only grow, so
// the difference of two snapshots gives rates.
type Stats struct {
	Queue            string        `json:"queue"`
	Pending          int64         `json:"pending"`
	Running          int64         `json:"running"`
	Scheduled        int64         `json:"scheduled"`
	Retry            int64         `json:"retry"` // failed, waiting for their retry
	Dead             int64         `json:"dead"`
	OldestPendingAge time.Duration `json:"-"`
	OldestPendingSec float64       `json:"oldest_pending_seconds"`
	Enqueued         int64         `json:"enqueued_total"`
	// Started counts every time a worker took a job, the runs handed back
	// unstarted (a shed, an interrupted manual run) included.
	Started   int64 `json:"started_total"`
	Succeeded int64 `json:"succeeded_total"`
	Failed    int64 `json:"failed_total"`
	// Paused is set while the queue is paused (Broker.SetPaused): its
	// pending jobs wait, none is fetched.
	Paused bool `json:"paused"`
}
