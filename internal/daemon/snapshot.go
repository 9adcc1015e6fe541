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
	now := s.clock.Now()
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err := s.ready(pctx)
	ready := err == nil
	cancel()
	d := snapshot.Daemon{
		Version:       version.Get().Version,
		StartedAt:     s.started.UTC(),
		UptimeSeconds: now.Sub(s.started).Seconds(),
		Backend:       s.backend.Kind,
		Ready:         ready,
		Workers:       s.cfg.WorkerConcurrency,
	}
	return snapshot.Build(ctx, snapshot.Sources{Jobs: s.jobs.svc, Limiter: s.limiter, Rates: s.rates, Daemon: d}, now)
}
