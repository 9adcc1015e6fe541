package core

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLogBudget: Burst lines an interval go through, the rest are held
// back and counted on the next line let through, in a later interval.
func TestLogBudget(t *testing.T) {
	at := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	b := &LogBudget{Burst: 3, Every: 10 * time.Second, Now: func() time.Time { return at }}
	var got []bool
	for range 5 {
		ok, held := b.Take()
		if held != 0 {
			t.Errorf("a line in the first interval reports %d held back", held)
		}
		got = append(got, ok)
	}
	if want := []bool{true, true, true, false, false}; !slices.Equal(got, want) {
		t.Errorf("the first interval let through %v, want %v", got, want)
	}
	at = at.Add(9 * time.Second)
	if ok, _ := b.Take(); ok {
		t.Error("a line 9 s into a spent 10 s interval went through")
	}
	at = at.Add(time.Second)
	if ok, held := b.Take(); !ok || held != 3 {
		t.Errorf("the first line of the next interval: %v, %d held back; want through, 3", ok, held)
	}
	if ok, held := b.Take(); !ok || held != 0 {
		t.Errorf("the second line of the next interval: %v, %d held back; want through, 0", ok, held)
	}
}

// TestLogThrottleRecovered: OK writes Recovered once after a line of Msg,
// and not for an outage none of whose lines was written.
func TestLogThrottleRecovered(t *testing.T) {
	at := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	var buf strings.Builder
	lt := &LogThrottle{Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: dropTime})),
		Msg: "down", Every: time.Minute, Now: func() time.Time { return at }, Recovered: "up"}
	ctx := context.Background()
	lt.OK(ctx) // no outage yet
	lt.Warn(ctx)
	lt.Warn(ctx) // left out
	lt.OK(ctx)
	lt.OK(ctx)
	lt.Warn(ctx) // within the minute: left out, and so is its end
	lt.OK(ctx)
	at = at.Add(time.Minute)
	lt.Warn(ctx)
	lt.OK(ctx)
	want := "level=WARN msg=down left_out=0\nlevel=INFO msg=up\nlevel=WARN msg=down left_out=2\nlevel=INFO msg=up\n"
	if got := buf.String(); got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// TestLogThrottleWarnFunc: the attrs of a line left out are never made;
// those of a line written are, once, after the attrs every line has.
func TestLogThrottleWarnFunc(t *testing.T) {
	at := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	var buf strings.Builder
	lt := &LogThrottle{Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: dropTime})),
		Msg: "evicting", Every: time.Minute, Now: func() time.Time { return at }}
	ctx := context.Background()
	made := 0
	attrs := func() []slog.Attr {
		made++
		return []slog.Attr{slog.Int("open", made)}
	}
	for range 3 {
		lt.WarnFunc(ctx, attrs)
	}
	at = at.Add(time.Minute)
	lt.WarnFunc(ctx, attrs)
	if made != 2 {
		t.Errorf("attrs made %d times for 2 lines written of 4", made)
	}
	want := "level=WARN msg=evicting open=1 left_out=0\nlevel=WARN msg=evicting open=2 left_out=2\n"
	if got := buf.String(); got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
}
