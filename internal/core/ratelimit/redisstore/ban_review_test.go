package redisstore_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/memstore"
	"github.com/refrakt/refrakt/internal/core/ratelimit/redisstore"
	"github.com/refrakt/refrakt/internal/core/ratelimit/storetest"
	"github.com/refrakt/refrakt/internal/redistest"
)

type banFailSwitch struct {
	*redisstore.Store
	fail atomic.Bool
}

func (f *banFailSwitch) Take(ctx context.Context, r *ratelimit.Rules, bs []ratelimit.Bucket, rs []ratelimit.Result) error {
	if f.fail.Load() {
		return errors.New("redis down (test)")
	}
	return f.Store.Take(ctx, r, bs, rs)
}

// TestBanNotInTheLocalStore (review rvban37 HIGH): a ban set through daemon A is written into A's local fallback store;
// a reset through daemon B (or --redis) does not clear it; when Redis fails
// later, A refuses the reset key from its local store.
func TestBanNotInTheLocalStore(t *testing.T) {
	srv := redistest.Start(t)
	clock := storetest.NewClock()
	cfg := ratelimit.DefaultConfig()
	cfg.BackendTimeout = 5 * time.Second
	fa := &banFailSwitch{Store: newStore(t, newClient(t, srv), redisstore.Options{Clock: clock})}
	localA := memstore.New(clock)
	a, err := ratelimit.New(cfg, ratelimit.Deps{Store: fa, Local: localA, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	// the CLI's --redis driver: a limiter on Redis, no local store
	b, err := ratelimit.New(cfg, ratelimit.Deps{Store: newStore(t, newClient(t, srv), redisstore.Options{Clock: clock}), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const key = "rl-test:ip:203.0.113.90"
	req := ratelimit.Request{Limit: "rl-test", IP: "203.0.113.90"}
	if _, _, err := a.Ban(ctx, key, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := b.Reset(ctx, key); err != nil {
		t.Fatal(err)
	}
	d, err := a.Allow(ctx, req)
	if err != nil || !d.Allowed {
		t.Fatalf("after the reset, Redis up: %+v, %v; want allowed", d, err)
	}
	c, _, found, _ := localA.Peek(ctx, key)
	t.Logf("A's local store: found=%v bannedUntil-now=%s", found, time.Duration(c.BannedUntil-clock.Now().UnixMicro())*time.Microsecond)
	fa.fail.Store(true)
	d, err = a.Allow(ctx, req)
	t.Logf("Redis failing, A decides locally: allowed=%v banned=%v until=%s err=%v", d.Allowed, d.Banned(), d.BannedUntil, err)
	if d.Banned() {
		t.Errorf("key reset elsewhere is refused by A's local fallback store until %s", d.BannedUntil)
	}
}

// TestBanReplacesACachedShorterBan (rvban37 MEDIUM): daemon B cached the key's automatic (short) ban; an operator bans it
// for 1h through A; B keeps answering the short ban's Retry-After.
func TestBanReplacesACachedShorterBan(t *testing.T) {
	srv := redistest.Start(t)
	a, b := twoDaemons(t, srv)
	ctx := context.Background()
	req := ratelimit.Request{Limit: "rl-test", IP: "203.0.113.91"}
	auto := banThrough(t, b, req)
	t.Logf("automatic ban: retry %s", auto.RetryAfter)
	_, until, err := a.Ban(ctx, "rl-test:ip:203.0.113.91", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// B drops its cached bans when the ban's change message reaches it.
	var d ratelimit.Decision
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		d, _ = b.Allow(ctx, req)
		if d.BannedUntil.Equal(until) || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("B after the manual ban: banned until %s (manual %s), Retry-After %s", d.BannedUntil, until, d.RetryAfter)
	if !d.BannedUntil.Equal(until) {
		t.Errorf("B answers its cached automatic ban (Retry-After %s), not the 1h manual one", d.RetryAfter)
	}
}

// TestBanAfterTheClockStepsBack: ban after a clock step back (seen > now): the ban's end is now+d in
// the store's clock, tokens rebased.
func TestBanAfterTheClockStepsBack(t *testing.T) {
	srv := redistest.Start(t)
	clock := storetest.NewClock()
	s := newStore(t, newClient(t, srv), redisstore.Options{Clock: clock})
	m := memstore.New(clock)
	cfg := ratelimit.DefaultConfig()
	for name, st := range map[string]ratelimit.Store{"redis": s, "mem": m} {
		l, err := ratelimit.New(cfg, ratelimit.Deps{Store: st, Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		key := "rl-test:ip:203.0.113.92"
		for range 2 {
			l.Allow(ctx, ratelimit.Request{Limit: "rl-test", IP: "203.0.113.92"})
		}
		before, _, _, _ := st.Peek(ctx, key)
		clock.Advance(-30 * time.Second)
		_, until, err := l.Ban(ctx, key, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		after, _, _, _ := st.Peek(ctx, key)
		now := clock.Now().UnixMicro()
		t.Logf("%s: until-now=%s tat moved %s seen-now=%s", name, until.Sub(clock.Now()), time.Duration(after.TAT-before.TAT)*time.Microsecond, time.Duration(after.Seen-now)*time.Microsecond)
		d, _ := l.Allow(ctx, ratelimit.Request{Limit: "rl-test", IP: "203.0.113.92"})
		if !d.Banned() || !d.BannedUntil.Equal(until) {
			t.Errorf("%s: after step back %+v want banned until %s", name, d, until)
		}
		clock.Advance(30 * time.Second)
	}
}

// TestBanNeverLowersThePenaltyIndex (rvban37 LOW): a ban over --redis (a store that never decided: decay 0) writes the
// penalized index score as the ban's end, lowering a later strike end.
func TestBanNeverLowersThePenaltyIndex(t *testing.T) {
	srv := redistest.Start(t)
	rdb := newClient(t, srv)
	cfg := ratelimit.DefaultConfig()
	cfg.BanAfterStrikes = 0
	d, err := ratelimit.New(cfg, ratelimit.Deps{Store: newStore(t, rdb, redisstore.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 6 {
		d.Allow(ctx, ratelimit.Request{Limit: "rl-test", IP: "203.0.113.93"})
	}
	time.Sleep(200 * time.Millisecond)
	d.Allow(ctx, ratelimit.Request{Limit: "rl-test", IP: "203.0.113.94"}) // flush index
	before, _ := rdb.ZScore(ctx, "refrakt:rl:penalized", "rl-test:ip:203.0.113.93").Result()
	cli, _ := ratelimit.New(cfg, ratelimit.Deps{Store: newStore(t, rdb, redisstore.Options{})})
	_, until, err := cli.Ban(ctx, "rl-test:ip:203.0.113.93", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := rdb.ZScore(ctx, "refrakt:rl:penalized", "rl-test:ip:203.0.113.93").Result()
	t.Logf("penalized score before %s from now, after the --redis ban %s from now (ban ends in %s)",
		time.Until(time.UnixMicro(int64(before))).Round(time.Second), time.Until(time.UnixMicro(int64(after))).Round(time.Second), time.Until(until).Round(time.Second))
	if after < before {
		t.Errorf("the ban lowered the key's penalty end in the index")
	}
}
