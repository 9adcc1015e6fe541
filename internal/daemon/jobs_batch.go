package daemon

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
)

// enqueueBatchRequest is the body of POST /api/dev/jobs/enqueue-batch: each
// job is the body of a single enqueue, decoded as that is (decodeEnqueueJob).
type enqueueBatchRequest struct {
	Jobs []json.RawMessage `json:"jobs"`
}

// EnqueuedBatch is the answer of POST /api/dev/jobs/enqueue-batch: the
// jobs, in the order of the request.
type EnqueuedBatch struct {
	Jobs []BatchJob `json:"jobs"`
}

// BatchJob is one job of an EnqueuedBatch: the job as the single enqueue
// answers it, and replayed, which that route says with its status and the
// Idempotent-Replayed header, for a job whose idempotency key had made it
// already (nothing stored for it).
type BatchJob struct {
	*queue.Job
	Replayed bool `json:"replayed,omitempty"`
}

// handleEnqueueBatch enqueues 1 to queue.MaxBatch jobs in one request, as
// the single developer enqueue does each (no admission control; a job may
// make a queue): all or none on validation, the first invalid job named as
// jobs[i]. 202 with the jobs when it stored one, 200 when each was a
// replay. A failure to store says which jobs are stored, which are not and
// which may be, in its details (queue.BatchError).
func (s *Server) handleEnqueueBatch() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		source, err := enqueueSource(r)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		if _, ok := r.Header[hdrIdempotencyKey]; ok {
			writeError(w, r, s.log, core.Errorf(core.CodeInvalid, "the %s header names one job's key: in a batch, give each job its own idempotency_key", hdrIdempotencyKey))
			return
		}
		reqs, err := decodeBatch(w, r)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		jobs, err := s.jobs.svc.EnqueueBatch(r.Context(), reqs, source)
		if err != nil {
			s.writeBatchError(w, r, err)
			return
		}
		out := EnqueuedBatch{Jobs: make([]BatchJob, len(jobs))}
		status := http.StatusOK
		for i, j := range jobs {
			out.Jobs[i] = BatchJob{Job: j, Replayed: j.Replayed}
			if !j.Replayed {
				status = http.StatusAccepted
			}
		}
		writeJSON(w, status, out)
	})
}

// decodeBatch decodes the body of an enqueue-batch: strictly, as every
// body, and each job as the single enqueue's body, its errors prefixed with
// jobs[i].
func decodeBatch(w http.ResponseWriter, r *http.Request) ([]queue.EnqueueRequest, error) {
	var body enqueueBatchRequest
	if err := decodeJSON(w, r, &body); err != nil {
		return nil, err
	}
	return DecodeBatchJobs(body.Jobs)
}

// DecodeBatchJobs decodes the jobs of a batch, 1 to queue.MaxBatch job
// objects, each as the single enqueue's body (its errors prefixed with
// jobs[i]): the route's decoding, which the CLI's Redis driver shares.
func DecodeBatchJobs(jobs []json.RawMessage) ([]queue.EnqueueRequest, error) {
	if len(jobs) == 0 || len(jobs) > queue.MaxBatch {
		return nil, core.Errorf(core.CodeInvalid, `"jobs" holds %d jobs: a batch holds 1 to %d`, len(jobs), queue.MaxBatch)
	}
	reqs := make([]queue.EnqueueRequest, len(jobs))
	for i, raw := range jobs {
		if err := decodeEnqueueJob(raw, &reqs[i], &reqs[i]); err != nil {
			msg := strings.Replace(core.ErrorMessage(err), "request body", "the job", 1)
			return nil, queue.AtIndex(i, core.Wrap(core.ErrorCode(err), err, msg))
		}
	}
	return reqs, nil
}

// writeBatchError answers a failed batch: a failure to store carries, in
// its details, the jobs stored, not stored and maybe stored ({index, id}
// each), beside the single enqueue's details (an idempotency refusal's).
func (s *Server) writeBatchError(w http.ResponseWriter, r *http.Request, err error) {
	var be *queue.BatchError
	if !errors.As(err, &be) {
		s.writeJobError(w, r, err)
		return
	}
	details := idempotencyDetails(err)
	if details == nil {
		details = map[string]any{}
	}
	orEmpty := func(js []queue.BatchRef) []queue.BatchRef {
		if js == nil {
			return []queue.BatchRef{}
		}
		return js
	}
	details["stored"] = orEmpty(be.Stored)
	details["not_stored"] = orEmpty(be.NotStored)
	details["maybe_stored"] = orEmpty(be.MaybeStored)
	writeErrorDetails(w, r, s.log, err, details)
}
