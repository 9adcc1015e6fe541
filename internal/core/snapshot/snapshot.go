// Package snapshot holds the operator's view of a refrakt deployment at one
// instant: queue gauges and counters, the newest dead jobs, the busiest rate
// limit buckets and the active overrides. The daemon serves it as JSON at
// GET /api/obs/snapshot and `refrakt top` draws it; these types are that
// contract. Times are RFC 3339 in UTC, durations float seconds.
package snapshot

import (
	"context"
	"time"

	"github.com/refrakt/refrakt/internal/core/presence"
)

// Snapshot is the whole view, as served by GET /api/obs/snapshot.
type Snapshot struct {
	// GeneratedAt is when the snapshot was built, by the clock the backend
	// stamps bans and dead jobs with: Redis TIME on Redis, the daemon's
	// own in memory. Ages and time-left values are relative to it, so
	// neither a client's nor a daemon's clock skew shows.
	GeneratedAt time.Time `json:"generated_at"`
	Daemon      Daemon    `json:"daemon"`
	// Queues are sorted by name, at most 100: the 99 busiest and the rest
	// summed as one "_other" entry. QueuesTotal counts them all.
	Queues      []Queue `json:"queues"`
	QueuesTotal int     `json:"queues_total"`
	// DeadJobs are the newest dead jobs first, at most 20.
	DeadJobs []DeadJob `json:"dead_jobs"`
	// Buckets are at most 50 rate limit buckets: the keys with a ban or
	// strikes first (bans first, then by strikes), then the most recently
	// active. PenalizedTotal counts every key with a ban or strikes.
	Buckets        []Bucket `json:"buckets"`
	PenalizedTotal int      `json:"penalized_total"`
	// Overrides are at most 50, by target: the broadest ones first when
	// there are more (see ratelimit.TopOverrides); OverridesTotal counts
	// all those in force.
	Overrides      []Override `json:"overrides"`
	OverridesTotal int        `json:"overrides_total"`
	// Daemons sums the daemons alive on a shared backend (Redis), from
	// their heartbeats (GET /api/obs/daemons lists them). Absent on the
	// memory backend, from daemons before heartbeats, and when the
	// heartbeats could not be read: a client of an earlier version ignores it.
	Daemons *Daemons `json:"daemons,omitempty"`
}

// Daemons sums the daemons alive: how many, how many are stopping, their
// workers (WORKER_CONCURRENCY) and the handlers running at their last
// heartbeat.
type Daemons struct {
	Alive    int   `json:"alive"`
	Stopping int   `json:"stopping"`
	Workers  int   `json:"workers"`
	Busy     int64 `json:"busy"`
}

// DaemonLister reads the daemons' heartbeat records (presence.Store).
type DaemonLister interface {
	List(ctx context.Context) ([]presence.Record, time.Time, error)
}

// DaemonsFrom sums the daemons src lists within ctx, or nil when their
// records cannot be read: a snapshot (top's header) is served without them,
// by a daemon and by `top --redis` alike.
func DaemonsFrom(ctx context.Context, src DaemonLister) *Daemons {
	recs, _, err := src.List(ctx)
	if err != nil {
		return nil
	}
	return DaemonsOf(recs)
}

// DaemonsOf sums recs.
func DaemonsOf(recs []presence.Record) *Daemons {
	d := &Daemons{Alive: len(recs)}
	for _, r := range recs {
		d.Workers += r.Workers
		d.Busy += r.Busy
		if r.Status == presence.StatusStopping {
			d.Stopping++
		}
	}
	return d
}

// Backend names, as reported in Daemon.Backend.
const (
	BackendMemory       = "memory"
	BackendRedis        = "redis"
	BackendRedisCluster = "redis-cluster"
)

// Daemon describes the process that answered.
type Daemon struct {
	Version       string    `json:"version"`
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	// Backend is one of BackendMemory, BackendRedis, BackendRedisCluster.
	Backend string `json:"backend"`
	// Ready is what /readyz says: the backend is reachable.
	Ready   bool `json:"ready"`
	Workers int  `json:"workers"`
}

// Queue is the state of one job queue.
type Queue struct {
	Name      string `json:"name"`
	Pending   int64  `json:"pending"`
	Running   int64  `json:"running"`
	Scheduled int64  `json:"scheduled"`
	Retry     int64  `json:"retry"`
	Dead      int64  `json:"dead"`
	// Paused is set while the queue is paused (refrakt jobs pause): its
	// pending jobs wait, no worker takes one.
	Paused bool `json:"paused"`
	// OldestPendingSeconds is the age of the oldest pending job, 0 when none.
	OldestPendingSeconds float64 `json:"oldest_pending_seconds"`

	// The totals are monotonic counters since the backend's state began;
	// clients derive rates from their deltas.
	EnqueuedTotal  int64 `json:"enqueued_total"`
	SucceededTotal int64 `json:"succeeded_total"`
	FailedTotal    int64 `json:"failed_total"`

	// EnqueueRate is jobs enqueued per second over the last minute;
	// DoneRate is attempts finished per second, succeeded or failed (a
	// failed attempt may be retried: FailedTotal counts attempts);
	// FailureRate is the fraction (0..1) of those attempts that failed.
	EnqueueRate float64 `json:"enqueue_rate"`
	DoneRate    float64 `json:"done_rate"`
	FailureRate float64 `json:"failure_rate"`

	Admission Admission `json:"admission"`
}

// Admission is the admission control state of a queue.
type Admission struct {
	// MaxPending and MaxAgeSeconds are the thresholds; 0 means no limit.
	MaxPending    int64   `json:"max_pending"`
	MaxAgeSeconds float64 `json:"max_age_seconds"`
	// Refusing is true when POST /run would answer 503 for this queue now.
	Refusing bool `json:"refusing"`
	// Reason says which threshold is crossed, "" when not refusing.
	Reason string `json:"reason"`
}

// DeadJob is a job that exhausted its retries.
type DeadJob struct {
	ID         string    `json:"id"`
	Queue      string    `json:"queue"`
	Type       string    `json:"type"`
	Attempts   int       `json:"attempts"`
	LastError  string    `json:"last_error"`
	FinishedAt time.Time `json:"finished_at"`
}

// Bucket is one rate limit bucket, keyed `<limit>:<scope>:<identity>`.
type Bucket struct {
	Key   string `json:"key"`
	Limit string `json:"limit"`
	Scope string `json:"scope"`
	// Tokens is what is left now; Capacity the effective burst (after
	// penalties and overrides).
	Tokens   int64 `json:"tokens"`
	Capacity int64 `json:"capacity"`
	Strikes  int   `json:"strikes"`
	// BannedUntil is nil when the key is not banned.
	BannedUntil *time.Time `json:"banned_until"`
	LastSeen    time.Time  `json:"last_seen"`
}

// Override modes.
const (
	ModeEnforce = "enforce"
	ModeShadow  = "shadow"
)

// Override is a runtime change of a limit's policy.
type Override struct {
	// Target is a limit (`run`), a limit and scope (`run:ip`) or one key.
	Target        string  `json:"target"`
	Capacity      int64   `json:"capacity"`
	WindowSeconds float64 `json:"window_seconds"`
	// Mode is ModeEnforce or ModeShadow.
	Mode string `json:"mode"`
	// ExpiresAt is nil for an override without a TTL.
	ExpiresAt *time.Time `json:"expires_at"`
}
