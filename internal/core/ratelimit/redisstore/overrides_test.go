package redisstore_test

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/memstore"
	"github.com/refrakt/refrakt/internal/core/ratelimit/redisstore"
	"github.com/refrakt/refrakt/internal/core/ratelimit/storetest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// overridesHook counts the commands a client sends on the overrides hash,
// by name, and can hold back the ones that read it whole (HGETALL, HSCAN)
// for a while before they go, as a Redis busy with a large hash would.
type overridesHook struct {
	mu    sync.Mutex
	sent  map[string]int
	delay time.Duration
	// beforeDelete, when set, runs once just before the first command that
	// may delete an override (HDEL, or a script call) goes.
	beforeDelete func()
}

func (h *overridesHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *overridesHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.see(cmd)
		return next(ctx, cmd)
	}
}

func (h *overridesHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.see(c)
		}
		return next(ctx, cmds)
	}
}

func (h *overridesHook) see(cmd redis.Cmder) {
	if n := cmd.Name(); n == "hdel" || n == "evalsha" || n == "eval" {
		h.mu.Lock()
		f := h.beforeDelete
		h.beforeDelete = nil
		h.mu.Unlock()
		if f != nil {
			f()
		}
	}
	a := cmd.Args()
	if len(a) < 2 {
		return
	}
	if k, ok := a[1].(string); !ok || !strings.HasSuffix(k, "rl:overrides") {
		return
	}
	h.mu.Lock()
	if h.sent == nil {
		h.sent = map[string]int{}
	}
	h.sent[cmd.Name()]++
	d := h.delay
	h.mu.Unlock()
	if n := cmd.Name(); d > 0 && (n == "hgetall" || n == "hscan") {
		time.Sleep(d)
	}
}

// counts returns the commands seen so far and forgets them.
func (h *overridesHook) counts() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.sent
	h.sent = nil
	return c
}

// overridesFixture is what the overrides tests start from: a Redis, a
// context, a stopped clock and the default limiter configuration.
func overridesFixture(t *testing.T) (*redistest.Server, context.Context, *storetest.Clock, ratelimit.Config) {
	t.Helper()
	return redistest.Start(t), context.Background(), storetest.NewClock(), ratelimit.DefaultConfig()
}

// wholeReads counts the commands among c that read the whole hash.
func wholeReads(c map[string]int) int { return c["hscan"] + c["hgetall"] }

// hookedLimiter is a limiter on its own client of srv, with h on that
// client, cfg's backend timeout and clock, and its logs in logs.
func hookedLimiter(t *testing.T, srv *redistest.Server, h *overridesHook, cfg ratelimit.Config, clock ratelimit.Clock, logs *syncBuffer) *ratelimit.Limiter {
	t.Helper()
	rdb := newClient(t, srv)
	rdb.AddHook(h)
	d := ratelimit.Deps{Store: newStore(t, rdb, redisstore.Options{}), Local: memstore.New(clock), Clock: clock}
	if logs != nil {
		d.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	l, err := ratelimit.New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestOverridesLoadOutlastsBackendTimeout: reading every override may take
// longer than a decision's backend timeout (a large hash: 60,000 overrides
// took Redis 105 ms to send), and must still load; bounded by that timeout,
// a starting daemon enforced no override at all.
func TestOverridesLoadOutlastsBackendTimeout(t *testing.T) {
	srv, ctx, clock, cfg := overridesFixture(t)
	cfg.BackendTimeout = 50 * time.Millisecond

	setter := hookedLimiter(t, srv, &overridesHook{}, cfg, clock, nil)
	const target = "run:ip:192.0.2.7"
	if _, err := setter.SetOverride(ctx, ratelimit.Override{Target: target, Capacity: 1, Window: time.Minute}, 0); err != nil {
		t.Fatal(err)
	}

	h := &overridesHook{delay: 3 * cfg.BackendTimeout}
	l := hookedLimiter(t, srv, h, cfg, clock, nil)
	if err := l.RefreshOverrides(ctx); err != nil {
		t.Fatalf("a load slower than the backend timeout failed: %v", err)
	}
	if o, ok := l.Override(target); !ok || o.Capacity != 1 {
		t.Fatalf("override of %s after the load: %+v, %v; want capacity 1", target, o, ok)
	}
	var allowed []bool
	for range 2 {
		d, err := l.Allow(ctx, ratelimit.Request{Limit: "run", IP: "192.0.2.7"})
		if err != nil {
			t.Fatal(err)
		}
		allowed = append(allowed, d.Allowed)
	}
	if !allowed[0] || allowed[1] {
		t.Errorf("two requests under a capacity-1 override: allowed %v, want [true false]", allowed)
	}
}

// TestOverridesRefreshReadsVersionOnly: while no override changes, a
// refresh (each daemon's, every second) reads the hash's change count, one
// HGET, not the whole hash; a change by any process makes the next refresh
// load it, a key's reset does not, and an override written past the count
// (by hand) is loaded within the full reload's period.
func TestOverridesRefreshReadsVersionOnly(t *testing.T) {
	srv, ctx, clock, cfg := overridesFixture(t)
	cfg.BackendTimeout = 5 * time.Second // not about slowness

	other := hookedLimiter(t, srv, &overridesHook{}, cfg, clock, nil)
	if _, err := other.SetOverride(ctx, ratelimit.Override{Target: "run:ip:192.0.2.1", Capacity: 5, Window: time.Minute}, 0); err != nil {
		t.Fatal(err)
	}
	h := &overridesHook{}
	l := hookedLimiter(t, srv, h, cfg, clock, nil)
	refresh := func() map[string]int {
		t.Helper()
		if err := l.RefreshOverrides(ctx); err != nil {
			t.Fatal(err)
		}
		return h.counts()
	}
	if c := refresh(); wholeReads(c) == 0 {
		t.Fatalf("first refresh sent %v: want the hash read whole", c)
	}
	for range 5 {
		clock.Advance(time.Second)
		if c := refresh(); wholeReads(c) != 0 || c["hget"] != 1 {
			t.Fatalf("refresh with nothing changed sent %v: want one HGET", c)
		}
	}

	if _, err := other.SetOverride(ctx, ratelimit.Override{Target: "run:ip:192.0.2.2", Capacity: 7, Window: time.Minute}, 0); err != nil {
		t.Fatal(err)
	}
	if c := refresh(); wholeReads(c) == 0 {
		t.Fatalf("refresh after another process's change sent %v: want the hash read", c)
	}
	if o, ok := l.Override("run:ip:192.0.2.2"); !ok || o.Capacity != 7 {
		t.Fatalf("the other process's override: %+v, %v", o, ok)
	}
	if err := other.DeleteOverride(ctx, "run:ip:192.0.2.2"); err != nil {
		t.Fatal(err)
	}
	refresh()
	if _, ok := l.Override("run:ip:192.0.2.2"); ok {
		t.Fatal("an override deleted by another process is still applied")
	}

	if err := other.Reset(ctx, "run:ip:192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if c := refresh(); wholeReads(c) != 0 {
		t.Fatalf("refresh after a reset sent %v: a reset changes no override", c)
	}

	// Written by hand: the count does not move.
	rdb := newClient(t, srv)
	if err := rdb.HSet(ctx, "refrakt:rl:overrides", "run:ip:192.0.2.3",
		`{"capacity":3,"window_ms":60000,"mode":"enforce","created_at_ms":1}`).Err(); err != nil {
		t.Fatal(err)
	}
	refresh()
	if _, ok := l.Override("run:ip:192.0.2.3"); ok {
		t.Fatal("test setup: the hand-written override was loaded without a change count")
	}
	clock.Advance(31 * time.Second)
	if c := refresh(); wholeReads(c) == 0 {
		t.Fatalf("refresh after the full reload's period sent %v: want the hash read", c)
	}
	if o, ok := l.Override("run:ip:192.0.2.3"); !ok || o.Capacity != 3 {
		t.Fatalf("hand-written override after the full reload: %+v, %v", o, ok)
	}
}

// TestOverridesRefreshFailureLogged: when the overrides cannot be read, the
// ones loaded before stay in force, and the spell is logged once, not at
// every refresh; so is the recovery.
func TestOverridesRefreshFailureLogged(t *testing.T) {
	srv, ctx, clock, cfg := overridesFixture(t)
	logs := &syncBuffer{}
	l := hookedLimiter(t, srv, &overridesHook{}, cfg, clock, logs)
	if _, err := l.SetOverride(ctx, ratelimit.Override{Target: "run:ip:192.0.2.9", Capacity: 2, Window: time.Minute}, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.RefreshOverrides(ctx); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	for range 3 {
		clock.Advance(time.Second)
		if err := l.RefreshOverrides(ctx); err == nil {
			t.Fatal("refresh with Redis stopped: no error")
		}
	}
	if o, ok := l.Override("run:ip:192.0.2.9"); !ok || o.Capacity != 2 {
		t.Fatalf("override loaded before the outage: %+v, %v; want it still in force", o, ok)
	}
	if n := strings.Count(logs.String(), "cannot read the overrides"); n != 1 {
		t.Fatalf("failure logged %d times in 3 failed refreshes, want once:\n%s", n, logs)
	}

	srv.Restart()
	if err := l.RefreshOverrides(ctx); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "overrides read from the rate-limit store again"); n != 1 {
		t.Fatalf("recovery logged %d times, want once:\n%s", n, logs)
	}
}

// TestOverridesOf checks that the overrides read for one target are
// exactly those of the whole list that ratelimit.Related keeps, with keys
// that glob patterns would misread.
func TestOverridesOf(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, newClient(t, srv), redisstore.Options{})
	ctx := context.Background()
	targets := []string{"run", "run:ip", "run:user", "rl-test", "rl-test:ip", "run:ip:203.0.113.7", "run:ip:203.0.113.70",
		"run:user:a*b", "run:user:a*b:c", "run:user:axb", "run:user:[x]", "run:user:a?", "run:user:a\\b", "secure-ping:user_tenant:u1:t1"}
	for i := range 3000 {
		targets = append(targets, fmt.Sprintf("run:ip:10.0.%d.%d", i/256, i%256))
	}
	for _, tg := range targets {
		if err := s.SetOverride(ctx, ratelimit.Override{Target: tg, Capacity: 1, Window: time.Minute, Mode: ratelimit.ModeEnforce}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.Overrides(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byTarget := func(a, b ratelimit.Override) int { return cmp.Compare(a.Target, b.Target) }
	for _, target := range []string{"run", "run:ip", "run:ip:203.0.113.7", "run:user:a*b", "run:user:[x]", "run:user:a?", "run:user:a\\b",
		"secure-ping:user_tenant:u1", "rl-test:ip:192.0.2.1", "nope", "assistant:ip"} {
		t.Run(target, func(t *testing.T) {
			var want []ratelimit.Override
			for _, o := range all {
				if ratelimit.Related(o.Target, target) {
					want = append(want, o)
				}
			}
			got, err := s.OverridesOf(ctx, target)
			if err != nil {
				t.Fatal(err)
			}
			slices.SortFunc(want, byTarget)
			slices.SortFunc(got, byTarget)
			if diff := gocmp.Diff(want, got); diff != "" {
				t.Errorf("OverridesOf(%q) (-want +got):\n%s", target, diff)
			}
		})
	}
}

// TestOverrideChangeMessageReloads: a change message naming an override
// makes the daemon read them all even when the change count did not move
// (a build that does not count, or an override written by hand and
// announced), within a second as DESIGN says; a key's reset message does
// not make it read them.
func TestOverrideChangeMessageReloads(t *testing.T) {
	srv, ctx, clock, cfg := overridesFixture(t)
	cfg.BackendTimeout = 5 * time.Second // not about slowness
	h := &overridesHook{}
	l := hookedLimiter(t, srv, h, cfg, clock, nil)
	if err := l.RefreshOverrides(ctx); err != nil { // loaded: Run's own first refresh finds nothing new
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- l.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(200 * time.Millisecond) // Run subscribed and past its first refresh

	rdb := newClient(t, srv)
	const target = "run:ip:192.0.2.44"
	if err := rdb.HSet(ctx, "refrakt:rl:overrides", target,
		`{"capacity":4,"window_ms":60000,"mode":"enforce","created_at_ms":1}`).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Publish(ctx, "refrakt:rl:overrides:changed", target).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if o, ok := l.Override(target); ok && o.Capacity == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an override announced on the change channel is not applied 5 s later")
		}
		time.Sleep(20 * time.Millisecond)
	}

	time.Sleep(1500 * time.Millisecond) // let the ticker's refreshes settle
	h.counts()
	if err := l.Reset(ctx, "run:ip:192.0.2.45"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if c := h.counts(); wholeReads(c) != 0 {
		t.Fatalf("after a reset message the daemon sent %v: a reset changes no override", c)
	}
}

// TestExpiredOverrideRenewedMeanwhileStays: a refresh deletes the expired
// overrides it read; one set again between that read and the deletion (a
// script renewing an override as it ends, while a daemon scans many) must
// stay.
func TestExpiredOverrideRenewedMeanwhileStays(t *testing.T) {
	srv, ctx, clock, cfg := overridesFixture(t)
	cfg.BackendTimeout = 5 * time.Second // not about slowness
	rdb := newClient(t, srv)
	const target = "run:ip:192.0.2.60"
	stored := func(expires time.Time) string {
		return fmt.Sprintf(`{"capacity":2,"window_ms":60000,"mode":"enforce","expires_at_ms":%d,"created_at_ms":1}`, expires.UnixMilli())
	}
	if err := rdb.HSet(ctx, "refrakt:rl:overrides", target, stored(clock.Now().Add(-time.Second))).Err(); err != nil {
		t.Fatal(err)
	}
	h := &overridesHook{}
	h.beforeDelete = func() {
		if err := rdb.HSet(ctx, "refrakt:rl:overrides", target, stored(clock.Now().Add(time.Hour))).Err(); err != nil {
			t.Error(err)
		}
	}
	l := hookedLimiter(t, srv, h, cfg, clock, nil)
	if err := l.RefreshOverrides(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := rdb.HExists(ctx, "refrakt:rl:overrides", target).Result()
	if err != nil {
		t.Fatal(err)
	}
	if !n {
		t.Fatal("the override renewed after the refresh read it expired was deleted")
	}
}
