package queue

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/refrakt/refrakt/internal/core"
)

// MaxBatch bounds the jobs of one EnqueueBatch from a client (POST
// /api/dev/jobs/enqueue-batch, refrakt jobs enqueue-batch). The 1 MiB body
// bounds a batch first for all but the smallest jobs (a job object of about
// a kilobyte fills it at 1,000); the count bound keeps a batch of tiny jobs
// ({"type":"ping"}, 16 bytes with its comma: 65,000 in a mebibyte) from holding one queue's
// script, and every enqueue behind it, for long. Measured (SLOWLOG, once, on
// a shared 2-core box): one queue's script of 1,000 keyed jobs held Redis
// for 10.7 ms with empty payloads and 15 ms with 1 KiB payloads. The
// Redis broker's grouping of a batch by queue (sendEnqueues, and its
// wake-up and new-queue lists) is O(jobs × queues): some 1M string
// compares for 1,000 jobs in 1,000 queues, acceptable at this bound.
const MaxBatch = 1000

// BatchRef is one job of a batch in a BatchError: its place in the
// request and its id (for a replay, the id of the key's job).
type BatchRef struct {
	Index int    `json:"index"`
	ID    string `json:"id"`
}

// BatchError is EnqueueBatch's failure to store a valid batch. Enqueue is
// atomic per queue, not as a whole, so it names which jobs are stored,
// which are not and which may be (the backend's answer lost); Err is the
// failure, whose code and message the caller sees.
type BatchError struct {
	Stored, NotStored, MaybeStored []BatchRef
	Err                            error
}

func (e *BatchError) Error() string { return e.Err.Error() }

// Unwrap returns the failure.
func (e *BatchError) Unwrap() error { return e.Err }

// EnqueueBatch validates every request, then stores them all in one broker
// call (one round trip per queue). Nothing is stored if any is invalid: the
// error names the first invalid one as jobs[i]. A failure to store is a
// *BatchError. A queue is not checked against MaxQueues: this is the
// developer's enqueue, which may make queues, as Enqueue.
func (s *Service) EnqueueBatch(ctx context.Context, reqs []EnqueueRequest, source string) ([]*Job, error) {
	jobs := make([]NewJob, len(reqs))
	for i, r := range reqs {
		nj, err := s.Prepare(r, source)
		if err != nil {
			return nil, AtIndex(i, err)
		}
		jobs[i] = nj
	}
	if err := checkBatchKeys(jobs); err != nil {
		return nil, err
	}
	return s.store(ctx, jobs)
}

// AtIndex prefixes the message of err, the failure of the i-th job of a
// batch, with jobs[i], keeping its code and chain.
func AtIndex(i int, err error) error {
	return core.Wrap(core.ErrorCode(err), err, fmt.Sprintf("jobs[%d]: %s", i, core.ErrorMessage(err)))
}

// store stores the jobs of a valid batch in one broker call and answers
// them, a replay as its key's job. A failure of the broker call is a
// *BatchError saying which jobs it stored (batchError). Once they are all
// stored, a replay whose key's job cannot be read fails, named jobs[i], as
// a *BatchError naming every job stored (a replay by its key's job,
// Idem.Existing): the answer is not made up from Existing alone, whose
// job's status and fields nobody read, but a client is not left to send
// again jobs that are stored.
func (s *Service) store(ctx context.Context, jobs []NewJob) ([]*Job, error) {
	if err := s.broker.Enqueue(ctx, jobs...); err != nil {
		return nil, s.batchError(jobs, s.backendErr("enqueue", err))
	}
	s.answered("enqueue")
	out := make([]*Job, len(jobs))
	for i, nj := range jobs {
		if nj.existing() == "" {
			s.obs.Enqueued(nj.Source)
			out[i] = nj.Job
		}
	}
	for i, nj := range jobs {
		if out[i] == nil {
			j, err := s.replayed(ctx, nj)
			if err != nil {
				return nil, allStored(jobs, AtIndex(i, err))
			}
			out[i] = j
		}
	}
	return out, nil
}

// batchError is the *BatchError of a batch whose broker call failed with
// err: the jobs of the queues it stored anyway (StoredQueues) are stored,
// those it names in MaybeStored may be, the others are not.
func (s *Service) batchError(jobs []NewJob, err error) error {
	stored, maybe := StoredQueues(err), MaybeStored(err)
	be := &BatchError{}
	for i, nj := range jobs {
		bj := BatchRef{Index: i, ID: nj.ID}
		switch {
		case slices.Contains(maybe, nj.ID):
			be.MaybeStored = append(be.MaybeStored, bj)
		case slices.Contains(stored, nj.Queue):
			if nj.existing() == "" {
				s.obs.Enqueued(nj.Source)
			}
			be.Stored = append(be.Stored, storedRef(i, nj))
		default:
			be.NotStored = append(be.NotStored, bj)
		}
	}
	if ie := IdempotencyRefusal(err); ie != nil {
		// The single enqueue's refusal, naming the job whose key it is.
		for i, nj := range jobs {
			if nj.Idem != nil && clientKey(nj.Idem.Key) == ie.Key && !slices.Contains(stored, nj.Queue) {
				err = AtIndex(i, err)
				break
			}
		}
	}
	if core.ErrorCode(err) == core.CodeUnavailable && (len(be.Stored) > 0 || len(be.MaybeStored) > 0) {
		advice := "send the rest again, or the whole batch if every job has an idempotency key"
		if len(be.MaybeStored) > 0 {
			advice = "send again those not stored, and those that may have been once a read (GET) finds them not stored"
		}
		err = core.Wrap(core.CodeUnavailable, err, fmt.Sprintf(
			"the job queue is unavailable: of %d jobs, %d are stored, %d are not and %d may have been (the error's details name them): %s",
			len(jobs), len(be.Stored), len(be.NotStored), len(be.MaybeStored), advice))
	}
	be.Err = err
	return be
}

// storedRef names the i-th job of a batch, stored: by its id, or for a
// replay by its key's job.
func storedRef(i int, nj NewJob) BatchRef {
	return BatchRef{Index: i, ID: cmp.Or(nj.existing(), nj.ID)}
}

// allStored is the *BatchError of a batch whose jobs are all stored (or
// replayed) but whose answer failed with err (a replay's job not read):
// every job is named stored, a replay by its key's job. The jobs stored
// were counted already.
func allStored(jobs []NewJob, err error) error {
	be := &BatchError{Stored: make([]BatchRef, len(jobs))}
	for i, nj := range jobs {
		be.Stored[i] = storedRef(i, nj)
	}
	be.Err = core.Wrap(core.ErrorCode(err), err, core.ErrorMessage(err)+
		"; every job of the batch is stored all the same (the error's details name them, a replay by its key's job): do not send them again")
	return be
}
