package ratelimit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/memstore"
	"github.com/refrakt/refrakt/internal/core/ratelimit/storetest"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		tweak   func(*ratelimit.Config)
		setting string // "" for valid
	}{
		{"defaults", func(*ratelimit.Config) {}, ""},
		{"zero burst", func(c *ratelimit.Config) { c.RunBurst = 0 }, "RATE_LIMIT_RUN_BURST"},
		{"negative rate", func(c *ratelimit.Config) { c.RunPerMinute = -1 }, "RATE_LIMIT_RUN_PER_MINUTE"},
		{"zero assistant", func(c *ratelimit.Config) { c.AssistantPerMinute = 0 }, "RATE_LIMIT_ASSISTANT_PER_MINUTE"},
		{"multiplier below 1", func(c *ratelimit.Config) { c.PremiumMultiplier = 0.5 }, "RATE_LIMIT_PREMIUM_MULTIPLIER"},
		{"factor 0", func(c *ratelimit.Config) { c.PenaltyFactor = 0 }, "PENALTY_FACTOR"},
		{"factor above 1", func(c *ratelimit.Config) { c.PenaltyFactor = 1.5 }, "PENALTY_FACTOR"},
		{"no decay", func(c *ratelimit.Config) { c.PenaltyDecay = 0 }, "PENALTY_DECAY"},
		{"negative strikes", func(c *ratelimit.Config) { c.BanAfterStrikes = -1 }, "BAN_AFTER_STRIKES"},
		{"sub-second ban", func(c *ratelimit.Config) { c.BanDuration = time.Millisecond }, "BAN_SECONDS"},
		{"unknown policy", func(c *ratelimit.Config) { c.OnBackendError = "maybe" }, "RATE_LIMIT_ON_BACKEND_ERROR"},
		{"no timeout", func(c *ratelimit.Config) { c.BackendTimeout = 0 }, "RATE_LIMIT_BACKEND_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ratelimit.DefaultConfig()
			tt.tweak(&c)
			err := c.Validate()
			if tt.setting == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if core.ErrorCode(err) != core.CodeInvalid || !strings.Contains(core.ErrorMessage(err), tt.setting) {
				t.Errorf("Validate = %v, want an invalid error naming %s", err, tt.setting)
			}
		})
	}
}

// recorder is an Observer that keeps what it is told.
type recorder struct {
	decisions []string
	bans      int
}

func (r *recorder) Decided(limit, scope, decision string) {
	r.decisions = append(r.decisions, limit+" "+scope+" "+decision)
}
func (r *recorder) Banned()             { r.bans++ }
func (r *recorder) BackendError(string) {}

// TestObserver checks what the metrics see: limit and scope names, never an
// identity, and each outcome.
func TestObserver(t *testing.T) {
	clock := storetest.NewClock()
	cfg := ratelimit.DefaultConfig()
	cfg.BanAfterStrikes = 2
	rec := &recorder{}
	l, err := ratelimit.New(cfg, ratelimit.Deps{Store: memstore.New(clock), Clock: clock, Observer: rec})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 6 {
		if _, err := l.Allow(ctx, ratelimit.Request{Limit: "rl-test", IP: "192.0.2.1"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.SetOverride(ctx, ratelimit.Override{Target: "run:user", Capacity: 1, Window: time.Minute, Mode: ratelimit.ModeShadow}, 0); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := l.Allow(ctx, ratelimit.Request{Limit: "run", IP: "192.0.2.1", User: "u1"}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"rl-test ip allowed", "rl-test ip allowed", "rl-test ip allowed",
		"rl-test ip limited", "rl-test ip banned", "rl-test ip banned",
		"run user allowed", "run user shadow_limited",
	}
	if diff := cmp.Diff(want, rec.decisions); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
	if rec.bans != 1 {
		t.Errorf("bans = %d, want 1", rec.bans)
	}
}

// TestAllowAllocatesNothing checks the memory store's hot path, two scopes
// and an override included.
func TestAllowAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race (sync.Pool drops items)")
	}
	clock := storetest.NewClock()
	l, err := ratelimit.New(ratelimit.DefaultConfig(), ratelimit.Deps{Store: memstore.New(clock), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.SetOverride(context.Background(), ratelimit.Override{Target: "run", Capacity: 1 << 30, Window: time.Second}, 0); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := ratelimit.Request{Limit: "run", IP: "203.0.113.7", User: "u1"}
	_, _ = l.Allow(ctx, req)
	if n := testing.AllocsPerRun(1000, func() { _, _ = l.Allow(ctx, req) }); n != 0 {
		t.Errorf("Allow allocates %.1f times per call, want 0", n)
	}
}
