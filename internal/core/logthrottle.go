package core

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// LogThrottle writes its line at most once per Every, with the count of
// the lines it left out since the last one (left_out): a failure that
// repeats (an outage, a refused watch) is logged once per interval, never
// per attempt or per request.
type LogThrottle struct {
	Logger *slog.Logger
	Msg    string
	Every  time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu      sync.Mutex
	next    time.Time // no line before then
	dropped int       // lines left out since the last one written
}

// Warn writes the line at level WARN with attrs, unless one was written
// less than Every ago.
func (t *LogThrottle) Warn(ctx context.Context, attrs ...slog.Attr) {
	t.Log(ctx, slog.LevelWarn, attrs...)
}

// Log writes the line at level with attrs, unless one was written less
// than Every ago.
func (t *LogThrottle) Log(ctx context.Context, level slog.Level, attrs ...slog.Attr) {
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	at := now()
	t.mu.Lock()
	if at.Before(t.next) {
		t.dropped++
		t.mu.Unlock()
		return
	}
	dropped := t.dropped
	t.next, t.dropped = at.Add(t.Every), 0
	t.mu.Unlock()
	t.Logger.LogAttrs(ctx, level, t.Msg, append(attrs, slog.Int("left_out", dropped))...)
}
