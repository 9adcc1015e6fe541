package daemon

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
)

// jobList is the answer of GET /api/dev/jobs.
type jobList struct {
	Jobs []*queue.Job `json:"jobs"`
}

// handleListJobs lists jobs; filters ?queue=Q&status=S&limit=N, and
// ?offset=N skips the first N of that listing (a next page).
func (s *Server) handleListJobs() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := routeQuery(r, "queue", "status", "limit", "offset")
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		f := queue.Filter{Queue: q.Get("queue"), Status: queue.Status(q.Get("status"))}
		if l := q.Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n < 1 {
				writeError(w, r, s.log, core.Errorf(core.CodeInvalid, "limit must be a whole number between 1 and %d", queue.MaxListLimit))
				return
			}
			f.Limit = n
		}
		if o := q.Get("offset"); o != "" {
			// Parsed here, bounded by the service (offset+limit, with the
			// limit in force, at most queue.MaxListDepth).
			n, err := strconv.Atoi(o)
			if err != nil || n < 0 {
				writeError(w, r, s.log, core.Errorf(core.CodeInvalid, "offset must be a whole number, 0 or more"))
				return
			}
			f.Offset = n
		}
		jobs, err := s.jobs.svc.List(r.Context(), f)
		if err != nil {
			s.writeJobError(w, r, err)
			return
		}
		if jobs == nil {
			jobs = []*queue.Job{}
		}
		writeJSON(w, http.StatusOK, jobList{Jobs: jobs})
	})
}

// handleEnqueueJob enqueues without admission control (a developer's
// action): 202 with the job. ?source=cli marks jobs the CLI enqueued.
func (s *Server) handleEnqueueJob() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		source, err := enqueueSource(r)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		var req queue.EnqueueRequest
		if err := decodeEnqueue(w, r, &req, &req); err != nil {
			writeError(w, r, s.log, err)
			return
		}
		j, err := s.jobs.svc.Enqueue(r.Context(), req, source)
		if err != nil {
			s.writeJobError(w, r, err)
			return
		}
		writeJSON(w, markReplayed(w, j), j)
	})
}

// enqueueSource is the source of the developer enqueues' jobs: ?source=cli
// marks jobs the CLI enqueued, api (or none) the others.
func enqueueSource(r *http.Request) (string, error) {
	q, err := routeQuery(r, "source")
	if err != nil {
		return "", err
	}
	switch src := q.Get("source"); src {
	case "", queue.SourceAPI:
		return queue.SourceAPI, nil
	case queue.SourceCLI:
		return src, nil
	}
	return "", core.Errorf(core.CodeInvalid, "source must be api or cli")
}

// handleRunNext runs the oldest pending job (of ?queue=Q) in the request
// and answers it finished; 404 when nothing is pending.
func (s *Server) handleRunNext() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := routeQuery(r, "queue")
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		ctx, done := s.runContext(r.Context())
		defer done()
		j, err := s.jobs.svc.RunNext(ctx, q.Get("queue"))
		if err != nil {
			s.writeJobError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, j)
	})
}

// handleRunJob runs one pending, scheduled or failed job now, in the
// request; 409 for a job in any other state.
func (s *Server) handleRunJob() http.Handler {
	return s.jobAction(func(ctx context.Context, id string) (*queue.Job, error) {
		ctx, done := s.runContext(ctx)
		defer done()
		return s.jobs.svc.RunID(ctx, id)
	})
}

// runContext is the context of a job run in a request (run ID, run-next).
// The client's leaving (a closed connection, a proxy's timeout) does not
// end it: the run goes on and its outcome is recorded, as a worker's is.
// The daemon's shutdown does, when the requests waiting for jobs must
// answer (Drain): the job is handed back to pending, uncounted, and the
// client told so with a 503.
func (s *Server) runContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	stop := context.AfterFunc(s.draining, cancel)
	return ctx, func() { stop(); cancel() }
}

// handleCancelJob cancels a job that has not finished (409 otherwise).
func (s *Server) handleCancelJob() http.Handler {
	return s.jobAction(s.jobs.svc.Cancel)
}

// handleRequeueJob puts a dead or cancelled job back in line (409 otherwise).
func (s *Server) handleRequeueJob() http.Handler {
	return s.jobAction(s.jobs.svc.Requeue)
}

// handleTick promotes due jobs and recovers expired leases now.
func (s *Server) handleTick() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, err := s.jobs.svc.Tick(r.Context())
		if err != nil {
			s.writeJobError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
}

// removedQueue is the answer of DELETE /api/dev/queues?queue=Q.
type removedQueue struct {
	Queue       string `json:"queue"`
	RemovedJobs int    `json:"removed_jobs"`
}

// handleRemoveQueue deletes the queue ?queue= names if it holds no job to
// run, with its finished jobs: 409 while it holds one, 404 for an unknown
// queue, 400 for a missing or bad name (the service's check). The name is a
// query parameter, as in run-next and the job list: in a path, a queue
// named "." or ".." would be cleaned away.
func (s *Server) handleRemoveQueue() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		params, err := routeQuery(r, "queue")
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		q, err := requiredQueue(params, "DELETE /api/dev/queues?queue=Q names the queue to remove")
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		n, err := s.jobs.svc.RemoveQueue(r.Context(), q)
		if err != nil {
			s.writeJobError(w, r, err)
			return
		}
		s.log.Info("queue removed", "queue", q, "removed_jobs", n)
		writeJSON(w, http.StatusOK, removedQueue{Queue: q, RemovedJobs: n})
	})
}

// requiredQueue is the ?queue= of a route that needs one. Left out or
// empty, the error says what is missing (usage: what the route does with
// it) rather than that the name "" is not one.
func requiredQueue(params query, usage string) (string, error) {
	q := params.Get("queue")
	if q == "" {
		return "", core.Errorf(core.CodeInvalid, "the query parameter queue is required: %s (%s)", usage, queue.NameRule)
	}
	return q, nil
}

// DefaultRequeueDeadLimit is how many dead jobs one
// POST /api/dev/queues/requeue-dead moves when it names no limit.
const DefaultRequeueDeadLimit = 1000

// RequeuedDead is the answer of POST /api/dev/queues/requeue-dead: the
// jobs moved dead → pending, in the order they died, how many that died at
// or before the cut are still dead, and the cut (unix ms), to pass back as
// ?before= to go on with the same operation.
type RequeuedDead struct {
	Queue     string   `json:"queue"`
	Requeued  int      `json:"requeued"`
	IDs       []string `json:"ids"`
	Remaining int      `json:"remaining"`
	Before    int64    `json:"before"`
}

// handleRequeueDead moves the dead jobs of ?queue=Q that died at or before
// ?before= (unix ms; default: those that died before the request) back in
// line, oldest death first, up to ?limit= (1 to queue.MaxRequeueDead,
// default DefaultRequeueDeadLimit): 404 for an unknown queue, 200 with
// nothing moved for a queue without dead jobs. When the backend fails
// after some moved, the error's details name them (requeued, ids, before).
func (s *Server) handleRequeueDead() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		params, err := routeQuery(r, "queue", "limit", "before")
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		q, err := requiredQueue(params, "POST /api/dev/queues/requeue-dead?queue=Q names the queue whose dead jobs to requeue")
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		limit := DefaultRequeueDeadLimit
		if l, ok := params.Lookup("limit"); ok {
			// Not a number: 0, which the service refuses as it refuses
			// any limit out of its bounds, in one message.
			limit, _ = strconv.Atoi(l)
		}
		var before time.Time
		if b, ok := params.Lookup("before"); ok {
			ms, err := strconv.ParseUint(b, 10, 63) // digits only: no sign
			if err != nil {
				writeError(w, r, s.log, core.Errorf(core.CodeInvalid, "before must be a time in unix milliseconds, a whole number 0 or more (the before of an earlier answer)"))
				return
			}
			before = time.UnixMilli(int64(ms))
		}
		res, err := s.jobs.svc.RequeueDead(r.Context(), q, before, limit)
		if len(res.IDs) > 0 {
			s.log.Info("dead jobs requeued", "queue", q, "requeued", len(res.IDs), "remaining", res.Remaining)
		}
		if err != nil && len(res.IDs) > 0 {
			// Failed part way: what moved stays moved, and the caller is
			// told which, with the cut to go on with.
			writeErrorDetails(w, r, s.log, err, map[string]any{"requeued": len(res.IDs), "ids": res.IDs, "before": res.Cut.UnixMilli()})
			return
		}
		if err != nil {
			s.writeJobError(w, r, err)
			return
		}
		ids := res.IDs
		if ids == nil {
			ids = []string{}
		}
		writeJSON(w, http.StatusOK, RequeuedDead{Queue: q, Requeued: len(ids), IDs: ids, Remaining: res.Remaining, Before: res.Cut.UnixMilli()})
	})
}

// handleSetPaused pauses (paused) or resumes the queue ?queue= names:
// 200 with queue.PauseResult (changed false when it already was so), 404
// for an unknown queue, 400 for a missing or bad name. Each one done is
// logged, with the route that did it.
func (s *Server) handleSetPaused(paused bool) http.Handler {
	verb, usage := "resumed", "POST /api/dev/queues/resume?queue=Q names the queue to resume"
	if paused {
		verb, usage = "paused", "POST /api/dev/queues/pause?queue=Q names the queue to pause"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		params, err := routeQuery(r, "queue")
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		q, err := requiredQueue(params, usage)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		res, err := s.jobs.svc.SetPaused(r.Context(), q, paused)
		if err != nil {
			s.writeJobError(w, r, err)
			return
		}
		s.log.Info("queue "+verb, "queue", q, "changed", res.Changed, "route", routeName(r))
		writeJSON(w, http.StatusOK, res)
	})
}

// jobAction answers the job that act returns for the {id} of the path.
func (s *Server) jobAction(act func(context.Context, string) (*queue.Job, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j, err := act(r.Context(), r.PathValue("id"))
		if err != nil {
			s.writeJobError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, j)
	})
}
