package redisbroker

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// fields are the job hash fields, in the order of the scripts' FIELDS.
var fields = []string{"id", "queue", "type", "payload", "status", "attempts", "retries", "max_retries", "interval",
	"run_at", "enqueued_at", "started_at", "finished_at", "last_error", "result", "source", "ready_at", "lease_until", "token",
	"timeout_ms", "cron", "tz"}

// parseJob decodes the values of fields (strings, nil for missing) into a
// job; nil when the hash does not exist.
func parseJob(v []any) *queue.Job {
	j, _ := parseLease(v)
	return j
}

// parseLease is parseJob that also returns the job's fencing token.
func parseLease(v []any) (*queue.Job, int64) {
	if len(v) < len(fields) || v[0] == nil {
		return nil, 0
	}
	vs := values(v)
	s, n, raw := vs.str, vs.int, vs.raw
	tok, _ := strconv.ParseInt(s(18), 10, 64)
	return &queue.Job{
		ID: s(0), Queue: s(1), Type: s(2), Payload: raw(3), Status: queue.Status(s(4)),
		Attempts: n(5), Retries: n(6), MaxRetries: n(7), IntervalSeconds: n(8),
		RunAt: msTime(s(9)), EnqueuedAt: msTime(s(10)), StartedAt: msTime(s(11)), FinishedAt: msTime(s(12)),
		LastError: s(13), Result: raw(14), Source: s(15), ReadyAt: msTime(s(16)), LeaseUntil: msTime(s(17)),
		TimeoutMS: int64(n(19)), Cron: s(20), Timezone: s(21),
	}, tok
}

// parseStarted decodes what start returns ({id, START_FIELDS…}) into the
// job as it now runs in queue q, started at now under a lease of lease.
func parseStarted(v []any, q string, now time.Time, lease time.Duration) (*queue.Job, int64) {
	vs := values(v)
	s, n := vs.str, vs.int
	tok, _ := strconv.ParseInt(s(12), 10, 64)
	return &queue.Job{
		ID: s(0), Queue: q, Status: queue.StatusRunning, Type: s(2), Payload: vs.raw(3),
		Attempts: n(4), Retries: n(5), MaxRetries: n(6), IntervalSeconds: n(7),
		RunAt: msTime(s(8)), EnqueuedAt: msTime(s(9)), Source: s(10), ReadyAt: msTime(s(11)),
		StartedAt: now, LeaseUntil: now.Add(lease.Truncate(time.Millisecond)),
		TimeoutMS: int64(n(13)), Cron: s(14), Timezone: s(15),
	}, tok
}

// values is a reply of HMGET or of a script: strings, nil for missing.
type values []any

// str is value i, "" when missing.
func (v values) str(i int) string {
	s, _ := v[i].(string)
	return s
}

// int is value i as a number, 0 when missing or malformed.
func (v values) int(i int) int {
	x, _ := strconv.Atoi(v.str(i))
	return x
}

// raw is value i as JSON, nil when missing or empty.
func (v values) raw(i int) json.RawMessage {
	if s := v.str(i); s != "" {
		return json.RawMessage(s)
	}
	return nil
}
