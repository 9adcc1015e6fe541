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

// scopeKey scopes the idempotency key of an enqueue on a public route to
// its caller: its user and tenant when the daemon believes them (from a
// trusted proxy, or the developer token), else its address and tenant. So
// one caller's key never meets another's: nobody can replay, block or
// learn of another caller's job by sending its key. The developer enqueue
// and the CLI share the operators' scope (none).
func (s *Server) scopeKey(w http.ResponseWriter, r *http.Request, req *queue.EnqueueRequest) error {
	if req.IdempotencyKey == "" {
		return nil
	}
	id, err := s.identityOf(w, r, true)
	if err != nil {
		return err
	}
	who := "ip\x00" + id.IP + "\x00" + id.Tenant
	if id.User != "" {
		who = "user\x00" + id.User + "\x00" + id.Tenant
	}
	req.IdempotencyScope = queue.IdempotencyScope(who)
	return nil
}

// publicRefusal is err as a public route answers it: an idempotency key's
// refusal names neither the key's job nor its id (whoever shares the
// caller's address, behind one NAT, shares its keys, and a job's id is the
// permission to read it); any other error as it is.
func publicRefusal(err error) error {
	ie := queue.IdempotencyRefusal(err)
	switch {
	case ie == nil:
		return err
	case ie.Reused:
		return core.Errorf(core.CodeKeyReused, "idempotency key %q was already used with a different request (type, payload, queue or options): use a new key for a new request", ie.Key)
	default:
		return core.Errorf(core.CodeConflict, "idempotency key %q made a job that is no longer kept (trimmed from the history or removed with its queue): use a new key to enqueue again", ie.Key)
	}
}
