package queue

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/refrakt/refrakt/internal/core"
)

// Idempotency keys (the Idempotency-Key header, the idempotency_key field)
// make an enqueue safe to send again: within JOB_IDEMPOTENCY_TTL, a key
// already recorded in a queue for the same request stores nothing and
// answers the job it made. Keys are scoped to their queue.

// MaxIdempotencyKey is the longest key, in bytes.
const MaxIdempotencyKey = 255

// The bounds and default of JOB_IDEMPOTENCY_TTL.
const (
	DefaultIdempotencyTTL = 24 * time.Hour
	MinIdempotencyTTL     = time.Second
	MaxIdempotencyTTL     = 720 * time.Hour
)

// IdempotencyKeyRule is what a key may be, in words.
const IdempotencyKeyRule = "1-255 bytes of visible ASCII (0x21-0x7E), no spaces"

// Idempotency is the key a new job carries to the broker: the key, the
// fingerprint of the request that made the job, and how long the broker
// keeps the record. The broker sets Existing when it stored nothing for
// the job because the key is recorded for the same fingerprint: the id of
// the job the key made (a replay).
type Idempotency struct {
	Key         string
	Fingerprint string
	TTL         time.Duration
	// Existing is set by Broker.Enqueue on a replay.
	Existing string
}

// CheckIdempotencyKey refuses, as invalid, a key that is not 1-255 bytes
// of visible ASCII.
func CheckIdempotencyKey(k string) error {
	if len(k) == 0 || len(k) > MaxIdempotencyKey {
		return core.Errorf(core.CodeInvalid, "idempotency key is %d bytes: want %s", len(k), IdempotencyKeyRule)
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x21 || c > 0x7E {
			return core.Errorf(core.CodeInvalid, "idempotency key has byte 0x%02X at %d: want %s", c, i, IdempotencyKeyRule)
		}
	}
	return nil
}

// fingerprint hashes what the request asks for, as prepared: type, queue,
// max_retries (the default filled in), interval_seconds, delay_ms, cron and timezone,
// timeout_ms and the payload, in an encoding of its own (versioned, so that
// no change of EnqueueRequest's JSON turns a retry into a reuse), the
// payload canonical (json.Compact's spacing, <, > and & escaped; other
// escapes and key order as sent), so that the CLI's drivers, one compacting the payload and the other
// storing it as given, fingerprint one request alike. A field added to
// EnqueueRequest that changes the job must be added here.
func fingerprint(req EnqueueRequest, nj NewJob) string {
	h := sha256.New()
	fmt.Fprintf(h, "v1\x00%s\x00%s\x00%d\x00%d\x00%d\x00%d\x00", req.Type, nj.Queue, nj.MaxRetries, req.IntervalSeconds, req.DelayMS, req.TimeoutMS)
	if req.Cron != "" {
		// Only a cron job hashes these, so every other job's fingerprint
		// is what it was before schedules (a retry across an upgrade
		// stays a replay).
		fmt.Fprintf(h, "cron\x00%s\x00%s\x00", req.Cron, req.Timezone)
	}
	var b, esc bytes.Buffer
	if json.Compact(&b, nj.Payload) == nil {
		// <, > and & escaped as json.Marshal escapes them (the CLI's
		// daemon driver sends the payload so).
		json.HTMLEscape(&esc, b.Bytes())
		h.Write(esc.Bytes())
	} else {
		h.Write(nj.Payload)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// scopedKey is the key a broker records for key of scope: the key itself
// for the operators' (no scope), else the scope, a space and the key (a key
// has no space, so no two scopes' keys can be one record).
func scopedKey(scope, key string) string {
	if scope == "" {
		return key
	}
	return scope + " " + key
}

// IdempotencyScope names a caller of the public routes for its keys: a
// digest of what it is (its user and tenant when known, else its address),
// short and fit for a Redis key's name.
func IdempotencyScope(who string) string {
	sum := sha256.Sum256([]byte(who))
	return hex.EncodeToString(sum[:8])
}

// clientKey is the key as its client gave it, without its scope.
func clientKey(k string) string {
	if i := strings.IndexByte(k, ' '); i >= 0 {
		return k[i+1:]
	}
	return k
}

// IdempotencyError is why Broker.Enqueue refused a job's key (stored
// nothing of the call): the key was recorded for another request (Reused),
// or its job is no longer kept (trimmed from the history, or removed with
// its queue). JobID is the job the key made. Its coded form is
// KeyReusedError's or KeyGoneError's.
type IdempotencyError struct {
	Key    string
	JobID  string
	Reused bool
}

func (e *IdempotencyError) Error() string {
	if e.Reused {
		return fmt.Sprintf("idempotency key %q was used for another request (job %s)", e.Key, e.JobID)
	}
	return fmt.Sprintf("idempotency key %q: its job %s is no longer kept", e.Key, e.JobID)
}

// KeyReusedError is the refusal of a key recorded, within its TTL, for a
// request with another fingerprint: core.CodeKeyReused (422).
func KeyReusedError(key, jobID string) error {
	key = clientKey(key)
	return core.Wrap(core.CodeKeyReused, &IdempotencyError{Key: key, JobID: jobID, Reused: true}, fmt.Sprintf(
		"idempotency key %q was already used, for job %s, with a different request (type, payload, queue or options): use a new key for a new request",
		key, jobID))
}

// KeyGoneError is the refusal of a key recorded for a job no longer kept:
// core.CodeConflict (409).
func KeyGoneError(key, jobID string) error {
	key = clientKey(key)
	return core.Wrap(core.CodeConflict, &IdempotencyError{Key: key, JobID: jobID}, fmt.Sprintf(
		"idempotency key %q made job %s, which is no longer kept (trimmed from the history or removed with its queue): use a new key to enqueue again",
		key, jobID))
}

// IdempotencyRefusal returns the *IdempotencyError in err's chain, or nil.
func IdempotencyRefusal(err error) *IdempotencyError {
	var ie *IdempotencyError
	if errors.As(err, &ie) {
		return ie
	}
	return nil
}

// checkBatchKeys refuses, as invalid, two jobs of one batch in one queue
// with the same key: they could not both be the key's job.
func checkBatchKeys(jobs []NewJob) error {
	type qk struct{ q, k string }
	var seen map[qk]int
	for i, nj := range jobs {
		if nj.Idem == nil {
			continue
		}
		if seen == nil {
			seen = map[qk]int{}
		}
		k := qk{nj.Queue, nj.Idem.Key}
		if j, dup := seen[k]; dup {
			return core.Errorf(core.CodeInvalid, "jobs %d and %d have the same idempotency key %q in queue %s: give each job its own key", j, i, nj.Idem.Key, nj.Queue)
		}
		seen[k] = i
	}
	return nil
}
