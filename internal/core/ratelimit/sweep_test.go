package ratelimit_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/memstore"
	"github.com/refrakt/refrakt/internal/fakeclock"
)

// TestRunSweepsTheStore (growth29 MEDIUM 3): the memory store sweeps a
// shard only as it decides on it, so after a flood the keys of the shards
// no later request landed on stayed for good (100,000 of them three idle
// minutes later). Run drops the idle keys of the store itself, with no
// request at all.
func TestRunSweepsTheStore(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	store := memstore.New(clock)
	cfg := ratelimit.DefaultConfig()
	cfg.OverrideRefresh = 5 * time.Millisecond
	l, err := ratelimit.New(cfg, ratelimit.Deps{Store: store, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const flood = 5000
	for i := range flood {
		ip := fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)
		if d, err := l.Allow(ctx, ratelimit.Request{Limit: "rl-test", IP: ip}); err != nil || !d.Allowed {
			t.Fatalf("request %d: %+v, %v", i, d, err)
		}
	}
	if n := store.Len(); n != flood {
		t.Fatalf("the store holds %d keys after %d clients, want %d", n, flood, flood)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(rctx) }()
	defer func() { cancel(); <-done }()
	// The clock moves a minute at a time (every bucket is full again
	// after the first): no request is made from here on.
	deadline := time.Now().Add(20 * time.Second)
	for store.Len() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d idle keys still held with no request after %s of the limiter's time", store.Len(), flood, clock.Now().Sub(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)))
		}
		clock.Advance(time.Minute)
		time.Sleep(10 * time.Millisecond)
	}
}

// failingWatch is a memory store whose subscription to override changes
// fails at once with err: refused (Redis's NOPERM for a user without the
// channel's rights) or unreachable.
type failingWatch struct {
	*memstore.Store
	err   error
	calls atomic.Int64
}

func (s *failingWatch) WatchOverrides(context.Context, func(bool)) error {
	s.calls.Add(1)
	return s.err
}

// TestRunBacksOffARefusedWatch (growth29 NIT 6): a subscription refused is
// tried again ever later (doubling from the refresh interval, up to 30 s),
// not every refresh interval for good (a connection a second to Redis);
// one that fails because Redis does not answer is tried again every
// interval, so that it resumes as soon as Redis is back (code29 LOW 2).
// The overrides are read every interval meanwhile in both cases.
func TestRunBacksOffARefusedWatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		ok   func(n int64) bool
		want string
	}{
		// Waits of 10, 20, 40, … ms: at most 7 attempts fit in a second.
		{"refused", core.Errorf(core.CodeForbidden, "NOPERM this user has no permissions to access one of the channels"),
			func(n int64) bool { return n <= 7 }, "at most 7 (a doubling wait)"},
		// Every 10 ms: about 100 (at least 20 on a loaded machine).
		{"unreachable", core.Errorf(core.CodeUnavailable, "dial tcp 127.0.0.1:6379: connect: connection refused"),
			func(n int64) bool { return n >= 20 }, "at least 20 (one every interval)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := fakeclock.New(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
			store := &failingWatch{Store: memstore.New(clock), err: tc.err}
			cfg := ratelimit.DefaultConfig()
			cfg.OverrideRefresh = 10 * time.Millisecond
			l, err := ratelimit.New(cfg, ratelimit.Deps{Store: store, Clock: clock, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = l.Run(ctx)
			if n := store.calls.Load(); !tc.ok(n) {
				t.Errorf("%d attempts to subscribe in a second with a 10 ms refresh, want %s", n, tc.want)
			}
		})
	}
}

// TestIdleKeepsABansLevel (rr30-rl RR30-2): a repeat ban is counted from
// the previous ban's end, so a swept key must stay until the repeat window
// after that end, not after its start; forgotten, the next ban of a client
// just out of a long one was a first one again.
func TestIdleKeepsABansLevel(t *testing.T) {
	r := ratelimit.DefaultConfig()
	r.BanMax = 2 * time.Minute
	r.BanRepeatWindow = 90 * time.Second
	rules := r.Rules()
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixMicro()
	c := ratelimit.Cell{LastBan: start, BannedUntil: start + (2 * time.Minute).Microseconds(), BanLevel: 1}
	for _, tc := range []struct {
		after time.Duration
		idle  bool
	}{
		{100 * time.Second, false}, // banned still
		{130 * time.Second, false}, // 10s after the ban's end
		{209 * time.Second, false},
		{210 * time.Second, true}, // the repeat window after its end
	} {
		if got := c.Idle(&rules, start+tc.after.Microseconds()); got != tc.idle {
			t.Errorf("%s after the ban began (it lasts 2m, repeats count for 90s): Idle %v, want %v", tc.after, got, tc.idle)
		}
	}
}

// TestStateAfterAClockSteppedBack (review code30 C8): a snapshot taken
// after the store's clock stepped back shows a key as its next decision
// finds it (moved by the step, Cell.rebase), not with the step read as
// time the wrong way: a key with one strike showed 61, at capacity 1.
func TestStateAfterAClockSteppedBack(t *testing.T) {
	r := ratelimit.DefaultConfig()
	rules := r.Rules()
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixMicro()
	iv := (20 * time.Second).Microseconds()
	// rl-test's bucket (3 per minute) with one token spent and one strike,
	// as its last decision at left it.
	c := ratelimit.Cell{TAT: at + iv, Interval: iv, Capacity: 3, Strikes: 1, StrikeAt: at, Seen: at}
	back := at - time.Hour.Microseconds()
	st := c.State("rl-test:ip:192.0.2.1", &rules, back)
	if st.Strikes != 1 || st.Capacity != 1 || st.Remaining != 0 {
		t.Errorf("an hour back: %+v, want strikes 1, capacity 1 (3 halved, floored), remaining 0 (the token spent)", st)
	}
	if !c.Penalized(&rules, back) {
		t.Error("an hour back the key is not penalized")
	}
}
