package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/redisstore"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestBanKeepsStateUntilItEnds: a manual ban on Redis (its clock Redis TIME,
// as in production) keeps the key's state at least until the ban ends
// (PTTL), a longer TTL of the key's own is not cut, and the key is listed in
// the banned and penalized indexes until then.
func TestBanKeepsStateUntilItEnds(t *testing.T) {
	srv := redistest.Start(t)
	rdb := newClient(t, srv)
	s := newStore(t, rdb, redisstore.Options{})
	ctx := context.Background()
	rkey := "refrakt:rl:{run:ip:203.0.113.70}"

	until, err := s.Ban(ctx, "run:ip:203.0.113.70", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Duration(until-now.UnixMicro()) * time.Microsecond; d < 2*time.Hour-5*time.Second || d > 2*time.Hour {
		t.Errorf("banned for %s from Redis TIME, want 2h", d)
	}
	pttl, err := rdb.PTTL(ctx, rkey).Result()
	if err != nil {
		t.Fatal(err)
	}
	if end := now.Add(pttl).UnixMicro(); end < until-1000 {
		t.Errorf("PTTL %s: the state ends before the ban (%d < %d)", pttl, end, until)
	}
	// A key kept longer than a new short ban is not cut short.
	if err := rdb.PExpire(ctx, rkey, 3*time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ban(ctx, "run:ip:203.0.113.70", time.Minute); err != nil {
		t.Fatal(err)
	}
	if pttl, err := rdb.PTTL(ctx, rkey).Result(); err != nil || pttl < 3*time.Hour-time.Minute {
		t.Errorf("PTTL after a shorter ban: %s, %v; want about 3h kept", pttl, err)
	}
	for _, idx := range []string{"refrakt:rl:banned", "refrakt:rl:penalized"} {
		score, err := rdb.ZScore(ctx, idx, "run:ip:203.0.113.70").Result()
		if err != nil || int64(score) != until {
			t.Errorf("%s: score %f, %v; want the ban's end %d", idx, score, err, until)
		}
	}
}

// TestBanSeenByEveryDaemon: a key banned through one daemon is refused by
// another on the same Redis, with the ban's end and Retry-After; that
// daemon then serves it from its ban cache (no script runs); a reset
// through the first lifts it on both.
func TestBanSeenByEveryDaemon(t *testing.T) {
	srv := redistest.Start(t)
	a, b := twoDaemons(t, srv)
	ctx := context.Background()
	req := ratelimit.Request{Limit: "rl-test", IP: "203.0.113.71"}
	const key = "rl-test:ip:203.0.113.71"
	if d, err := b.Allow(ctx, req); err != nil || !d.Allowed {
		t.Fatalf("before the ban: %+v, %v", d, err)
	}

	_, until, err := a.Ban(ctx, key, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// An override announced after the ban, to know when b has handled the
	// ban's announcement (which drops its cached bans).
	mark := ratelimit.Override{Target: "rl-test:ip:198.51.100.98", Capacity: 3, Window: time.Minute}
	if _, err := a.SetOverride(ctx, mark, 0); err != nil {
		t.Fatal(err)
	}
	awaitOverride(t, b, mark.Target)
	for name, l := range map[string]*ratelimit.Limiter{"banning daemon": a, "other daemon": b} {
		d, err := l.Allow(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Banned() || !d.BannedUntil.Equal(until) || d.RetryAfter != 10*time.Minute {
			t.Errorf("%s: allowed %v, banned until %s, retry after %s; want refused until %s, 10m", name, d.Allowed, d.BannedUntil, d.RetryAfter, until)
		}
	}
	before := evalCalls(t, srv)
	for range 5 {
		if d, err := b.Allow(ctx, req); err != nil || !d.Banned() || d.RetryAfter != 10*time.Minute {
			t.Fatalf("from the ban cache: %+v, %v", d, err)
		}
	}
	if n := evalCalls(t, srv) - before; n != 0 {
		t.Errorf("the other daemon ran %d scripts for a cached ban, want 0", n)
	}

	if err := a.Reset(ctx, key); err != nil {
		t.Fatal(err)
	}
	awaitAllowed(t, b, req)
	if d, err := a.Allow(ctx, req); err != nil || !d.Allowed {
		t.Errorf("banning daemon after the reset: %+v, %v", d, err)
	}
}
