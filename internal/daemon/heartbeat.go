package daemon

import (
	"context"
	"net/http"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/presence"
	"github.com/refrakt/refrakt/internal/version"
)

// heartbeatEvery is how often a daemon writes its presence record on Redis;
// the record lives heartbeatTTLs beats, so that two lost writes do not
// drop a live daemon from the list, and a killed one leaves it within 15 s.
const (
	heartbeatEvery = 5 * time.Second
	heartbeatTTLs  = 3
)

// heartbeat is the daemon's presence (GET /api/obs/daemons): its id and
// fixed facts, and, on Redis, the loop that writes its record.
type heartbeat struct {
	id    string
	host  string
	pid   int
	addr  string
	every time.Duration
	store *presence.Store // nil on the memory backend: the list is this daemon
	kick  chan struct{}   // a beat now (the stop began)
	// stopping is set when the stop begins (stopTakingJobs, markStopping).
	stopping atomic.Bool
	// startedMS is Redis TIME (ms) just before the first beat written:
	// the record's StartedAt, by the clock UP is read with.
	startedMS atomic.Int64
	// cancel stops the loop; done is closed when it returned.
	cancel context.CancelFunc
	done   chan struct{}
}

// buildHeartbeat makes the daemon's id and, on Redis, registers the loop
// that writes its record as a component. Called before build (so before
// buildJobs), so that it stops after the workers (components stop in
// reverse order): the record says "stopping" while they finish, and is
// removed once they are done.
func (s *Server) buildHeartbeat(addr string, every time.Duration) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	if every <= 0 {
		every = heartbeatEvery
	}
	hb := &heartbeat{host: host, pid: os.Getpid(), addr: addr, every: every, kick: make(chan struct{}, 1)}
	hb.id = presence.NewID(host, hb.pid)
	s.hb = hb
	if s.backend.Redis == nil {
		return
	}
	hb.store = presence.NewStore(s.backend.Redis, s.backend.Prefix)
	failed := &core.LogThrottle{Logger: s.log, Msg: "cannot write the daemon's heartbeat to Redis (GET /api/obs/daemons, refrakt jobs daemons do not list it meanwhile); retrying", Every: backendLogEvery,
		Recovered: "wrote the daemon's heartbeat to Redis again"}
	ttl := every * heartbeatTTLs
	beat := func(ctx context.Context) {
		publish(ctx, failed, func(c context.Context) error {
			if hb.startedMS.Load() == 0 {
				now, err := hb.store.Now(c)
				if err != nil {
					return err
				}
				hb.startedMS.Store(now.UnixMilli())
			}
			return hb.store.Publish(c, s.presenceRecord(), ttl)
		})
	}
	s.addComponent("heartbeat",
		func(context.Context) error {
			// The first beat before the daemon says it is ready: listed from then on.
			beat(context.Background())
			ctx, cancel := context.WithCancel(context.Background())
			hb.cancel, hb.done = cancel, make(chan struct{})
			go func() {
				defer close(hb.done)
				t := time.NewTicker(every)
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-t.C:
					case <-hb.kick:
					}
					beat(ctx)
				}
			}()
			return nil
		},
		func(ctx context.Context) error {
			// Removed even when the stop's time ran out (a forced stop):
			// a stopped daemon listed for 15 s more misleads. But a forced
			// stop ends at once: the wait for the loop and the removal
			// share one short budget, and the record's TTL does the rest.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.heartbeatStopBudget(ctx))
			defer cancel()
			// A second signal during the stop cuts what is left to a
			// forced stop's budget: the budget above was fixed before it.
			defer context.AfterFunc(ctx, func() {
				time.AfterFunc(min(forcedHeartbeatStop, s.stopOvertime(ctx)), cancel)
			})()
			if !hb.stopLoop(rctx) {
				return nil
			}
			// The removal is waited for within rctx, not to its end: a call
			// to a hung Redis ends at its deadline, fixed when it was sent,
			// and a cancel (the cut above) does not interrupt its read.
			removed := make(chan error, 1)
			go func() { removed <- hb.store.Remove(rctx, hb.id) }()
			select {
			case err := <-removed:
				return err
			case <-rctx.Done():
				return rctx.Err()
			}
		})
}

// forcedHeartbeatStop bounds the heartbeat's stop (the wait for the loop
// and the removal together) once the stop's time ran out, within what
// is left of the stop's half second (stopOvertime) after the workers'
// hand-back.
const forcedHeartbeatStop = 300 * time.Millisecond

// heartbeatStopBudget is the time the heartbeat's stop may take: one
// write's timeout, cut to what is left of ctx; once ctx is done (a second
// signal, SHUTDOWN_TIMEOUT over) forcedHeartbeatStop at most, within the
// stop's overtime.
func (s *Server) heartbeatStopBudget(ctx context.Context) time.Duration {
	if ctx.Err() != nil {
		return min(forcedHeartbeatStop, s.stopOvertime(ctx))
	}
	budget := limitsPublishTimeout
	if deadline, ok := ctx.Deadline(); ok {
		budget = max(min(budget, time.Until(deadline)), forcedHeartbeatStop)
	}
	return budget
}

// stopLoop stops the loop and waits for it, without removing the record;
// false when it never started. It waits also when the stop's time ran out,
// within ctx: a beat still in flight could otherwise land after the
// removal and list a stopped daemon for 15 s; the beat's own context is
// cancelled, so the wait is short. A test calls it alone to play a killed
// daemon, whose record expires by its TTL.
func (hb *heartbeat) stopLoop(ctx context.Context) bool {
	if hb.cancel == nil {
		return false
	}
	hb.cancel()
	select {
	case <-hb.done:
	case <-ctx.Done():
	}
	return true
}

// beginStop marks the daemon stopping and has the loop write it at once.
func (hb *heartbeat) beginStop() {
	if hb == nil {
		return
	}
	hb.stopping.Store(true)
	select {
	case hb.kick <- struct{}{}:
	default:
	}
}

// presenceRecord is the daemon's record now. It holds no secret: no
// token, no Redis URL.
func (s *Server) presenceRecord() presence.Record {
	hb := s.hb
	rc := s.jobs.svc.RunCounts()
	status := presence.StatusRunning
	// markStopping and stopTakingJobs set hb.stopping; a pool stopped
	// otherwise (Stop alone) has stopped fetching.
	if hb.stopping.Load() || s.jobs.pool.Fetching().Err() != nil {
		status = presence.StatusStopping
	}
	rec := presence.Record{
		ID: hb.id, Host: hb.host, PID: hb.pid,
		Version: version.Get().Version, GoVersion: runtime.Version(),
		Addr: hb.addr, Backend: s.backend.Kind,
		Workers: s.cfg.WorkerConcurrency, Busy: rc.Busy, Abandoned: s.jobs.svc.AbandonedHandlers(),
		Succeeded: rc.Succeeded, Failed: rc.Failed, Dead: rc.Dead,
		Status: status, StartedAt: s.started.UTC(),
	}
	if len(s.cfg.WorkerQueues) > 0 && s.cfg.WorkerConcurrency > 0 {
		// In manual mode the set has no effect: shown, it would read as
		// the queues the daemon works.
		rec.Queues, rec.QueueOrder = s.cfg.WorkerQueues, s.cfg.WorkerQueueOrder
	}
	if ms := hb.startedMS.Load(); ms != 0 {
		rec.StartedAt = time.UnixMilli(ms).UTC()
	}
	return rec
}

// handleDaemons answers GET /api/obs/daemons: the daemons alive on the
// backend, sorted by start time, their ages by the backend's clock, this
// one marked "self". On the memory backend, this daemon alone.
func (s *Server) handleDaemons() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var recs []presence.Record
		var now time.Time
		if s.hb.store == nil {
			now = s.clock.Now().UTC()
			rec := s.presenceRecord()
			rec.LastSeen = now
			recs = []presence.Record{rec}
		} else {
			ctx, cancel := context.WithTimeout(r.Context(), limitsPublishTimeout)
			var err error
			recs, now, err = s.hb.store.List(ctx)
			cancel()
			if err != nil {
				writeError(w, r, s.log, core.Wrap(core.CodeUnavailable, err, "cannot read the daemons' heartbeats from Redis"))
				return
			}
		}
		writeJSON(w, http.StatusOK, presence.View(recs, now, s.hb.id))
	})
}
