package daemon

import (
	"net/http"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// recentJobs is how many jobs GET /api/obs/jobs lists.
const recentJobs = 20

// jobsOverview is the answer of GET /api/obs/jobs.
type jobsOverview struct {
	Queues  []queue.Stats `json:"queues"`
	Types   []string      `json:"types"`
	Recent  []*queue.Job  `json:"recent"`
	Workers workersInfo   `json:"workers"`
}

type workersInfo struct {
	Concurrency int    `json:"concurrency"`
	Manual      bool   `json:"manual"`
	Lease       string `json:"lease"`
	Tick        string `json:"tick_interval"`
}

// handleObsJobs answers per-queue gauges and totals, the registered job
// types and the most recently enqueued jobs.
func (s *Server) handleObsJobs() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ov, err := s.jobsOverview(r)
		if err != nil {
			s.writeJobError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, ov)
	})
}

// jobsOverview gathers the queue part of the observability answers (also
// for /api/obs/snapshot).
func (s *Server) jobsOverview(r *http.Request) (*jobsOverview, error) {
	stats, err := s.jobs.svc.Stats(r.Context())
	if err != nil {
		return nil, err
	}
	recent, err := s.jobs.svc.List(r.Context(), queue.Filter{Limit: recentJobs})
	if err != nil {
		return nil, err
	}
	if stats == nil {
		stats = []queue.Stats{}
	}
	if recent == nil {
		recent = []*queue.Job{}
	}
	cfg := s.jobs.svc.Config()
	return &jobsOverview{
		Queues: stats,
		Types:  s.jobs.svc.Registry().Types(),
		Recent: recent,
		Workers: workersInfo{
			Concurrency: cfg.Concurrency, Manual: cfg.Concurrency == queue.ManualMode,
			Lease: cfg.Lease.String(), Tick: cfg.TickInterval.String(),
		},
	}, nil
}
