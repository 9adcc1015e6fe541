package queue

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/refrakt/refrakt/internal/core"
)

// AdmissionConfig bounds each queue. Zero turns a bound off.
type AdmissionConfig struct {
	// MaxPending is QUEUE_MAX_PENDING: the most pending jobs a queue may
	// hold; an enqueue that would make more is refused, so exactly
	// MaxPending are accepted into an idle, empty queue.
	MaxPending int
	// MaxAge is QUEUE_MAX_AGE_SECONDS: refuse while the queue's oldest
	// pending job has waited longer than this.
	MaxAge time.Duration
	// CacheFor is how long one read of a queue's gauges answers admission
	// checks [250ms]; jobs admitted meanwhile are counted locally, so one
	// daemon never overshoots MaxPending. Daemons sharing a queue do not
	// see each other's local counts: until their next read, N of them may
	// hold it at up to N × MaxPending (the README says so).
	CacheFor time.Duration
}

// Admission reasons, as reported to Observer.AdmissionRejected.
const (
	ReasonMaxPending = "max_pending"
	ReasonMaxAge     = "max_age"
	ReasonBackend    = "backend"
)

// Rejection is the error of an enqueue refused by admission control. Its
// code (through Unwrap) is core.CodeUnavailable; the daemon answers 503
// with Retry-After.
type Rejection struct {
	Queue      string
	Reason     string        // max_pending, max_age or backend
	RetryAfter time.Duration // at least 1s, whole seconds
	Message    string
	Err        error // the backend error, for reason backend
}

func (r *Rejection) Error() string { return r.Message }

// Unwrap gives the coded error, so core.ErrorCode(r) is unavailable.
func (r *Rejection) Unwrap() error {
	return &core.Error{Code: core.CodeUnavailable, Message: r.Message, Err: r.Err}
}

// Admission decides whether a queue takes more jobs. It is safe for
// concurrent use.
type Admission struct {
	broker Broker
	clock  Clock
	obs    Observer
	cfg    AdmissionConfig

	mu     sync.Mutex
	queues map[string]*admState
	// swept is when queues was last rid of the queues not read for
	// admIdle: without that, every queue ever admitted (removed ones, and
	// any number of them with QUEUE_MAX_QUEUES=0) would stay.
	swept time.Time
}

// admIdle is how long a queue's reading is kept after it was last taken:
// past it, the next job for the queue reads its gauges again anyway, and
// only the drain rate is learnt anew (a rejection meanwhile says
// unknownRetryAfter).
const admIdle = time.Minute

// admState is the last reading of one queue and its drain rate.
type admState struct {
	at      time.Time     // when the gauges were read
	pending int64         // pending jobs then
	oldest  time.Duration // oldest pending age then
	// stored counts every job this process stored into the queue, and
	// storedAt what it was when the reading was begun: the jobs stored
	// since (stored − storedAt) may or may not show in it. writing are
	// those it admitted and is storing, which no reading shows.
	stored, storedAt int64
	writing          int64

	sampleAt      time.Time // the drain-rate sample: when, and the started total
	sampleStarted int64
	rate          float64 // jobs started per second, smoothed; 0 = unknown
}

func newAdmission(b Broker, c Clock, o Observer, cfg AdmissionConfig) *Admission {
	if cfg.CacheFor <= 0 {
		cfg.CacheFor = 250 * time.Millisecond
	}
	return &Admission{broker: b, clock: c, obs: o, cfg: cfg, queues: map[string]*admState{}}
}

// Admission returns the service's admission control.
func (s *Service) Admission() *Admission { return s.admission }

// Enabled reports whether any bound is set.
func (a *Admission) Enabled() bool { return a.cfg.MaxPending > 0 || a.cfg.MaxAge > 0 }

// Reasons lists the reasons it may refuse with, under its bounds: none when
// it is off.
func (a *Admission) Reasons() []string {
	var out []string
	if a.cfg.MaxPending > 0 {
		out = append(out, ReasonMaxPending)
	}
	if a.cfg.MaxAge > 0 {
		out = append(out, ReasonMaxAge)
	}
	if a.Enabled() {
		out = append(out, ReasonBackend)
	}
	return out
}

// Admit returns nil when queue q may take one more job, counting it, or a
// *Rejection saying which bound was hit; the caller reports the job's write
// with Stored. It costs one broker read (Stats) per queue per CacheFor, and
// one more before a refusal that only this process's own guesses would
// make: jobs it stored since the reading (which workers may have started
// meanwhile) or the time since it (in which the oldest job may have been
// started). Jobs admitted and still being written count as pending. A
// queue that drains as fast as it fills is never refused, and a queue over
// a bound at the reading itself is refused without another read until the
// reading is stale.
func (a *Admission) Admit(ctx context.Context, q string) error {
	if !a.Enabled() {
		return nil
	}
	for fresh := false; ; fresh = true {
		now := a.clock.Now()
		a.mu.Lock()
		st := a.queues[q]
		stale := fresh || st == nil || now.Sub(st.at) >= a.cfg.CacheFor || now.Before(st.at)
		// The jobs stored from here on may be missing from the reading.
		was, storedBefore := st, int64(0)
		if st != nil {
			storedBefore = st.stored
		}
		a.mu.Unlock()
		if stale {
			stats, err := a.broker.Stats(ctx, q)
			if err != nil {
				a.obs.BackendError("admission", err)
				return a.reject(q, ReasonBackend, time.Second, err, "the job queue is unavailable: cannot check queue %s", q)
			}
			a.mu.Lock()
			st = a.update(q, now, stats)
			if st != was {
				storedBefore = 0 // a new record: its count starts at 0
			}
			st.storedAt = storedBefore
			a.mu.Unlock()
		}
		confirm, err := a.check(q, st, now, !stale)
		if confirm {
			continue // a refusal on guesses: read the gauges of now first
		}
		return err
	}
}

// check decides on st, the reading of queue q, at now, counting the job
// when it is admitted. With mayConfirm, a refusal that rests on what
// happened since the reading rather than on the reading itself is not made:
// check reports confirm instead, and counts nothing.
func (a *Admission) check(q string, st *admState, now time.Time, mayConfirm bool) (confirm bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	pending := st.pending + (st.stored - st.storedAt) + st.writing
	if a.cfg.MaxPending > 0 && pending >= int64(a.cfg.MaxPending) {
		// The jobs stored since the reading are the guess: workers may
		// have started them. The ones still being written are not.
		if mayConfirm && st.pending+st.writing < int64(a.cfg.MaxPending) {
			return true, nil
		}
		excess := float64(pending - int64(a.cfg.MaxPending) + 1)
		return false, a.reject(q, ReasonMaxPending, a.estimate(st, excess/math.Max(st.rate, 0)), nil,
			"queue %s is full: %d pending jobs, QUEUE_MAX_PENDING is %d", q, pending, a.cfg.MaxPending)
	}
	if a.cfg.MaxAge > 0 && st.pending > 0 {
		age := st.oldest + max(0, now.Sub(st.at))
		if age > a.cfg.MaxAge {
			if mayConfirm && st.oldest <= a.cfg.MaxAge {
				return true, nil
			}
			wait := 0.0
			if st.rate > 0 {
				wait = float64(pending)/st.rate - a.cfg.MaxAge.Seconds()
			}
			return false, a.reject(q, ReasonMaxAge, a.estimate(st, wait), nil,
				"queue %s is behind: its oldest pending job has waited %ds, QUEUE_MAX_AGE_SECONDS is %d",
				q, int64(age.Seconds()), int64(a.cfg.MaxAge.Seconds()))
		}
	}
	st.writing++
	return false, nil
}

// Stored says that a job Admit let into queue q was stored (stored) or not:
// the caller calls it once per admitted job, when the write is over. A job
// stored after a reading was begun may be missing from it, so it counts
// with that reading.
func (a *Admission) Stored(q string, stored bool) {
	if !a.Enabled() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.queues[q]
	if st == nil {
		return // forgotten while idle: a new reading counts it
	}
	st.writing = max(0, st.writing-1)
	if stored {
		st.stored++
	}
}

// update stores a fresh reading of queue q and refreshes its drain rate from
// the started total (sampled at least a second apart).
func (a *Admission) update(q string, now time.Time, s Stats) *admState {
	a.sweep(now)
	st := a.queues[q]
	if st == nil {
		st = &admState{sampleAt: now, sampleStarted: s.Started}
		a.queues[q] = st
	}
	st.at, st.pending, st.oldest = now, s.Pending, s.OldestPendingAge
	if dt := now.Sub(st.sampleAt).Seconds(); dt >= 1 {
		inst := float64(s.Started-st.sampleStarted) / dt
		if st.rate == 0 {
			st.rate = inst
		} else {
			st.rate = 0.5*st.rate + 0.5*inst
		}
		st.sampleAt, st.sampleStarted = now, s.Started
	}
	return st
}

// sweep forgets, at most once per admIdle, the queues read last more than
// admIdle ago; the caller holds mu.
func (a *Admission) sweep(now time.Time) {
	if now.Sub(a.swept) < admIdle && !now.Before(a.swept) {
		return
	}
	a.swept = now
	for q, st := range a.queues {
		if now.Sub(st.at) > admIdle || now.Before(st.at) {
			delete(a.queues, q)
		}
	}
}

// Retry-After bounds: a queue that drains nothing (stopped workers, manual
// mode) gives no estimate, so callers are told to come back in
// unknownRetryAfter; estimates are kept between 1s and maxRetryAfter.
const (
	unknownRetryAfter = 5 * time.Second
	maxRetryAfter     = 5 * time.Minute
)

// estimate turns a wait in seconds, computed from the drain rate, into a
// Retry-After: whole seconds, at least 1s.
func (a *Admission) estimate(st *admState, seconds float64) time.Duration {
	if st.rate <= 0 || math.IsInf(seconds, 0) || math.IsNaN(seconds) {
		return unknownRetryAfter
	}
	d := time.Duration(math.Ceil(seconds)) * time.Second
	return min(max(d, time.Second), maxRetryAfter)
}

func (a *Admission) reject(q, reason string, retryAfter time.Duration, err error, format string, args ...any) error {
	a.obs.AdmissionRejected(q, reason)
	return &Rejection{Queue: q, Reason: reason, RetryAfter: retryAfter, Message: fmt.Sprintf(format, args...), Err: err}
}
