package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/ratelimit/redisstore"
)

// A daemon on Redis publishes the limits it enforces (redisstore's
// <prefix>rl:limits) so that `refrakt limits get --redis` shows them rather
// than the CLI's own RATE_LIMIT_* environment. It writes every
// limitsPublishEvery, each write good for limitsPublishTTL: the key outlives
// a few failed writes, and is gone a minute after the last daemon stopped.
// With daemons of different settings, the last writer wins.
const (
	limitsPublishEvery = 10 * time.Second
	limitsPublishTTL   = 60 * time.Second
	// limitsPublishTimeout bounds one write of what the daemon publishes
	// on Redis: its limits, and its heartbeat too (each beat, through
	// publish). It also caps the heartbeat's stop budget
	// (heartbeatStopBudget) and the read of the daemons' records by
	// GET /api/obs/daemons: one round trip each, as a write.
	limitsPublishTimeout = 2 * time.Second
)

// publishLimits writes what the limiter enforces at once and then every
// interval until ctx ends. It runs on its own goroutine, off the request
// path: each write is bounded by limitsPublishTimeout, and a failure is
// logged at most once per backendLogEvery, then retried at the next tick.
func (s *Server) publishLimits(ctx context.Context, rs *redisstore.Store, every time.Duration) {
	limits := s.limiter.LimitSet() // fixed for the daemon's life
	failed := &core.LogThrottle{Logger: s.log, Msg: "cannot publish the rate limits to Redis; retrying", Every: backendLogEvery,
		Recovered: "published the rate limits to Redis again"}
	everyTick(ctx, every, func() {
		publish(ctx, failed, func(c context.Context) error { return rs.PublishLimits(c, limits, limitsPublishTTL) })
	})
}

// publish runs one write of what the daemon publishes on Redis (its
// limits, each heartbeat), bounded by limitsPublishTimeout; a failure goes
// to failed's throttled log, and the first success after a failure it
// wrote says so (failed.Recovered).
func publish(ctx context.Context, failed *core.LogThrottle, write func(context.Context) error) {
	wctx, cancel := context.WithTimeout(ctx, limitsPublishTimeout)
	err := write(wctx)
	cancel()
	switch {
	case err == nil:
		failed.OK(ctx)
	case ctx.Err() == nil:
		failed.Warn(ctx, slog.String("err", err.Error()), core.CauseAttr(err))
	}
}
