package cli

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/refrakt/refrakt/internal/cli/top"
	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
	"github.com/refrakt/refrakt/internal/core/snapshot"
	"github.com/refrakt/refrakt/internal/version"
)

// redisTopSource feeds `refrakt top --redis`: the shared state of every
// daemon on that Redis, read with the same services and the same snapshot
// builder as a daemon's GET /api/obs/snapshot.
//
// Redis that cannot be reached when top starts is not an error that ends
// it, as a daemon that cannot be reached is not (DESIGN §6): the source
// connects on a later fetch, and the header says "disconnected" meanwhile.
type redisTopSource struct {
	addr    string // the URL without its password
	prefix  string
	connect func(ctx context.Context) (*redisDriver, error)
	rates   *snapshot.RateTracker

	mu sync.Mutex
	d  *redisDriver // nil until connected
}

var (
	_ top.DirectSource   = (*redisTopSource)(nil)
	_ top.BucketResetter = (*redisTopSource)(nil)
	_ top.BucketBanner   = (*redisTopSource)(nil)
	_ top.JobRequeuer    = (*redisTopSource)(nil)
	_ top.DeadRequeuer   = (*redisTopSource)(nil)
)

// newRedisTopSource connects to rawURL once. A setting to fix (a bad URL,
// a refused password, no such database) is returned, for `top` to stop
// with; Redis out of reach is not: the source tries again on each fetch.
func newRedisTopSource(ctx context.Context, rawURL, prefix string, getenv func(string) string) (*redisTopSource, error) {
	s := &redisTopSource{
		addr:   config.RedactURL(rawURL),
		prefix: prefix,
		connect: func(ctx context.Context) (*redisDriver, error) {
			return newRedisDriver(ctx, rawURL, prefix, getenv)
		},
		rates: snapshot.NewRateTracker(),
	}
	d, err := s.connect(ctx)
	if err != nil && !errors.As(err, new(unreachableError)) {
		return nil, err
	}
	s.d = d
	return s, nil
}

// driver returns the connected driver, connecting first when not yet.
func (s *redisTopSource) driver(ctx context.Context) (*redisDriver, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.d == nil {
		d, err := s.connect(ctx)
		if err != nil {
			return nil, err
		}
		s.d = d
	}
	return s.d, nil
}

// Close closes the connection, if any.
func (s *redisTopSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.d == nil {
		return nil
	}
	return s.d.Close()
}

func (s *redisTopSource) Name() string { return s.addr }

// Direct says there is no daemon behind this source: the header shows no
// daemon's uptime, readiness or workers.
func (s *redisTopSource) Direct() bool { return true }

// Fetch builds a snapshot straight from Redis. There is no daemon behind
// it: the daemon block names this CLI's build and the backend, and ready
// says whether Redis answers (the header shows only the backend). Which
// queues admission control refuses is judged by the bounds the daemons on
// that Redis publish; with none published (no daemon ran there in the last
// minute), no queue is marked: this process enforces none.
func (s *redisTopSource) Fetch(ctx context.Context) (snapshot.Snapshot, error) {
	d, err := s.driver(ctx)
	if err != nil {
		return snapshot.Snapshot{}, err
	}
	if err := d.lim.RefreshOverrides(ctx); err != nil {
		return snapshot.Snapshot{}, d.fail(err)
	}
	adm, ok, err := redisbroker.PublishedAdmission(ctx, d.rdb, s.prefix)
	if err != nil {
		return snapshot.Snapshot{}, d.fail(err)
	}
	src := snapshot.Sources{Jobs: d.jobs, Limiter: d.lim, Rates: s.rates,
		Daemon: snapshot.Daemon{Version: version.Get().Version, Backend: d.kind, Ready: true}}
	if ok {
		src.Admission = &adm
	}
	// Bans and dead jobs are stamped by Redis TIME (DESIGN §3): ages and
	// times left are drawn against it, not this host's clock, which may
	// be off.
	now, err := d.rdb.Time(ctx).Result()
	if err != nil {
		return snapshot.Snapshot{}, d.fail(err)
	}
	snap, err := snapshot.Build(ctx, src, now)
	if err == nil {
		// As a daemon's snapshot has it: nothing when the heartbeats
		// cannot be read.
		snap.Daemons = snapshot.DaemonsFrom(ctx, d.daemons)
	}
	return snap, d.fail(err)
}

func (s *redisTopSource) ResetBucket(ctx context.Context, key string) error {
	d, err := s.driver(ctx)
	if err != nil {
		return err
	}
	return d.ResetKey(ctx, key)
}

func (s *redisTopSource) BanBucket(ctx context.Context, key string, dur time.Duration) error {
	d, err := s.driver(ctx)
	if err != nil {
		return err
	}
	_, err = d.BanKey(ctx, key, dur)
	return err
}

func (s *redisTopSource) RequeueJob(ctx context.Context, id string) error {
	d, err := s.driver(ctx)
	if err != nil {
		return err
	}
	_, err = d.RequeueJob(ctx, id)
	return err
}

// SetQueuePaused pauses or resumes queue q straight on Redis, as `refrakt
// jobs pause --redis` and `resume` do.
func (s *redisTopSource) SetQueuePaused(ctx context.Context, q string, paused bool) (bool, error) {
	d, err := s.driver(ctx)
	if err != nil {
		return false, err
	}
	r, err := d.SetPaused(ctx, q, paused)
	return r.Changed, err
}

// RequeueAllDead requeues every dead job of queue q straight on Redis, as
// `refrakt jobs requeue --queue Q --all-dead --redis` does.
func (s *redisTopSource) RequeueAllDead(ctx context.Context, q string) (int, error) {
	d, err := s.driver(ctx)
	if err != nil {
		return 0, err
	}
	v, err := requeueEveryDead(ctx, d, q)
	return v.Requeued, err
}
