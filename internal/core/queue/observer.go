package queue

import "time"

// Observer is told everything countable that happens to jobs. The metrics
// package implements it with Prometheus collectors; queue never imports
// Prometheus. Methods must be cheap and safe for concurrent use.
type Observer interface {
	// Enqueued counts a job entering a queue; source is api, cli, schedule
	// (a recurring job after a success) or retry (a failed job rescheduled).
	Enqueued(source string)
	// Transition counts one status change of one job.
	Transition(from, to string)
	// Waited observes how long a job waited between becoming runnable
	// (enqueued or due) and its handler starting.
	Waited(queue string, d time.Duration)
	// Finished observes one run of a handler: its type, how it ended
	// (succeeded; failed, with retries left; dead, its last attempt
	// failed or a failure not to retry; cancelled) and how long it took.
	Finished(typ, status string, d time.Duration)
	// AdmissionRejected counts an enqueue refused by admission control;
	// reason is max_pending, max_age or backend.
	AdmissionRejected(queue, reason string)
	// BackendError counts a failed broker call; op names it (one of
	// BackendOps) and err is its error.
	BackendError(op string, err error)
	// Dead is told of a job that has just gone dead, and why: its handler
	// failed its last attempt, or failed one not to be retried (j's
	// attempts and error those of that attempt), or a tick found the lease
	// of its last attempt expired.
	Dead(j DeadJob, why DeadCause)
}

// DeadCause is why a job went dead, in words that finish "job dead: ".
type DeadCause string

// The causes of Observer.Dead.
const (
	// DeadRetriesExhausted: its handler failed its last attempt.
	DeadRetriesExhausted DeadCause = "retries exhausted"
	// DeadLeaseExpired: its worker was lost (a crashed daemon, a stall
	// longer than the lease) during its last attempt, and a tick found the
	// lease expired.
	DeadLeaseExpired DeadCause = "lease expired on its last attempt"
	// DeadNotRetried: its handler failed with a failure not to retry
	// (ErrNoRetry), whatever retries it had left.
	DeadNotRetried DeadCause = "not retried (its handler said the failure is final)"
	// DeadNoNextRun: a cron job's run succeeded but its schedule gives no
	// next run here (unreadable by this daemon, or no occurrence).
	DeadNoNextRun DeadCause = "its schedule gives no next run"
)

// AnswerObserver is an Observer that is told of the broker calls that
// succeeded as well (BackendAnswered, with the op BackendError would name):
// the daemon logs the end of a backend outage it logged the start of. The
// Service tells it of enqueue, get, list, stats and tick.
type AnswerObserver interface {
	BackendAnswered(op string)
}

// BackendOps lists every op of Observer.BackendError.
var BackendOps = []string{"enqueue", "get", "list", "stats", "queues", "admission", "fetch", "claim", "extend", "finish", "release",
	"cancel", "requeue", "requeue_dead", "remove_queue", "tick"}

// NopObserver ignores everything.
type NopObserver struct{}

// Enqueued does nothing.
func (NopObserver) Enqueued(string) {}

// Transition does nothing.
func (NopObserver) Transition(string, string) {}

// Waited does nothing.
func (NopObserver) Waited(string, time.Duration) {}

// Finished does nothing.
func (NopObserver) Finished(string, string, time.Duration) {}

// AdmissionRejected does nothing.
func (NopObserver) AdmissionRejected(string, string) {}

// BackendError does nothing.
func (NopObserver) BackendError(string, error) {}

// Dead does nothing.
func (NopObserver) Dead(DeadJob, DeadCause) {}
