package core

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// LogThrottle writes its line at most once per Every, with the count of
// the lines it left out since the last one (left_out): a failure that
// repeats (an outage, a refused watch) is logged once per interval, never
// per attempt or per request. It is a LogBudget of one line.
type LogThrottle struct {
	Logger *slog.Logger
	Msg    string
	Every  time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Recovered, when set, is the line OK writes (at INFO) at the first
	// success after a line of Msg was written: the end of the outage that
	// line began. An outage none of whose lines was written (all left out)
	// ends unwritten too: the end alone would name a failure no line told.
	Recovered string

	once   sync.Once
	budget LogBudget
	told   atomic.Bool // a line of Msg was written, and no Recovered since
}

// Warn writes the line at level WARN with attrs, unless one was written
// less than Every ago.
func (t *LogThrottle) Warn(ctx context.Context, attrs ...slog.Attr) {
	t.Log(ctx, slog.LevelWarn, attrs...)
}

// WarnFunc is Warn with attrs made by attrs, called only when the line is
// written: for figures that cost a scan to gather.
func (t *LogThrottle) WarnFunc(ctx context.Context, attrs func() []slog.Attr) {
	t.log(ctx, slog.LevelWarn, nil, attrs)
}

// Log writes the line at level with attrs, unless one was written less
// than Every ago.
func (t *LogThrottle) Log(ctx context.Context, level slog.Level, attrs ...slog.Attr) {
	t.log(ctx, level, attrs, nil)
}

// log writes the line at level with attrs and those made makes (when
// given), unless one was written less than Every ago.
func (t *LogThrottle) log(ctx context.Context, level slog.Level, attrs []slog.Attr, makes func() []slog.Attr) {
	t.once.Do(func() { t.budget.Burst, t.budget.Every, t.budget.Now = 1, t.Every, t.Now })
	ok, heldBack := t.budget.Take()
	if !ok {
		return
	}
	if makes != nil {
		attrs = append(attrs, makes()...)
	}
	t.Logger.LogAttrs(ctx, level, t.Msg, append(attrs, slog.Int("left_out", heldBack))...)
	if t.Recovered != "" {
		t.told.Store(true)
	}
}

// OK writes Recovered with attrs when a line of Msg was written since the
// last Recovered; it does nothing otherwise (and when Recovered is unset),
// at the cost of one atomic load, so every success may call it.
func (t *LogThrottle) OK(ctx context.Context, attrs ...slog.Attr) {
	if !t.told.Load() || !t.told.CompareAndSwap(true, false) {
		return
	}
	t.Logger.LogAttrs(ctx, slog.LevelInfo, t.Recovered, attrs...)
}

// LogBudget lets at most Burst lines through per window of Every (a window
// begins with the first line after the last one ended) and counts the ones
// it holds back, for the next line let through to report: for an event
// that anyone may cause one at a time (a public job going dead), each one
// is logged while they are few, and a flood of them costs a few lines per
// window, not a line per request.
type LogBudget struct {
	Burst int
	Every time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu    sync.Mutex
	start time.Time // of the current interval
	used  int       // lines let through in it
	held  int       // lines held back since the last one let through
}

// Take reports whether a line may be written now and, when it may, how
// many were held back since the last one written (for its left_out).
func (b *LogBudget) Take() (ok bool, heldBack int) {
	at := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.windowOver(at) {
		b.start, b.used = at, 0
	}
	if b.used >= b.Burst {
		b.held++
		return false, 0
	}
	b.used++
	heldBack, b.held = b.held, 0
	return true, heldBack
}

// Hold counts n more lines held back (lines Take let through that were not
// written after all), for the next line let through to report.
func (b *LogBudget) Hold(n int) {
	b.mu.Lock()
	b.held += n
	b.mu.Unlock()
}

// Idle reports whether b holds no line back and its window is over: a new
// budget would do the same.
func (b *LogBudget) Idle() bool {
	at := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held == 0 && b.windowOver(at)
}

// windowOver reports whether the window that began at b.start is over at
// at (or the clock went back past it); b.mu held.
func (b *LogBudget) windowOver(at time.Time) bool {
	return at.Sub(b.start) >= b.Every || at.Before(b.start)
}

// now is the time on b's clock.
func (b *LogBudget) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}
