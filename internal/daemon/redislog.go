package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/refrakt/refrakt/internal/core"
)

// backendLogEvery is the least time between two log lines of one kind of
// backend failure: as the limiter's backend errors (DESIGN §3), an outage
// is logged once per interval, never per attempt or per request.
const backendLogEvery = 10 * time.Second

// redisLog takes go-redis's own log lines (dial failures, pool trouble),
// which it would print to stderr several times a second during an outage,
// outside LOG_FORMAT, and writes them to the daemon's structured log as
// warnings "redis client", at most one per interval.
type redisLog struct{ core.LogThrottle }

func newRedisLog(log *slog.Logger, every time.Duration) *redisLog {
	return &redisLog{core.LogThrottle{Logger: log, Msg: "redis client", Every: every}}
}

// Printf implements go-redis's internal.Logging.
func (l *redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.Warn(ctx, slog.String("detail", fmt.Sprintf(format, v...)))
}
