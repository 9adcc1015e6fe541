package daemon

import (
	"net/http"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
)

// The headers of an idempotent enqueue (Stripe's, and the IETF draft
// draft-ietf-httpapi-idempotency-key-header's): the key a client sends,
// and the mark of an answer that stored nothing because the key had made
// its job already.
const (
	hdrIdempotencyKey = "Idempotency-Key"
	hdrReplayed       = "Idempotent-Replayed"
)

// idempotencyKey takes the Idempotency-Key header of an enqueue into req,
// whose body may give the key as idempotency_key too: both given and
// different, or the header given twice, is invalid. Prepare checks the key.
func idempotencyKey(r *http.Request, req *queue.EnqueueRequest) error {
	vs, ok := r.Header[hdrIdempotencyKey]
	if !ok {
		return nil
	}
	if len(vs) > 1 {
		return core.Errorf(core.CodeInvalid, "the %s header is given %d times: give it once", hdrIdempotencyKey, len(vs))
	}
	if req.IdempotencyKey != "" && req.IdempotencyKey != vs[0] {
		return core.Errorf(core.CodeInvalid, "the %s header and the body's idempotency_key differ: give one, or the same in both", hdrIdempotencyKey)
	}
	if vs[0] == "" {
		return core.Errorf(core.CodeInvalid, "the %s header is empty: want %s", hdrIdempotencyKey, queue.IdempotencyKeyRule)
	}
	req.IdempotencyKey = vs[0]
	return nil
}

// markReplayed sets Idempotent-Replayed on the answer for job j when its
// enqueue was a replay, and returns the status of an enqueue's answer:
// 200 for a replay (nothing stored), 202 for a job stored.
func markReplayed(w http.ResponseWriter, j *queue.Job) int {
	if !j.Replayed {
		return http.StatusAccepted
	}
	w.Header()[hdrReplayed] = []string{"true"}
	return http.StatusOK
}

// idempotencyDetails are the details of an idempotency key's refusal (the
// key's job), nil for any other error.
func idempotencyDetails(err error) map[string]any {
	ie := queue.IdempotencyRefusal(err)
	if ie == nil {
		return nil
	}
	return map[string]any{"job_id": ie.JobID, "idempotency_key": ie.Key}
}
