package queue

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/refrakt/refrakt/internal/core"
)

// Config holds the queue settings. Zero values take the defaults shown.
type Config struct {
	Concurrency     int           // WORKER_CONCURRENCY [4]; 0 = manual mode (see Pool)
	TickInterval    time.Duration // TICK_INTERVAL [1s]: promote due jobs, recover expired leases
	Lease           time.Duration // JOB_LEASE [30s]: a running job's lease, extended every Lease/3
	ShutdownTimeout time.Duration // SHUTDOWN_TIMEOUT [10s]: how long running jobs may finish at shutdown
	// Prefetch is the number of jobs each worker may hold ready beyond the
	// one it runs [9]: they are fetched (and leased) in batches, so a busy
	// pool makes one fetch per batch instead of one per job. The pool only
	// prefetches while jobs are fast (under 10ms on average); slow jobs are
	// fetched one per idle worker, so they stay available to other daemons.
	// Jobs held that no worker starts within 2·(1+Prefetch)·10ms (200ms by
	// default, at least 100ms), slow ones that came after fast ones, are
	// handed back, not counted as attempts. A negative value turns
	// prefetching off.
	Prefetch          int
	FetchWait         time.Duration // longest single blocking fetch [1s]
	DefaultMaxRetries int           // max_retries of a job that names none [3]
	Backoff           Backoff       // retry backoff [DefaultBackoff]
	JobTimeout        time.Duration // JOB_TIMEOUT [30m]: a run's bound when its job names none (worker.run, runBounded)
	Admission         AdmissionConfig
	// MaxQueues bounds how many distinct queues the public may make exist
	// (QUEUE_MAX_QUEUES; 0 = no bound): a Submit (POST /run, /assistant)
	// of a job for a new queue beyond it is refused with core.CodeInvalid
	// and nothing is stored. Enqueue (the developer endpoint, the CLI) is
	// not bound, so an operator can always make a queue. The count is the
	// broker's, so it holds across daemons sharing a Redis, give or take
	// queues first used at the same moment by two of them.
	MaxQueues int
	// IdempotencyTTL is how long an enqueue's idempotency key is kept
	// (JOB_IDEMPOTENCY_TTL) [DefaultIdempotencyTTL].
	IdempotencyTTL time.Duration
	// HandBackUnhandled makes a manual run (RunNext, RunID) of a job whose
	// type this process has no handler for hand the job back unrun, not
	// counted as an attempt, with an *UnhandledError, instead of failing
	// the attempt [false]. The CLI over Redis sets it: its shell may lack
	// a type of the daemons' JOB_WEBHOOKS, and a missing setting there
	// must not cost the job a retry. A daemon fails the attempt, as its
	// workers do.
	HandBackUnhandled bool
	// WorkerQueues are the queues the worker pool takes jobs from, with
	// their weights (WORKER_QUEUES) [every queue, round-robin]. Only the
	// pool obeys it: manual runs, the tick and enqueues see every queue.
	WorkerQueues []WorkerQueue
	// StrictOrder makes every fetch of the pool visit WorkerQueues in
	// their listed order (WORKER_QUEUE_ORDER=strict) instead of a
	// weighted random order [false].
	StrictOrder bool
}

// ManualMode is the Concurrency value that runs no workers.
const ManualMode = 0

func (c Config) withDefaults() Config {
	if c.TickInterval <= 0 {
		c.TickInterval = time.Second
	}
	if c.Lease <= 0 {
		c.Lease = 30 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Prefetch < 0 {
		c.Prefetch = 0
	} else if c.Prefetch == 0 {
		c.Prefetch = 9
	}
	if c.FetchWait <= 0 {
		c.FetchWait = time.Second
	}
	if c.DefaultMaxRetries == 0 {
		c.DefaultMaxRetries = 3
	}
	if c.JobTimeout <= 0 {
		c.JobTimeout = DefaultJobTimeout
	}
	if c.Backoff == (Backoff{}) {
		c.Backoff = DefaultBackoff
	}
	if c.IdempotencyTTL <= 0 {
		c.IdempotencyTTL = DefaultIdempotencyTTL
	}
	return c
}

// Limits on what a caller may ask for.
const (
	MaxRetriesLimit = 100
	MaxInterval     = 365 * 24 * 60 * 60 // seconds
	MaxDelay        = 365 * 24 * time.Hour
)

// NameRule is what a queue name may be, in words.
const NameRule = "1-64 letters, digits, and _ . : -"

// CheckQueue refuses, as invalid, a name that is not a queue name: the one
// rule and message for every command, the CLI's included.
func CheckQueue(q string) error {
	if !validQueue(q) {
		return core.Errorf(core.CodeInvalid, "queue %q: want %s", q, NameRule)
	}
	return nil
}

// validQueue reports whether q is a queue name: 1-64 letters, digits, and
// _ . : - (a loop, not a regexp: it runs on every enqueue).
func validQueue(q string) bool {
	if len(q) == 0 || len(q) > 64 {
		return false
	}
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// Deps are what a Service works with.
type Deps struct {
	Broker   Broker
	Registry *Registry // NewRegistry() when nil
	Observer Observer  // NopObserver when nil
	Clock    Clock     // SystemClock when nil
	// Rand draws the pool's weighted queue orders (WORKER_QUEUES); a
	// randomly seeded source when nil. Tests pass a seeded one.
	Rand *rand.Rand
}

// Service is the job queue as the daemon and the CLI use it: enqueue with
// validation and admission control, inspection, the manual-mode moves, and
// the execution of jobs shared by the worker Pool.
type Service struct {
	broker    Broker
	registry  *Registry
	obs       Observer
	answers   AnswerObserver // obs, when it is one
	clock     Clock
	cfg       Config
	rnd       *rand.Rand // Deps.Rand
	admission *Admission
	timeouts  TimeoutObserver // obs, when it is one

	mu      sync.Mutex
	waiters map[string][]chan struct{}
	// manualRuns stop the handlers of the manual runs in progress (run ID,
	// run-next), by job id; pool is the worker pool, once started. Cancel
	// stops a job this process runs through them (stopRunning).
	manualRuns map[string]*manualRun
	pool       *Pool

	bound queueBound // MaxQueues

	abandoned atomic.Int64 // handlers running past their timeout (the pool's workers, runBounded)
	runs      runCounts    // handlers running now and runs finished, by outcome (RunCounts)
}

// NewService returns a service on d.Broker with the settings cfg.
func NewService(d Deps, cfg Config) *Service {
	if d.Registry == nil {
		d.Registry = NewRegistry()
	}
	if d.Observer == nil {
		d.Observer = NopObserver{}
	}
	if d.Clock == nil {
		d.Clock = SystemClock{}
	}
	cfg = cfg.withDefaults()
	s := &Service{broker: d.Broker, registry: d.Registry, obs: d.Observer, clock: d.Clock, cfg: cfg, rnd: d.Rand, waiters: map[string][]chan struct{}{},
		manualRuns: map[string]*manualRun{}}
	s.answers, _ = d.Observer.(AnswerObserver)
	s.timeouts, _ = d.Observer.(TimeoutObserver)
	s.admission = newAdmission(d.Broker, d.Clock, d.Observer, cfg.Admission)
	return s
}

// Config returns the settings in use, defaults filled in.
func (s *Service) Config() Config { return s.cfg }

// Broker returns the broker the service runs on.
func (s *Service) Broker() Broker { return s.broker }

// Registry returns the handler registry.
func (s *Service) Registry() *Registry { return s.registry }

// EnqueueRequest is what a caller asks to run (the body of POST /run).
type EnqueueRequest struct {
	Type            string          `json:"type"`
	Payload         json.RawMessage `json:"payload,omitempty"`
	Queue           string          `json:"queue,omitempty"`
	IdempotencyKey  string          `json:"idempotency_key,omitempty"` // see Idempotency
	MaxRetries      *int            `json:"max_retries,omitempty"`
	IntervalSeconds int             `json:"interval_seconds,omitempty"`
	TimeoutMS       int64           `json:"timeout_ms,omitempty"` // each run's bound, 1ms to MaxJobTimeout; 0: the runner's JobTimeout
	DelayMS         int64           `json:"delay_ms,omitempty"`
	Cron            string          `json:"cron,omitempty"`     // a calendar schedule (package cron); excludes interval_seconds and delay_ms
	Timezone        string          `json:"timezone,omitempty"` // Cron's zone, an IANA name; "" is UTC

	// IdempotencyScope is whose key IdempotencyKey is, when not the
	// operators': the daemon sets it on the public routes from the
	// caller's identity (IdempotencyScope), so that two callers' keys
	// never meet. Never read from a body.
	IdempotencyScope string `json:"-"`
}

// Prepare validates req and returns the job to store, refusing an unknown
// type, a bad payload or bad options with core.CodeInvalid.
func (s *Service) Prepare(req EnqueueRequest, source string) (NewJob, error) {
	if req.Queue == "" {
		req.Queue = DefaultQueue
	}
	if err := CheckQueue(req.Queue); err != nil {
		return NewJob{}, err
	}
	if req.Queue == OtherQueues {
		// Metrics and snapshots name the sum of the queues beyond the ones
		// they show so: a queue of that name would be mixed into it.
		return NewJob{}, core.Errorf(core.CodeInvalid, "queue %q is reserved: it names the sum of the queues beyond the busiest in metrics and snapshots", req.Queue)
	}
	payload := req.Payload
	if t := string(payload); t == "" || t == "null" {
		payload = nil
	} else if !json.Valid(payload) {
		return NewJob{}, core.Errorf(core.CodeInvalid, "payload is not valid JSON")
	} else if !validUnicode(payload) {
		// json.Valid takes any bytes inside strings; stored as sent, they
		// would come back in every listing and make it unreadable to
		// anything but Go (RFC 8259 JSON is UTF-8).
		return NewJob{}, core.Errorf(core.CodeInvalid, "payload is not valid UTF-8 (or escapes half of a surrogate pair)")
	}
	if err := s.registry.validate(req.Type, payload); err != nil {
		return NewJob{}, err
	}
	retries := s.cfg.DefaultMaxRetries
	if req.MaxRetries != nil {
		retries = *req.MaxRetries
	}
	if retries < 0 || retries > MaxRetriesLimit {
		return NewJob{}, core.Errorf(core.CodeInvalid, "max_retries must be between 0 and %d", MaxRetriesLimit)
	}
	if req.IntervalSeconds < 0 || req.IntervalSeconds > MaxInterval {
		return NewJob{}, core.Errorf(core.CodeInvalid, "interval_seconds must be between 0 and %d", MaxInterval)
	}
	// Bounds first: a huge delay_ms would wrap around as a Duration.
	if req.DelayMS < 0 || req.DelayMS > MaxDelay.Milliseconds() {
		return NewJob{}, core.Errorf(core.CodeInvalid, "delay_ms must be between 0 and %d", MaxDelay.Milliseconds())
	}
	if req.IdempotencyKey != "" {
		if err := CheckIdempotencyKey(req.IdempotencyKey); err != nil {
			return NewJob{}, err
		}
	}
	delay := time.Duration(req.DelayMS) * time.Millisecond
	if req.TimeoutMS < 0 || req.TimeoutMS > MaxJobTimeout.Milliseconds() {
		return NewJob{}, core.Errorf(core.CodeInvalid, "timeout_ms must be between 1 and %d (0 or absent: the daemon's JOB_TIMEOUT)", MaxJobTimeout.Milliseconds())
	}
	nj := NewJob{Job: &Job{
		ID: NewID(), Queue: req.Queue, Type: req.Type, Payload: payload,
		MaxRetries: retries, IntervalSeconds: req.IntervalSeconds, Source: source,
		TimeoutMS: req.TimeoutMS,
	}, Delay: delay}
	if req.Cron != "" || req.Timezone != "" {
		if req.Timezone == "UTC" {
			req.Timezone = "" // one spelling of the default zone: one fingerprint, one stored form
		}
		at, err := s.prepareCron(req)
		if err != nil {
			return NewJob{}, err
		}
		nj.Cron, nj.Timezone, nj.At = req.Cron, req.Timezone, at
	}
	if req.IdempotencyKey != "" {
		nj.Idem = &Idempotency{Key: scopedKey(req.IdempotencyScope, req.IdempotencyKey), Fingerprint: fingerprint(req, nj), TTL: s.cfg.IdempotencyTTL}
	}
	return nj, nil
}

// Enqueue validates and stores one job.
func (s *Service) Enqueue(ctx context.Context, req EnqueueRequest, source string) (*Job, error) {
	nj, err := s.Prepare(req, source)
	if err != nil {
		return nil, err
	}
	return s.storeOne(ctx, nj)
}

// replayed is the answer for nj, which the broker did not store because
// its idempotency key had made a job already (a replay): that job as it is
// now, marked Replayed. A key's job gone since the broker saw it is
// KeyGoneError.
func (s *Service) replayed(ctx context.Context, nj NewJob) (*Job, error) {
	j, err := s.broker.Get(ctx, nj.Idem.Existing)
	if core.ErrorCode(err) == core.CodeNotFound {
		return nil, KeyGoneError(nj.Idem.Key, nj.Idem.Existing)
	}
	if err != nil {
		return nil, s.backendErr("get", err)
	}
	j.Replayed = true
	return j, nil
}

// Submit is Enqueue behind admission control (POST /run, /assistant): a
// queue over its bounds refuses with a *Rejection and nothing is stored,
// and a job for a new queue beyond MaxQueues is refused as invalid.
func (s *Service) Submit(ctx context.Context, req EnqueueRequest, source string) (*Job, error) {
	nj, err := s.Prepare(req, source)
	if err != nil {
		return nil, err
	}
	reserved, err := s.admitQueue(ctx, nj.Queue)
	if err != nil {
		if core.ErrorCode(err) == core.CodeUnavailable && s.admission.Enabled() {
			// The queue list could not be read: refused as admission
			// refuses when it cannot read a queue, reason backend.
			return nil, s.admission.reject(nj.Queue, ReasonBackend, time.Second, err, "the job queue is unavailable: cannot check queue %s", nj.Queue)
		}
		return nil, err
	}
	if err := s.admission.Admit(ctx, nj.Queue); err != nil {
		if reserved {
			s.releaseQueue(nj.Queue)
		}
		return nil, err
	}
	j, err := s.storeOne(ctx, nj)
	// A job that may have been stored counts as stored: admission errs
	// towards the bound. A replay stored nothing.
	s.admission.Stored(nj.Queue, (err == nil && !j.Replayed) || len(MaybeStored(err)) > 0)
	return j, err
}

// storeOne is store for one job, without the slices.
func (s *Service) storeOne(ctx context.Context, nj NewJob) (*Job, error) {
	if err := s.broker.Enqueue(ctx, nj); err != nil {
		return nil, s.backendErr("enqueue", err)
	}
	s.answered("enqueue")
	if nj.existing() != "" {
		return s.replayed(ctx, nj)
	}
	s.obs.Enqueued(nj.Source)
	return nj.Job, nil
}

// backendErr wraps a broker failure as core.CodeUnavailable and counts it,
// passing coded errors (not found, conflict) through; a success (nil) goes
// to the AnswerObserver.
func (s *Service) backendErr(op string, err error) error {
	if err == nil {
		s.answered(op)
		return nil
	}
	if core.ErrorCode(err) != core.CodeInternal {
		return err
	}
	s.obs.BackendError(op, err)
	if ids := MaybeStored(err); len(ids) > 0 {
		what := "did not answer in time"
		if u := (*UncertainEnqueueError)(nil); errors.As(err, &u) && u.Failed {
			what = "failed part way through the enqueue"
		}
		return core.Wrap(core.CodeUnavailable, err, fmt.Sprintf(
			"the job queue %s; job %s may have been stored all the same: read it before enqueueing it again",
			what, strings.Join(ids, ", ")))
	}
	return core.Wrap(core.CodeUnavailable, err, "the job queue is unavailable")
}

// answered tells an AnswerObserver that a broker call for op succeeded.
func (s *Service) answered(op string) {
	if s.answers != nil {
		s.answers.BackendAnswered(op)
	}
}

// Get returns one job.
func (s *Service) Get(ctx context.Context, id string) (*Job, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	j, err := s.broker.Get(ctx, id)
	return j, s.backendErr("get", err)
}

// List returns jobs matching f.
func (s *Service) List(ctx context.Context, f Filter) ([]*Job, error) {
	if f.Status != "" && !f.Status.Valid() {
		return nil, core.Errorf(core.CodeInvalid, "unknown status %q (want one of %v)", f.Status, Statuses)
	}
	if f.Queue != "" {
		if err := CheckQueue(f.Queue); err != nil {
			return nil, err
		}
	}
	if f.Limit < 0 || f.Limit > MaxListLimit {
		return nil, core.Errorf(core.CodeInvalid, "limit must be between 1 and %d", MaxListLimit)
	}
	if f.Offset < 0 {
		return nil, core.Errorf(core.CodeInvalid, "offset must be 0 or more, got %d", f.Offset)
	}
	if limit := cmp.Or(f.Limit, DefaultListLimit); f.Offset > MaxListDepth-limit {
		return nil, core.Errorf(core.CodeInvalid, "offset plus limit must be at most %d, got offset %d and limit %d", MaxListDepth, f.Offset, limit)
	}
	if f.Offset > 0 && (f.Queue == "" || f.Status == "") {
		return nil, core.Errorf(core.CodeInvalid, "%s", PageNeedsQueueAndStatus)
	}
	jobs, err := s.broker.List(ctx, f)
	return jobs, s.backendErr("list", err)
}

// Stats returns the gauges and totals of every queue.
func (s *Service) Stats(ctx context.Context) ([]Stats, error) {
	names, err := s.broker.Queues(ctx)
	if err != nil {
		return nil, s.backendErr("stats", err)
	}
	out, err := s.broker.StatsMany(ctx, names)
	return out, s.backendErr("stats", err)
}

// maxIDLen bounds the id a lookup takes: refrakt's ids are 22 bytes, and a
// longer string is no job's (nor echoed whole in the answer).
const maxIDLen = 128

// checkID answers core.CodeNotFound, without a round trip and without
// repeating it, for an id no job can have.
func checkID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return core.Errorf(core.CodeNotFound, "job not found (an id is 1 to %d bytes, got %d)", maxIDLen, len(id))
	}
	return nil
}

// Cancel cancels a job that has not finished. A running job's worker learns
// it at its next heartbeat: its context is cancelled and its result dropped.
func (s *Service) Cancel(ctx context.Context, id string) (*Job, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	j, from, err := s.broker.Cancel(ctx, id)
	if err != nil {
		return nil, s.backendErr("cancel", err)
	}
	s.obs.Transition(string(from), string(StatusCancelled))
	if from == StatusRunning {
		s.stopRunning(id)
	}
	s.notify(id)
	return j, nil
}

// Requeue puts a dead or cancelled job back in line with fresh retries.
func (s *Service) Requeue(ctx context.Context, id string) (*Job, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	j, from, err := s.broker.Requeue(ctx, id)
	if err != nil {
		return nil, s.backendErr("requeue", err)
	}
	s.obs.Transition(string(from), string(StatusPending))
	return j, nil
}

// RequeueDead puts up to limit of queue name's dead jobs that died at or
// before the cut back in line, oldest death first (see
// Broker.RequeueDead; a zero before: those that died before the call),
// and counts each as a dead → pending transition. An unknown queue is
// core.CodeNotFound; a queue with no dead job moves none. When the broker
// fails part way, the result holds the jobs it moved before, counted too.
func (s *Service) RequeueDead(ctx context.Context, name string, before time.Time, limit int) (RequeueDeadResult, error) {
	if err := CheckQueue(name); err != nil {
		return RequeueDeadResult{}, err
	}
	if limit < 1 || limit > MaxRequeueDead {
		return RequeueDeadResult{}, core.Errorf(core.CodeInvalid, "limit must be a whole number between 1 and %d", MaxRequeueDead)
	}
	res, err := s.broker.RequeueDead(ctx, name, before, limit)
	for range res.IDs {
		s.obs.Transition(string(StatusDead), string(StatusPending))
	}
	return res, s.backendErr("requeue_dead", err)
}

// RemoveQueue deletes a queue that holds no job to run, with its finished
// jobs and totals (see Broker.RemoveQueue), and returns how many jobs went
// with it. Its name is free again: under QUEUE_MAX_QUEUES it no longer
// counts here, nor on other daemons once they next read the queue list.
func (s *Service) RemoveQueue(ctx context.Context, name string) (int, error) {
	if err := CheckQueue(name); err != nil {
		return 0, err
	}
	n, err := s.broker.RemoveQueue(ctx, name)
	if err != nil {
		return 0, s.backendErr("remove_queue", err)
	}
	s.forgetQueue(name)
	return n, nil
}

// PauseResult is what a pause or a resume did: the queue, whether it is
// paused now, and whether the call changed that.
type PauseResult struct {
	Queue   string `json:"queue"`
	Paused  bool   `json:"paused"`
	Changed bool   `json:"changed"`
}

// SetPaused pauses queue name (paused true) or resumes it (see
// Broker.SetPaused): its jobs wait pending, still enqueued, until resumed.
// An unknown queue is core.CodeNotFound; pausing a paused queue changes
// nothing and is no error.
func (s *Service) SetPaused(ctx context.Context, name string, paused bool) (PauseResult, error) {
	if err := CheckQueue(name); err != nil {
		return PauseResult{}, err
	}
	changed, err := s.broker.SetPaused(ctx, name, paused)
	if err != nil {
		op := "resume_queue"
		if paused {
			op = "pause_queue"
		}
		return PauseResult{}, s.backendErr(op, err)
	}
	return PauseResult{Queue: name, Paused: paused, Changed: changed}, nil
}

// Tick promotes due scheduled and failed jobs and recovers expired leases,
// and tells the observer of each job it made dead (no handler's failure
// does: their worker was lost).
func (s *Service) Tick(ctx context.Context) (TickResult, error) {
	r, err := s.broker.Tick(ctx)
	for _, t := range []struct {
		from, to Status
		n        int
	}{
		{StatusScheduled, StatusPending, r.Scheduled},
		{StatusFailed, StatusPending, r.Retried},
		{StatusRunning, StatusPending, r.Recovered},
		{StatusRunning, StatusDead, r.RecoveredDead},
	} {
		for range t.n {
			s.obs.Transition(string(t.from), string(t.to))
		}
	}
	for _, d := range r.Dead {
		s.obs.Dead(d, DeadLeaseExpired)
	}
	return r, s.backendErr("tick", err)
}

// Ping checks the backend.
func (s *Service) Ping(ctx context.Context) error { return s.broker.Ping(ctx) }

// validUnicode reports whether b, valid JSON, is UTF-8 text whose \u
// escapes name characters: no lone half of a UTF-16 surrogate pair.
func validUnicode(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	in := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			in = !in
		case c == '\\' && in:
			i++
			if b[i] != 'u' {
				continue
			}
			r := hex4(b[i+1 : i+5])
			i += 4
			switch {
			case r >= 0xDC00 && r <= 0xDFFF:
				return false // a low half alone
			case r >= 0xD800 && r <= 0xDBFF:
				// a high half must be followed by a low one
				if i+6 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' {
					return false
				}
				if lo := hex4(b[i+3 : i+7]); lo < 0xDC00 || lo > 0xDFFF {
					return false
				}
				i += 6
			}
		}
	}
	return true
}

// hex4 reads four hex digits (json.Valid has checked them).
func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}
