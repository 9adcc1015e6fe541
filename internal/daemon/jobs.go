package daemon

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/membroker"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
	"github.com/refrakt/refrakt/internal/jsondepth"
)

// jobs is the daemon's job queue: the service the handlers call and the
// worker pool that runs jobs in the background.
type jobs struct {
	svc  *queue.Service
	pool *queue.Pool
	// rejected is the observer's queue labels of the admission rejections,
	// which the metrics sampler frees as queues go (retain).
	rejected *queueLabels
}

// buildJobs builds the broker on the daemon's backend (memory by default,
// Redis when the daemon has a Redis client), the queue service with the
// settings of DESIGN §7, and registers the workers and the queue metrics
// sampler as components: started after the listener, stopped (workers
// first, gracefully) before the backend is closed.
func (s *Server) buildJobs() error {
	adm := queue.AdmissionConfig{MaxPending: s.cfg.QueueMaxPending, MaxAge: s.cfg.QueueMaxAge}
	var broker queue.Broker
	if s.backend.Redis != nil {
		rb := redisbroker.New(s.backend.Redis, redisbroker.Options{Prefix: s.backend.Prefix, HistoryLimit: s.cfg.JobHistory})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := rb.Load(ctx); err != nil {
			// Not fatal: scripts are loaded again on first use (NOSCRIPT fallback).
			s.log.Warn("cannot preload the queue scripts", "err", err)
		}
		cancel()
		broker = rb
		// The CLI over Redis trims history to the limit the daemons publish
		// and retries the jobs it runs by their backoff, and `top --redis`
		// marks the queues they refuse by the bounds they publish
		// (redisbroker.PublishSettings), as written with the limits.
		failed := &core.LogThrottle{Logger: s.log, Msg: "cannot publish the job queue's settings (JOB_HISTORY, admission bounds, retry backoff, JOB_TIMEOUT) to Redis; retrying", Every: backendLogEvery,
			Recovered: "published the job queue's settings to Redis again"}
		s.addTicker("queue-settings-publish", limitsPublishEvery, func(ctx context.Context) {
			publish(ctx, failed, func(c context.Context) error {
				return rb.PublishSettings(c, adm, RetryBackoff(s.cfg), s.cfg.JobTimeout, limitsPublishTTL)
			})
		})
	} else {
		broker = membroker.New(membroker.Options{Clock: s.clock, HistoryLimit: s.cfg.JobHistory})
	}
	obs := jobsObserver{m: s.metrics, log: s.log, errs: &core.LogThrottle{Logger: s.log, Msg: "job queue backend failing", Every: backendLogEvery,
		Recovered: "job queue backend answers again"},
		wholeOnly: s.backend.Kind == BackendRedisCluster,
		deadLog:   newDeadLogs(s.clock.Now), rejected: newQueueLabels(),
		timeoutLog: newDeadLogs(s.clock.Now)}
	reg, hooks, err := JobRegistry(s.cfg)
	if err != nil {
		return err
	}
	svc := queue.NewService(queue.Deps{Broker: broker, Clock: s.clock, Observer: obs, Registry: reg}, queue.Config{
		Concurrency:     s.cfg.WorkerConcurrency,
		TickInterval:    s.cfg.TickInterval,
		Lease:           s.cfg.JobLease,
		Backoff:         RetryBackoff(s.cfg),
		JobTimeout:      s.cfg.JobTimeout,
		ShutdownTimeout: s.cfg.ShutdownTimeout,
		MaxQueues:       s.cfg.QueueMaxQueues,
		Admission:       adm,
		IdempotencyTTL:  s.cfg.JobIdempotencyTTL,
		WorkerQueues:    s.cfg.WorkerQueues,
		StrictOrder:     s.cfg.WorkerQueueOrder == queue.OrderStrict,
	})
	obs.startAtZero(svc.Admission().Reasons())
	s.jobs = &jobs{svc: svc, pool: queue.NewPool(svc), rejected: obs.rejected}
	s.addQueueSampler()
	s.addComponent("workers",
		func(context.Context) error {
			s.jobs.pool.Start()
			if s.cfg.WorkerConcurrency == queue.ManualMode {
				s.log.Info("job workers off (manual mode): only run-next, run ID and tick move jobs")
				if len(s.cfg.WorkerQueues) > 0 {
					s.log.Warn("WORKER_QUEUES has no effect in manual mode: there are no workers to give queues to (run-next and run ID take from every queue)",
						"setting", s.cfg.SettingName("WORKER_QUEUES"), "worker_queues", queue.FormatWorkerQueues(s.cfg.WorkerQueues))
				}
			}
			return nil
		},
		func(ctx context.Context) error {
			err := s.jobs.pool.Shutdown(ctx)
			hooks.CloseIdleConnections()
			if s.backend.Kind == BackendMemory {
				s.logJobsEndingHere() // handed back or not, they end with the daemon
			} else {
				s.logHandBack(s.jobs.pool.Report())
			}
			return err
		})
	return nil
}

// logHandBack says what the workers' stop did with the jobs it did not let
// finish: a stop whose deadline cut handlers short logged only "context
// deadline exceeded". At WARN when a handler was cut short or a job could
// not be handed back (it runs again after its lease, as an attempt), with
// the first ids; at INFO when only jobs held ready went back.
func (s *Server) logHandBack(r queue.ShutdownReport) {
	if r.HandedBack+r.NotHandedBack == 0 {
		return
	}
	const shown = 20
	ids := r.Interrupted[:min(len(r.Interrupted), shown)]
	args := []any{"handed_back", r.HandedBack, "not_handed_back", r.NotHandedBack,
		"interrupted", len(r.Interrupted), "interrupted_ids", strings.Join(ids, ",")}
	if len(r.Interrupted) > shown {
		args = append(args, "interrupted_ids_left_out", len(r.Interrupted)-shown)
	}
	switch {
	case len(r.Interrupted) > 0:
		s.log.Warn("workers stopped at SHUTDOWN_TIMEOUT: running jobs cut short; those handed back run again without an attempt counted, the others when their leases expire", args...)
	case r.NotHandedBack > 0:
		s.log.Warn("workers stopped: jobs held ready could not all be handed back; those not handed back run again when their leases expire, as an attempt", args[:4]...)
	default:
		s.log.Info("workers stopped: jobs held ready handed back to their queues, not counted as attempts", args[:4]...)
	}
}

// logJobsEndingHere says, at the stop of a daemon on the memory backend,
// how many unfinished jobs end with it (nothing outlives it there): a stop
// that dropped accepted work said nothing of it. Called once the workers
// are stopped and HTTP has drained, so that no job comes after the count;
// the jobs still running at the deadline were handed back (pending).
func (s *Server) logJobsEndingHere() {
	stats, err := s.jobs.svc.Stats(context.Background())
	if err != nil {
		return
	}
	var pending, running, scheduled, retry int64
	for _, st := range stats {
		pending += st.Pending
		running += st.Running
		scheduled += st.Scheduled
		retry += st.Retry
	}
	if pending+running+scheduled+retry == 0 {
		return
	}
	s.log.Warn("unfinished jobs end with the daemon (memory backend)", "pending", pending, "running", running, "scheduled", scheduled, "retry", retry)
}

// handleRun enqueues a job behind admission control: 202 with the job.
func (s *Server) handleRun() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req queue.EnqueueRequest
		if err := decodeEnqueue(w, r, &req, &req); err != nil {
			writeError(w, r, s.log, err)
			return
		}
		if err := s.publicJob(w, r, req); err != nil {
			writeError(w, r, s.log, err)
			return
		}
		if err := s.scopeKey(w, r, &req); err != nil {
			writeError(w, r, s.log, err)
			return
		}
		j, err := s.jobs.svc.Submit(r.Context(), req, queue.SourceAPI)
		if err != nil {
			s.writeJobError(w, r, publicRefusal(err))
			return
		}
		writeJSON(w, markReplayed(w, j), j)
	})
}

// decodeEnqueue decodes the body of an enqueue into v, whose job request
// is req: as decodeJSON, and a "queue" given as "" is refused (400), as the
// CLI refuses an empty --queue: an empty name names no queue, and only a queue
// left out (or null) means the default one. req.Queue is set before
// decoding, so that it is "" after only when the body said so.
func decodeEnqueue(w http.ResponseWriter, r *http.Request, v any, req *queue.EnqueueRequest) error {
	data, err := readBody(w, r)
	if err != nil {
		return jsonError(err)
	}
	if err := decodeEnqueueJob(data, v, req); err != nil {
		return err
	}
	return idempotencyKey(r, req)
}

// decodeEnqueueJob decodes a job's JSON into v, whose job request is req:
// the body of a single enqueue (decodeEnqueue), or one job of a batch (POST
// /api/dev/jobs/enqueue-batch), where each job gives its own
// idempotency_key and no header applies.
func decodeEnqueueJob(data []byte, v any, req *queue.EnqueueRequest) error {
	req.Queue = queue.DefaultQueue
	if err := decodeJSONData(data, v); err != nil {
		return err
	}
	return checkQueueGiven(req)
}

// checkQueueGiven refuses a queue given as "".
func checkQueueGiven(req *queue.EnqueueRequest) error {
	if req.Queue == "" {
		return core.Errorf(core.CodeInvalid, `queue "" names no queue: give a queue name (%s), or leave "queue" out for the default queue`, queue.NameRule)
	}
	return nil
}

// handleGetRun answers one job; ids are random 128-bit values, so knowing
// one is the permission to read it.
func (s *Server) handleGetRun() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j, err := s.jobs.svc.Get(r.Context(), r.PathValue("id"))
		if err != nil {
			s.writeJobError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, j)
	})
}

// assistantRequest is POST /assistant: a job and how long to wait for it.
type assistantRequest struct {
	queue.EnqueueRequest
	TimeoutMS *int64 `json:"timeout_ms,omitempty"`
}

// Bounds of timeout_ms: the server's write timeout leaves room for 60s.
const (
	defaultAssistantTimeout = 10 * time.Second
	maxAssistantTimeout     = 60 * time.Second
)

// handleAssistant enqueues a job and waits for it: 200 with the job and its
// result, 422 when it failed (dead) or was cancelled, 504 with its id when
// the wait ran out (the job goes on, queued or running, and can be read at
// /run/{id}).
func (s *Server) handleAssistant() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req assistantRequest
		if err := decodeEnqueue(w, r, &req, &req.EnqueueRequest); err != nil {
			writeError(w, r, s.log, err)
			return
		}
		timeout := defaultAssistantTimeout
		if req.TimeoutMS != nil {
			// Bounded before it becomes a Duration, which a huge number
			// would overflow.
			if *req.TimeoutMS < 1 || *req.TimeoutMS > maxAssistantTimeout.Milliseconds() {
				writeError(w, r, s.log, core.Errorf(core.CodeInvalid, "timeout_ms must be between 1 and %d", maxAssistantTimeout.Milliseconds()))
				return
			}
			timeout = time.Duration(*req.TimeoutMS) * time.Millisecond
		}
		if err := s.publicJob(w, r, req.EnqueueRequest); err != nil {
			writeError(w, r, s.log, err)
			return
		}
		if err := s.scopeKey(w, r, &req.EnqueueRequest); err != nil {
			writeError(w, r, s.log, err)
			return
		}
		j, err := s.jobs.svc.Submit(r.Context(), req.EnqueueRequest, queue.SourceAPI)
		if err != nil {
			s.writeJobError(w, r, publicRefusal(err))
			return
		}
		// A replay waits for the key's job as the first request did.
		markReplayed(w, j)
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		defer context.AfterFunc(s.draining, cancel)()
		done, err := s.waitOrRun(ctx, j.ID)
		// What the job was doing when the wait ended: it goes on.
		status := queue.StatusPending
		if done != nil {
			status = done.Status
		}
		switch {
		case err != nil && s.draining.Err() != nil && r.Context().Err() == nil:
			msg := core.Errorf(core.CodeUnavailable, "the daemon is shutting down before job %s finished; it goes on (%s): GET /run/%s", j.ID, status, j.ID)
			if s.backend.Kind == BackendMemory {
				// Nothing outlives this daemon there: say so, not "it goes on".
				msg = core.Errorf(core.CodeUnavailable, "the daemon is shutting down before job %s finished (%s); on the memory backend its jobs end with it", j.ID, status)
			}
			writeErrorDetails(w, r, s.log, msg, map[string]any{"job_id": j.ID, "status": status})
		case errors.Is(err, context.DeadlineExceeded):
			writeErrorDetails(w, r, s.log, core.Errorf(core.CodeTimeout, "job %s did not finish within %dms; it goes on (%s): GET /run/%s", j.ID, timeout.Milliseconds(), status, j.ID),
				map[string]any{"job_id": j.ID, "status": status})
		case err != nil:
			s.writeJobError(w, r, err)
		case done.Status == queue.StatusDead || done.Status == queue.StatusCancelled:
			msg := done.LastError
			if done.Status == queue.StatusCancelled {
				msg = "the job was cancelled"
			}
			writeErrorDetails(w, r, s.log, core.Errorf(core.CodeFailed, "job %s %s: %s", j.ID, done.Status, msg),
				map[string]any{"job_id": j.ID, "status": done.Status, "attempts": done.Attempts, "last_error": done.LastError})
		default:
			writeJSON(w, http.StatusOK, done)
		}
	})
}

// waitOrRun waits for job id to finish, as a request waiting for its job
// does. Once the daemon stops taking jobs (a stop), a job of the request
// that no worker has taken yet (pending) is run here, in the request, as
// `run ID` runs one: the request is served as HTTP drains, and no other job
// starts on this daemon. In manual mode (no workers) the job waits for
// whoever runs jobs, as before the stop.
func (s *Server) waitOrRun(ctx context.Context, id string) (*queue.Job, error) {
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(s.jobs.pool.Fetching(), stop)() // never, in manual mode
	done, err := s.jobs.svc.Wait(wctx, id)
	if err == nil || ctx.Err() != nil {
		return done, err
	}
	if done != nil && done.Status == queue.StatusPending {
		rctx, end := s.runContext(ctx)
		_, rerr := s.jobs.svc.RunID(rctx, id)
		end()
		if rerr != nil && core.ErrorCode(rerr) != core.CodeConflict {
			return done, rerr
		}
		// Run here, or taken elsewhere meanwhile (a conflict): its result
		// as any waiter reads it (a failure with retries left waits on).
	}
	return s.jobs.svc.Wait(ctx, id)
}

// writeJobError answers a queue error; an admission refusal or a backend
// failure is a 503 with Retry-After.
func (s *Server) writeJobError(w http.ResponseWriter, r *http.Request, err error) {
	var rej *queue.Rejection
	if errors.As(err, &rej) {
		writeRejection(w, r, s.log, rej)
		return
	}
	if core.ErrorCode(err) == core.CodeUnavailable {
		// The enqueue may have stored its jobs: its answer was lost
		// after Redis may have run it, or its script failed part way
		// (its writes before the error kept). The client is told which
		// jobs to read before sending them again. Any other 503 of an
		// enqueue stored nothing. maybe_stored stays true here (earlier
		// clients read it); the batch route's is a list of jobs.
		if ids := queue.MaybeStored(err); len(ids) > 0 {
			writeErrorDetails(w, r, s.log, err, map[string]any{"job_id": ids[0], "job_ids": ids, "maybe_stored": true})
			return
		}
	}
	writeErrorDetails(w, r, s.log, err, idempotencyDetails(err))
}

// Bounds of a job from the public routes (POST /run, /assistant), tighter
// than the developer enqueue's: anyone may send them.
const (
	// publicMaxPayload bounds a public job's payload. Kept until its job
	// leaves the history (JOB_HISTORY per queue, with echo's result a second
	// copy), 1 MiB payloads from a few dozen addresses within their rate
	// limits grew a memory-backend daemon by 385 MB in 200 requests.
	publicMaxPayload = 64 << 10
	// publicMaxSleep bounds a public sleep job: at an hour, four requests
	// held every worker of a default daemon for an hour. At 10 s one client
	// within its default rate limits (30 /run and 20 /assistant a minute;
	// an /assistant whose wait ends still leaves its job queued) asked for
	// 500 worker-seconds a minute of a default daemon's 240 (4 workers), and
	// everyone else's jobs waited longer every minute (sec31 MEDIUM 1). At
	// 1 s it is 50 worker-seconds a minute, about a fifth.
	publicMaxSleep = time.Second
	// publicMaxDelay bounds a public job's delay_ms. A scheduled job is not
	// pending, so admission control does not count it until it comes due:
	// delayed a year, public jobs piled up out of every bound's reach.
	publicMaxDelay = time.Hour
	// publicMaxDepth bounds how deep a public job's payload nests arrays
	// and objects. The JSON decoder alone allows about 10,000 levels, and a
	// 60 KB payload nested 9,990 deep made `refrakt jobs get -o json`, which
	// indents two spaces a level, write 1.2 GB.
	publicMaxDepth = 64
	// publicMaxRetries bounds a public job's max_retries: waiting for its
	// retries, a failed job is not pending either, and at the general
	// bound (100, backoff to an hour) a public fail job stayed three days,
	// about 139,000 of them for one address at the default run limit. Ten
	// retries end within about two minutes of backoff (0.1 s doubling).
	publicMaxRetries = 10
)

// publicJob checks the public routes' bounds on a job; Prepare checks the
// rest as for any job. A recurring job (interval_seconds or cron) needs the
// developer token: it is work without end, and six anonymous requests held
// every worker of a default daemon for good. The token is checked only for
// such a job, so that other public jobs cost no hash.
func (s *Server) publicJob(w http.ResponseWriter, r *http.Request, req queue.EnqueueRequest) error {
	if len(req.Payload) > publicMaxPayload {
		return core.Errorf(core.CodeTooLarge, "payload is %d bytes; a public job's is at most %d (the developer enqueue, POST /api/dev/jobs/enqueue, takes up to the 1 MiB body)", len(req.Payload), publicMaxPayload)
	}
	if jsondepth.DeeperThan(req.Payload, publicMaxDepth) {
		return core.Errorf(core.CodeInvalid, "payload nests arrays and objects more than %d levels deep; a public job's nests at most %d (the developer enqueue, POST /api/dev/jobs/enqueue, takes deeper ones)", publicMaxDepth, publicMaxDepth)
	}
	if req.IntervalSeconds > 0 && s.roleOf(w, r) != RoleDeveloper {
		return core.Errorf(core.CodeForbidden, "interval_seconds makes a recurring job, which runs again without end: on %s it needs the developer token (Authorization: Bearer); or enqueue it as a developer (POST /api/dev/jobs/enqueue, refrakt jobs enqueue --interval)", r.URL.Path)
	}
	if req.Cron != "" && s.roleOf(w, r) != RoleDeveloper {
		return core.Errorf(core.CodeForbidden, "cron makes a recurring job, which runs again without end: on %s it needs the developer token (Authorization: Bearer); or enqueue it as a developer (POST /api/dev/jobs/enqueue, refrakt jobs enqueue --cron)", r.URL.Path)
	}
	if req.DelayMS > publicMaxDelay.Milliseconds() {
		return core.Errorf(core.CodeInvalid, "delay_ms is %d; a public job's is at most %d, an hour (the developer enqueue, POST /api/dev/jobs/enqueue, allows up to %d)",
			req.DelayMS, publicMaxDelay.Milliseconds(), queue.MaxDelay.Milliseconds())
	}
	if req.MaxRetries != nil && *req.MaxRetries > publicMaxRetries {
		return core.Errorf(core.CodeInvalid, "max_retries is %d; a public job's is at most %d (the developer enqueue, POST /api/dev/jobs/enqueue, allows up to %d)",
			*req.MaxRetries, publicMaxRetries, queue.MaxRetriesLimit)
	}
	// A public job may shorten its bound, not raise it past the
	// operator's: a handler that hangs would hold a worker longer.
	if req.TimeoutMS > s.cfg.JobTimeout.Milliseconds() {
		return core.Errorf(core.CodeInvalid, "timeout_ms is %d; a public job's is at most JOB_TIMEOUT, %d (the developer enqueue, POST /api/dev/jobs/enqueue, allows up to %d)",
			req.TimeoutMS, s.cfg.JobTimeout.Milliseconds(), queue.MaxJobTimeout.Milliseconds())
	}
	if req.Type == "sleep" {
		// A payload the handler refuses is Prepare's to answer.
		if d, err := queue.SleepDuration(req.Payload); err == nil && d > publicMaxSleep {
			return core.Errorf(core.CodeInvalid, "payload.ms is %d; a public sleep job sleeps at most %d ms, so that one client within its rate limits holds a share of the workers, not all of them (the developer enqueue, POST /api/dev/jobs/enqueue, allows up to %d)",
				d.Milliseconds(), publicMaxSleep.Milliseconds(), queue.MaxSleep.Milliseconds())
		}
	}
	return nil
}

// RetryBackoff is the retry backoff of cfg (JOB_RETRY_BASE, JOB_RETRY_MAX),
// with DefaultBackoff's jitter, which is no setting. The CLI over Redis,
// which runs jobs itself, retries with it too.
func RetryBackoff(cfg config.Config) queue.Backoff {
	return queue.Backoff{Base: cfg.JobRetryBase, Cap: cfg.JobRetryMax, Jitter: queue.DefaultBackoff.Jitter}
}
