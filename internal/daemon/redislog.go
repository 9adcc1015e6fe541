package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// redisLogEvery is the least time between two of go-redis's own log lines
// in the daemon's log: as the limiter's backend errors (DESIGN §3), an
// outage is logged once per interval, never per attempt.
const redisLogEvery = 10 * time.Second

// redisLog takes go-redis's own log lines (dial failures, pool trouble),
// which it would print to stderr several times a second during an outage,
// outside LOG_FORMAT, and writes them to the daemon's structured log as
// warnings, at most one per interval, with the count of those left out.
type redisLog struct {
	log   *slog.Logger
	every time.Duration

	mu      sync.Mutex
	next    time.Time // no line before then
	dropped int       // lines left out since the last one written
}

// Printf implements go-redis's internal.Logging.
func (l *redisLog) Printf(ctx context.Context, format string, v ...any) {
	now := time.Now()
	l.mu.Lock()
	if now.Before(l.next) {
		l.dropped++
		l.mu.Unlock()
		return
	}
	dropped := l.dropped
	l.next, l.dropped = now.Add(l.every), 0
	l.mu.Unlock()
	l.log.LogAttrs(ctx, slog.LevelWarn, "redis client", slog.String("detail", fmt.Sprintf(format, v...)), slog.Int("left_out", dropped))
}
