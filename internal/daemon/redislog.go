package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// backendLogEvery is the least time between two log lines of one kind of
// backend failure: as the limiter's backend errors (DESIGN §3), an outage
// is logged once per interval, never per attempt or per request.
const backendLogEvery = 10 * time.Second

// throttledLog writes a warning at most once per interval, with the count
// of those left out since the last one.
type throttledLog struct {
	logger *slog.Logger
	msg    string
	every  time.Duration

	mu      sync.Mutex
	next    time.Time // no line before then
	dropped int       // lines left out since the last one written
}

// warn writes msg with attrs, unless a line was written less than every
// ago.
func (l *throttledLog) warn(ctx context.Context, attrs ...slog.Attr) {
	l.log(ctx, slog.LevelWarn, attrs...)
}

// log writes msg at level with attrs, unless a line was written less than
// every ago.
func (l *throttledLog) log(ctx context.Context, level slog.Level, attrs ...slog.Attr) {
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
	l.logger.LogAttrs(ctx, level, l.msg, append(attrs, slog.Int("left_out", dropped))...)
}

// redisLog takes go-redis's own log lines (dial failures, pool trouble),
// which it would print to stderr several times a second during an outage,
// outside LOG_FORMAT, and writes them to the daemon's structured log as
// warnings "redis client", at most one per interval.
type redisLog struct{ throttledLog }

func newRedisLog(log *slog.Logger, every time.Duration) *redisLog {
	return &redisLog{throttledLog{logger: log, msg: "redis client", every: every}}
}

// Printf implements go-redis's internal.Logging.
func (l *redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.warn(ctx, slog.String("detail", fmt.Sprintf(format, v...)))
}
