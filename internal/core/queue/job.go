// Package queue is refrakt's job queue: jobs and their states, the handler
// registry with the built-in handlers, retry backoff, recurring jobs, the
// worker pool with leases and graceful shutdown, and admission control.
//
// Storage is behind the Broker interface (package membroker for one daemon,
// redisbroker for many); this package knows no Redis, HTTP or Prometheus. It
// reports what happens to an Observer, which the metrics package implements.
package queue

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"time"
)

// DefaultQueue is the queue a job goes to when none is named.
const DefaultQueue = "default"

// Status is the state of a job. The legal moves are listed in Transitions.
type Status string

// The states of a job:
//
//	scheduled → pending → running → succeeded | failed (waiting to retry) | dead
//	any of scheduled, pending, failed, running → cancelled
//	dead, cancelled → pending (requeue); failed → pending (tick, when due)
//	running → pending (lease expired, or handed back at shutdown)
//	running → scheduled (a recurring job after a success)
const (
	StatusScheduled Status = "scheduled" // waiting for its run_at
	StatusPending   Status = "pending"   // ready, waiting for a worker
	StatusRunning   Status = "running"   // held by a worker under a lease
	StatusSucceeded Status = "succeeded" // finished well
	StatusFailed    Status = "failed"    // its last attempt failed; a retry is scheduled at run_at
	StatusDead      Status = "dead"      // failed max_retries+1 times; kept for inspection and requeue
	StatusCancelled Status = "cancelled" // cancelled by a caller
)

// Statuses lists every status, in the order of a job's life.
var Statuses = []Status{StatusScheduled, StatusPending, StatusRunning, StatusSucceeded, StatusFailed, StatusDead, StatusCancelled}

// Transition is one move of a job from a status to another.
type Transition struct{ From, To Status }

// Transitions lists every move a job can make, each as a Service reports it
// to Observer.Transition (so that the daemon can show each one's counter
// from 0, before the first).
var Transitions = []Transition{
	{StatusScheduled, StatusPending},   // due (tick)
	{StatusFailed, StatusPending},      // its retry due (tick)
	{StatusRunning, StatusPending},     // its lease expired (tick), or handed back
	{StatusDead, StatusPending},        // requeue
	{StatusCancelled, StatusPending},   // requeue
	{StatusPending, StatusRunning},     // fetched, run-next, run ID
	{StatusScheduled, StatusRunning},   // run ID
	{StatusFailed, StatusRunning},      // run ID
	{StatusRunning, StatusSucceeded},   // a success
	{StatusRunning, StatusScheduled},   // a recurring job after a success
	{StatusRunning, StatusFailed},      // a failure with retries left
	{StatusRunning, StatusDead},        // its last attempt failed, or its lease expired (tick)
	{StatusScheduled, StatusCancelled}, // cancel
	{StatusPending, StatusCancelled},   // cancel
	{StatusFailed, StatusCancelled},    // cancel
	{StatusRunning, StatusCancelled},   // cancel
}

// Valid reports whether s is one of the statuses.
func (s Status) Valid() bool {
	for _, v := range Statuses {
		if s == v {
			return true
		}
	}
	return false
}

// Waiting reports whether a job in status s waits to run (pending,
// scheduled, or failed and due to retry): one queue's such jobs are listed
// in the order its list or set keeps them, so a page of them is read as a
// window of that order.
func (s Status) Waiting() bool {
	return s == StatusPending || s == StatusScheduled || s == StatusFailed
}

// Finished reports whether a job in status s is in the history (it will not
// run again unless requeued).
func (s Status) Finished() bool {
	return s == StatusSucceeded || s == StatusDead || s == StatusCancelled
}

// Sources of an enqueue, as counted by Observer.Enqueued.
const (
	SourceAPI      = "api"      // POST /run, /assistant, the developer API
	SourceCLI      = "cli"      // refrakt jobs enqueue talking straight to Redis
	SourceSchedule = "schedule" // a recurring job scheduled again after a success
	SourceRetry    = "retry"    // a failed job scheduled again
)

// Sources lists every source of an enqueue.
var Sources = []string{SourceAPI, SourceCLI, SourceSchedule, SourceRetry}

// Job is one unit of work and everything known about it. Times are UTC; a
// zero time means "not yet".
type Job struct {
	ID       string          `json:"id"`
	Queue    string          `json:"queue"`
	Type     string          `json:"type"`
	Payload  json.RawMessage `json:"payload,omitempty"`
	Status   Status          `json:"status"`
	Attempts int             `json:"attempts"` // runs started, over the job's whole life
	// Retries counts the failed attempts (and expired leases) since the last
	// success or requeue; at max_retries the next failure makes the job dead.
	Retries         int `json:"retries"`
	MaxRetries      int `json:"max_retries"`
	IntervalSeconds int `json:"interval_seconds,omitempty"`
	// Cron, when set, makes the job recurring on a calendar: after each
	// success it is scheduled at the expression's next occurrence in
	// Timezone (an IANA name; "" is UTC). See package cron.
	Cron       string          `json:"cron,omitempty"`
	Timezone   string          `json:"timezone,omitempty"`
	TimeoutMS  int64           `json:"timeout_ms,omitempty"` // bounds each run when set; 0: the runner's JOB_TIMEOUT
	RunAt      time.Time       `json:"run_at"`
	EnqueuedAt time.Time       `json:"enqueued_at"`
	StartedAt  time.Time       `json:"started_at,omitzero"`
	FinishedAt time.Time       `json:"finished_at,omitzero"`
	LastError  string          `json:"last_error,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	Source     string          `json:"source"`
	// Replayed is set on the job an enqueue answers when its idempotency
	// key had made that job already, and nothing was stored. Not stored.
	Replayed bool `json:"-"`
	// ReadyAt is when the job last became runnable (enqueued, due, recovered
	// or requeued): the start of its wait in the pending list.
	ReadyAt time.Time `json:"ready_at,omitzero"`
	// LeaseUntil is when a running job's lease ends unless its worker extends it.
	LeaseUntil time.Time `json:"lease_until,omitzero"`
}

// NewID returns a random 128-bit job id, URL-safe base64 without padding
// (22 characters). Ids are the only secret guarding GET /run/{id}.
func NewID() string {
	var b [16]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
		// An id starting with '-' or '_' (top six bits 62 or 63) reads as a
		// flag to shells, curl and the CLI: draw again (1 in 32).
		if b[0]>>2 < 62 {
			return base64.RawURLEncoding.EncodeToString(b[:])
		}
	}
}

// Lease is a running job as its worker holds it: the job and the fencing
// token of this run. Every write a worker makes (extend, complete, fail,
// hand back) names the token; the broker refuses it when the job has since
// been recovered, cancelled or started again, so a worker that lost its lease
// can never overwrite a newer run.
type Lease struct {
	Job   *Job
	Token int64
}

// Filter selects jobs for Broker.List. Zero values select everything.
type Filter struct {
	Queue  string
	Status Status
	Limit  int // at most this many jobs (DefaultListLimit when 0)
	// Offset skips this many jobs of the listing: the page at offset O is
	// the jobs at positions O to O+Limit-1 of the listing a limit of
	// O+Limit gives, in its order (0: from the first).
	Offset int
}

// DefaultListLimit is the number of jobs List returns when the filter gives no limit.
const DefaultListLimit = 50

// MaxListLimit bounds Filter.Limit.
const MaxListLimit = 1000

// MaxListDepth bounds Filter.Offset+Filter.Limit: how deep into a listing
// one page may reach. Only a listing of one queue and one status is paged
// (PageNeedsQueueAndStatus): its pending, scheduled or failed jobs are
// read as just the page's window on Redis (walked to it, copying only its
// jobs, on memory), and its other sets are small (running: as many as
// workers; dead, succeeded and cancelled: JOB_HISTORY). A listing of every queue or
// status merges sets read offset+limit deep, for pages that would not
// follow each other.
const MaxListDepth = 100_000

// PageNeedsQueueAndStatus is why a listing with an offset but no queue or
// no status is refused.
const PageNeedsQueueAndStatus = "an offset pages one queue's jobs of one status: give the queue and the status"

// Exhausted reports whether a job that has failed retries times (counting
// the attempt that just failed) with maxRetries allowed goes dead rather
// than back to be retried: the rule of both brokers (and of the Redis
// scripts, retries > max_retries).
func Exhausted(retries, maxRetries int) bool { return retries > maxRetries }

// LastTry reports whether a job that has failed retries times so far, with
// maxRetries allowed, has no retry left: its next failure, a lost lease
// included, makes it dead (Exhausted counting that failure; the Redis
// fetch script's retries >= max_retries). A fetch never takes such a job
// to hold ahead of a free worker: see FetchRequest.Ahead.
func LastTry(retries, maxRetries int) bool { return Exhausted(retries+1, maxRetries) }
