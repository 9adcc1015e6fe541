package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/redisstore"
	"github.com/refrakt/refrakt/internal/redistest"
)

// newLimiterOf is a limiter of cfg on s.
func newLimiterOf(t *testing.T, s *redisstore.Store, cfg ratelimit.Config) *ratelimit.Limiter {
	t.Helper()
	l, err := ratelimit.New(cfg, ratelimit.Deps{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestPublishedLimits: what one store publishes another reads back exactly,
// under the prefix, with a TTL; the last writer wins; nothing published, or
// something this version does not read, is "none".
func TestPublishedLimits(t *testing.T) {
	srv := redistest.Start(t)
	rdb := newClient(t, srv)
	ctx := context.Background()
	writer := newStore(t, rdb, redisstore.Options{Prefix: "pl:"})
	reader := newStore(t, rdb, redisstore.Options{Prefix: "pl:"})

	if _, ok, err := reader.PublishedLimits(ctx); err != nil || ok {
		t.Fatalf("before any publish: ok=%v err=%v, want none", ok, err)
	}

	cfg := ratelimit.DefaultConfig()
	cfg.Enabled, cfg.RunBurst, cfg.AssistantPerMinute, cfg.PremiumMultiplier = false, 7, 11, 2.5
	want := newLimiterOf(t, writer, cfg).LimitSet()
	if err := writer.PublishLimits(ctx, want, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, ok, err := reader.PublishedLimits(ctx)
	if err != nil || !ok {
		t.Fatalf("after publish: ok=%v err=%v", ok, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("read back (-want +got)\n%s", diff)
	}
	run := got.Limits[0]
	if run.Name != ratelimit.LimitRun || run.Policy.Burst != 7 || run.Premium.Burst != 17 || got.Enabled {
		t.Errorf("published %+v, want run with burst 7 (premium 17) and limiting off", got)
	}
	if ttl := rdb.PTTL(ctx, "pl:rl:limits").Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("TTL %v, want within (0, 1m]", ttl)
	}
	if _, ok, _ := newStore(t, rdb, redisstore.Options{Prefix: "other:"}).PublishedLimits(ctx); ok {
		t.Error("another prefix sees the limits")
	}

	// The last writer wins.
	defaults := newLimiterOf(t, writer, ratelimit.DefaultConfig()).LimitSet()
	if err := reader.PublishLimits(ctx, defaults, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := writer.PublishedLimits(ctx); !cmp.Equal(defaults, got) {
		t.Errorf("after a second writer: %+v, want its limits", got)
	}

	// A value this version does not read is as good as none.
	for _, v := range []string{"not json", `{"format":2,"enabled":true,"limits":[]}`, `{"format":1,"limits":[{"name":"","window_ms":60000}]}`} {
		if err := rdb.Set(ctx, "pl:rl:limits", v, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := reader.PublishedLimits(ctx); ok || err != nil {
			t.Errorf("value %q: ok=%v err=%v, want none", v, ok, err)
		}
	}

	// The key ends with its TTL.
	if err := writer.PublishLimits(ctx, want, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if _, ok, err := reader.PublishedLimits(ctx); ok || err != nil {
		t.Errorf("after the TTL: ok=%v err=%v, want none", ok, err)
	}
}

// TestPublishedLimitsUnavailable: a Redis that is down is an error coded
// unavailable, not "none".
func TestPublishedLimitsUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	rdb := newClient(t, srv)
	s := newStore(t, rdb, redisstore.Options{})
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, ok, err := s.PublishedLimits(ctx); core.ErrorCode(err) != core.CodeUnavailable || ok {
		t.Errorf("ok=%v err=%v, want an unavailable error", ok, err)
	}
	if err := s.PublishLimits(ctx, ratelimit.LimitSet{}, time.Minute); err == nil {
		t.Error("publish to a stopped Redis: no error")
	}
}
