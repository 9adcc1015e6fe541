// Package presence is the heartbeat of refrakt's daemons: each daemon
// publishes a small record of itself (who, where, which version, its
// workers and their load, running or stopping) every few seconds, with a
// TTL, so that an operator can list the daemons alive on a backend
// (GET /api/obs/daemons, `refrakt jobs daemons`). A record holds no secret:
// no token, no Redis URL, no password.
package presence

import (
	"slices"
	"strings"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// Statuses of a daemon.
const (
	// StatusRunning: the daemon serves and its workers take jobs.
	StatusRunning = "running"
	// StatusStopping: the daemon's stop began. During SHUTDOWN_DELAY its
	// workers still take jobs; once the delay is over (at once without
	// one) they take no new job and finish those they hold.
	StatusStopping = "stopping"
)

// Record is what one daemon publishes of itself.
type Record struct {
	// ID is the daemon's id for its life: <host>:<pid>:<random> (NewID).
	ID        string `json:"id"`
	Host      string `json:"host"`
	PID       int    `json:"pid"`
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	// Addr is the address the daemon listens on, as bound.
	Addr string `json:"addr"`
	// Backend is the backend's kind: memory, redis or redis-cluster.
	Backend string `json:"backend"`
	// Workers is WORKER_CONCURRENCY (0: manual mode).
	Workers int `json:"workers"`
	// Queues are the queues its workers take jobs from, with their
	// weights (WORKER_QUEUES); empty: every queue. QueueOrder is
	// WORKER_QUEUE_ORDER (weighted or strict), set with Queues only. A
	// daemon of a release before them writes neither: it works every
	// queue.
	Queues     []queue.WorkerQueue `json:"queues,omitempty"`
	QueueOrder string              `json:"queue_order,omitempty"`
	// Busy is the number of handlers running now.
	Busy int64 `json:"busy"`
	// Abandoned is the number of handlers left running past their timeout
	// (refrakt_jobs_abandoned_handlers).
	Abandoned int64 `json:"abandoned"`
	// Succeeded, Failed and Dead count the runs of this daemon since it
	// started, by outcome (a timed-out run counts as failed).
	Succeeded int64  `json:"succeeded"`
	Failed    int64  `json:"failed"`
	Dead      int64  `json:"dead"`
	Status    string `json:"status"`
	// StartedAt is when the daemon started, by the backend's clock: on
	// Redis, Redis TIME just before its first heartbeat (Store.Now), so
	// that UP reads one clock whatever the daemons' own clocks say; on
	// the memory backend, the daemon's clock.
	StartedAt time.Time `json:"started_at"`
	// LastSeen is when the record was last written, by the backend's clock
	// (Redis TIME): set by the store, not the daemon.
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// Daemon is one daemon as listed: its record, its ages by the backend's
// clock at the read, and whether it is the daemon that answered.
type Daemon struct {
	Record
	// UpSeconds is the time since the daemon started; SeenSeconds since
	// its record was last written (at most the record's TTL).
	UpSeconds   float64 `json:"up_seconds"`
	SeenSeconds float64 `json:"seen_seconds"`
	// Self marks the daemon that answered (over the API; never over Redis).
	Self bool `json:"self"`
}

// List is the answer of GET /api/obs/daemons and of
// `refrakt jobs daemons -o json`.
type List struct {
	Daemons []Daemon `json:"daemons"`
}

// View lists recs as read at now (the backend's clock), sorted by start
// time (then id), marking the record of id self.
func View(recs []Record, now time.Time, self string) List {
	out := make([]Daemon, 0, len(recs))
	for _, r := range recs {
		out = append(out, Daemon{Record: r, Self: self != "" && r.ID == self,
			UpSeconds:   max(now.Sub(r.StartedAt), 0).Seconds(),
			SeenSeconds: max(now.Sub(r.LastSeen), 0).Seconds()})
	}
	slices.SortFunc(out, func(a, b Daemon) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return List{Daemons: out}
}
