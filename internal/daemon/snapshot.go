package daemon

import (
	"context"
	"net/http"
	"time"

	"github.com/refrakt/refrakt/internal/core/snapshot"
	"github.com/refrakt/refrakt/internal/version"
)

// handleSnapshot answers GET /api/obs/snapshot: everything `refrakt top`
// shows, in one document (its shape is in internal/core/snapshot).
func (s *Server) handleSnapshot() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		snap, err := s.snapshot(r.Context())
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		writeJSON(w, http.StatusOK, snap)
	})
}

func (s *Server) snapshot(ctx context.Context) (snapshot.Snapshot, error) {
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, _, err := s.ready(pctx)
	ready := err == nil
	cancel()
	// Read after the probe, which may take its 500 ms: the times left and
	// the ages top draws are relative to it.
	local := s.clock.Now()
	d := snapshot.Daemon{
		Version:       version.Get().Version,
		StartedAt:     s.started.UTC(),
		UptimeSeconds: local.Sub(s.started).Seconds(),
		Backend:       s.backend.Kind,
		Ready:         ready,
		Workers:       s.cfg.WorkerConcurrency,
	}
	now := local
	if ready {
		// Not when the probe failed: TIME would wait out the read timeout
		// (3 s, and go-redis's retries) for an answer the probe did not get.
		now = s.backendNow(ctx, local)
	}
	snap, err := snapshot.Build(ctx, snapshot.Sources{Jobs: s.jobs.svc, Limiter: s.limiter, Rates: s.rates, Daemon: d}, now)
	if err == nil && ready && s.hb.store != nil {
		// Within backendTimeWait: a Redis that just answered the probe
		// answers at once, and the snapshot is served without it else.
		dctx, cancel := context.WithTimeout(ctx, backendTimeWait)
		snap.Daemons = snapshot.DaemonsFrom(dctx, s.hb.store)
		cancel()
	}
	return snap, err
}

// backendTimeWait bounds the snapshot's read of Redis TIME: a backend that
// just answered the probe answers within a millisecond or two.
const backendTimeWait = 200 * time.Millisecond

// backendNow is the time by the clock the backend stamps bans and dead
// jobs with: Redis TIME on Redis (DESIGN §3), the daemon's own (local) in
// memory. A snapshot stamped with the daemon's clock showed, on a host
// ahead of Redis by more than a ban's time left, a key Redis bans as not
// banned. When Redis does not answer within backendTimeWait, local is all
// there is: the limiter then answers from its local store, by the daemon's
// clock.
func (s *Server) backendNow(ctx context.Context, local time.Time) time.Time {
	if s.backend.Redis == nil {
		return local
	}
	ctx, cancel := context.WithTimeout(ctx, backendTimeWait)
	defer cancel()
	t, err := s.backend.Redis.Time(ctx).Result()
	if err != nil {
		return local
	}
	return t
}
