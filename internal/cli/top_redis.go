package cli

import (
	"context"
	"time"

	"github.com/refrakt/refrakt/internal/cli/top"
	"github.com/refrakt/refrakt/internal/core/snapshot"
	"github.com/refrakt/refrakt/internal/version"
)

// redisTopSource feeds `refrakt top --redis`: the shared state of every
// daemon on that Redis, read with the same services and the same snapshot
// builder as a daemon's GET /api/obs/snapshot.
type redisTopSource struct {
	d     *redisDriver
	rates *snapshot.RateTracker
}

var (
	_ top.DirectSource   = (*redisTopSource)(nil)
	_ top.BucketResetter = (*redisTopSource)(nil)
	_ top.JobRequeuer    = (*redisTopSource)(nil)
)

func (s *redisTopSource) Name() string { return s.d.addr }

// Direct says there is no daemon behind this source: the header shows no
// daemon's uptime, readiness or workers.
func (s *redisTopSource) Direct() bool { return true }

// Fetch builds a snapshot straight from Redis. There is no daemon behind
// it: the daemon block names this CLI's build and the backend, and ready
// says whether Redis answers (the header shows only the backend).
func (s *redisTopSource) Fetch(ctx context.Context) (snapshot.Snapshot, error) {
	if err := s.d.lim.RefreshOverrides(ctx); err != nil {
		return snapshot.Snapshot{}, s.d.fail(err)
	}
	info := snapshot.Daemon{Version: version.Get().Version, Backend: s.d.kind, Ready: true}
	snap, err := snapshot.Build(ctx, snapshot.Sources{Jobs: s.d.jobs, Limiter: s.d.lim, Rates: s.rates, Daemon: info}, time.Now())
	return snap, s.d.fail(err)
}

func (s *redisTopSource) ResetBucket(ctx context.Context, key string) error {
	return s.d.ResetKey(ctx, key)
}

func (s *redisTopSource) RequeueJob(ctx context.Context, id string) error {
	_, err := s.d.RequeueJob(ctx, id)
	return err
}
