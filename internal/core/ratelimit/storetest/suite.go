// Package storetest is the conformance suite every ratelimit.Store passes:
// scripted sequences under a fake clock with exact admission counts,
// multi-scope requests, overrides, resets, snapshots and concurrency. The
// memory and Redis stores run it from their own tests.
package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// NewStore returns a fresh, empty store whose time comes from clock.
type NewStore func(t *testing.T, clock ratelimit.Clock) ratelimit.Store

// Run runs the whole suite against the stores newStore makes.
func Run(t *testing.T, newStore NewStore) {
	t.Run("Sequences", func(t *testing.T) { testSequences(t, newStore) })
	t.Run("RemainingExact", func(t *testing.T) { testRemainingExact(t, newStore) })
	t.Run("StrikeRetryAfterAdmits", func(t *testing.T) { testStrikeRetryAfter(t, newStore) })
	t.Run("MultiScope", func(t *testing.T) { testMultiScope(t, newStore) })
	t.Run("IPv6Prefix", func(t *testing.T) { testIPv6(t, newStore) })
	t.Run("MostSpecificOverride", func(t *testing.T) { testMostSpecific(t, newStore) })
	t.Run("OverrideAPI", func(t *testing.T) { testOverrideAPI(t, newStore) })
	t.Run("OverrideSeenByOthers", func(t *testing.T) { testOverrideSeenByOthers(t, newStore) })
	t.Run("DeleteExpiredOverride", func(t *testing.T) { testDeleteExpiredOverride(t, newStore) })
	t.Run("RemoveExpiredOverride", func(t *testing.T) { testRemoveExpiredOverride(t, newStore) })
	t.Run("Reset", func(t *testing.T) { testReset(t, newStore) })
	t.Run("Ban", func(t *testing.T) { testBan(t, newStore) })
	t.Run("Snapshot", func(t *testing.T) { testSnapshot(t, newStore) })
	t.Run("SnapshotShowsNextDecision", func(t *testing.T) { testSnapshotNext(t, newStore) })
	t.Run("PeekShowsNextDecisionChangesNothing", func(t *testing.T) { testPeek(t, newStore) })
	t.Run("Concurrency", func(t *testing.T) { testConcurrency(t, newStore) })
	t.Run("TenantScope", func(t *testing.T) { testTenantScope(t, newStore) })
	t.Run("GlobalScope", func(t *testing.T) { testGlobalScope(t, newStore) })
	t.Run("CustomLimit", func(t *testing.T) { testCustomLimit(t, newStore) })
}

// NewLimiter builds a limiter on store with the defaults changed by tweak.
func NewLimiter(t testing.TB, store ratelimit.Store, clock ratelimit.Clock, tweak func(*ratelimit.Config)) *ratelimit.Limiter {
	t.Helper()
	cfg := ratelimit.DefaultConfig()
	if tweak != nil {
		tweak(&cfg)
	}
	l, err := ratelimit.New(cfg, ratelimit.Deps{Store: store, Clock: clock})
	if err != nil {
		t.Fatalf("ratelimit.New: %v", err)
	}
	return l
}

// Outcome is what the sequences compare of a decision.
type Outcome struct {
	Allowed    bool
	Scope      ratelimit.Scope
	Capacity   int
	Remaining  int
	Strikes    int
	RetryAfter time.Duration
	BanFor     time.Duration // BannedUntil − now
	Shadow     bool
}

// CheckBannedFigures sends req n times and checks that every banned answer
// promises no tokens before the ban ends (Remaining 0, Reset at least the
// Retry-After). It returns how many answers were bans.
func CheckBannedFigures(t *testing.T, l *ratelimit.Limiter, req ratelimit.Request, n int) int {
	t.Helper()
	banned := 0
	for range n {
		d, err := l.Allow(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Banned() {
			continue
		}
		banned++
		if d.Remaining != 0 || d.Reset < d.RetryAfter || d.RetryAfter <= 0 {
			t.Errorf("banned answer %d: remaining %d, reset %s, retry after %s; want 0 and reset ≥ retry after", banned, d.Remaining, d.Reset, d.RetryAfter)
		}
	}
	return banned
}

// SpendTwoScopes gives run's ip scope 1 token per 2s and its user scope 1
// per minute, spends the one token of both with a request from ip as user,
// and returns that request: sent again, both scopes refuse it, the user
// scope for longer.
func SpendTwoScopes(t *testing.T, l *ratelimit.Limiter, ip, user string) ratelimit.Request {
	t.Helper()
	ctx := context.Background()
	for _, o := range []ratelimit.Override{
		{Target: "run:ip", Capacity: 1, Window: 2 * time.Second},
		{Target: "run:user", Capacity: 1, Window: time.Minute},
	} {
		if _, err := l.SetOverride(ctx, o, 0); err != nil {
			t.Fatal(err)
		}
	}
	req := ratelimit.Request{Limit: "run", IP: ip, User: user}
	if d, err := l.Allow(ctx, req); err != nil || !d.Allowed {
		t.Fatalf("first request: %+v, %v", d, err)
	}
	return req
}

// OutcomeOf reduces d to an Outcome at now.
func OutcomeOf(d ratelimit.Decision, now time.Time) Outcome {
	o := Outcome{Allowed: d.Allowed, Scope: d.Scope, Capacity: d.Capacity, Remaining: d.Remaining,
		Strikes: d.Strikes, RetryAfter: d.RetryAfter, Shadow: d.Shadow}
	if !d.BannedUntil.IsZero() {
		o.BanFor = d.BannedUntil.Sub(now)
	}
	if d.Allowed && !d.Shadow {
		o.RetryAfter = 0
	}
	return o
}

type step struct {
	advance  time.Duration
	override *ratelimit.Override // set before the request
	want     Outcome
}

func allow(capacity, remaining, strikes int) step {
	return step{want: Outcome{Allowed: true, Scope: ratelimit.ScopeIP, Capacity: capacity, Remaining: remaining, Strikes: strikes}}
}

func deny(capacity, strikes int, retry time.Duration) step {
	return step{want: Outcome{Scope: ratelimit.ScopeIP, Capacity: capacity, Strikes: strikes, RetryAfter: retry}}
}

func banned(capacity int, d time.Duration) step {
	return step{want: Outcome{Scope: ratelimit.ScopeIP, Capacity: capacity, RetryAfter: d, BanFor: d}}
}

// bannedFor is a banned answer whose Retry-After (retry) outlasts the ban
// (banFor): the bucket still owes tokens when the ban ends.
func bannedFor(capacity int, retry, banFor time.Duration) step {
	return step{want: Outcome{Scope: ratelimit.ScopeIP, Capacity: capacity, RetryAfter: retry, BanFor: banFor}}
}

func after(d time.Duration, s step) step { s.advance = d; return s }

func with(o ratelimit.Override, s step) step { s.override = &o; return s }

// denials is denied requests at capacity 1 with strikes from, from+1, …
// up to ratelimit.MaxStrikes, then at it, to upTo requests in all from
// from: a key whose strikes keep growing with bans off.
func denials(from, upTo int, retry time.Duration) []step {
	var out []step
	for n := from; n <= upTo; n++ {
		out = append(out, deny(1, min(n, ratelimit.MaxStrikes), retry))
	}
	return out
}

// countdown is n allowed requests with remaining n-1 … 0.
func countdown(capacity, n, strikes int) []step {
	var out []step
	for i := n - 1; i >= 0; i-- {
		out = append(out, allow(capacity, i, strikes))
	}
	return out
}

func seq(parts ...any) []step {
	var out []step
	for _, p := range parts {
		switch p := p.(type) {
		case step:
			out = append(out, p)
		case []step:
			out = append(out, p...)
		}
	}
	return out
}

func noPenalty(c *ratelimit.Config) { c.PenaltyFactor = 1; c.BanAfterStrikes = 0 }

const sec = time.Second

func testSequences(t *testing.T, newStore NewStore) {
	premiumIV := 6666667 * time.Microsecond // ceil(60s / 9)
	tests := []struct {
		name  string
		cfg   func(*ratelimit.Config)
		req   ratelimit.Request
		setup []ratelimit.Override // with their TTL in ExpiresAt's place: see ttl
		ttl   time.Duration
		steps []step
	}{
		{
			name: "burst then refill",
			cfg:  noPenalty,
			req:  ratelimit.Request{Limit: "rl-test", IP: "203.0.113.7"},
			steps: seq(countdown(3, 3, 0), deny(3, 1, 20*sec),
				after(20*sec, allow(3, 0, 1)), deny(3, 2, 20*sec),
				// A whole window (60s) after the last strike, the bucket
				// full again: both strikes forgiven.
				after(60*sec, allow(3, 2, 0)), allow(3, 1, 0), allow(3, 0, 0), deny(3, 1, 20*sec)),
		},
		{
			name:  "window override",
			cfg:   noPenalty,
			req:   ratelimit.Request{Limit: "rl-test", IP: "203.0.113.7"},
			setup: []ratelimit.Override{{Target: "rl-test", Capacity: 5, Window: 10 * sec}},
			steps: seq(countdown(5, 5, 0), deny(5, 1, 2*sec), after(2*sec, allow(5, 0, 1)), deny(5, 2, 2*sec)),
		},
		{
			name:  "premium multiplier",
			cfg:   noPenalty,
			req:   ratelimit.Request{Limit: "rl-test", IP: "203.0.113.7", Premium: true},
			steps: seq(countdown(9, 9, 0), deny(9, 1, premiumIV)),
		},
		{
			name: "strikes shrink capacity",
			cfg:  func(c *ratelimit.Config) { c.BanAfterStrikes = 0; c.PenaltyDecay = time.Hour },
			req:  ratelimit.Request{Limit: "tenant-meta", IP: "203.0.113.7"},
			steps: seq(countdown(60, 60, 0), deny(60, 1, 31*sec),
				after(31*sec, allow(30, 0, 1)), deny(30, 2, 16*sec),
				after(sec, deny(15, 3, 23*sec))),
		},
		{
			// The decay (40s) is shorter than the window (60s), as the
			// defaults' (60s each) is not longer: sustained success is
			// counted from the last 429, not from the last decay.
			name: "decay and reset",
			cfg:  func(c *ratelimit.Config) { c.BanAfterStrikes = 0; c.PenaltyDecay = 40 * time.Second },
			req:  ratelimit.Request{Limit: "tenant-meta", IP: "203.0.113.7"},
			steps: seq(countdown(60, 60, 0), deny(60, 1, 31*sec), deny(30, 2, 46*sec),
				// One decay period forgives one strike; 16 of the 60s owed
				// are left, under a capacity of 30.
				after(45*sec, allow(30, 14, 1)),
				// A whole window after the last 429, the bucket full again:
				// all forgiven.
				after(30*sec, allow(60, 59, 0)), allow(60, 58, 0)),
		},
		{
			// The defaults: a decay as long as the window. A client with
			// strikes that then waits a whole window is forgiven at its next
			// request (when each decay step counted as a 429, never).
			name: "sustained success with the default decay",
			req:  ratelimit.Request{Limit: "rl-test", IP: "203.0.113.7"},
			steps: seq(countdown(3, 3, 0), deny(3, 1, 60*sec), deny(1, 2, 60*sec),
				after(70*sec, allow(3, 2, 0)), allow(3, 1, 0), allow(3, 0, 0), deny(3, 1, 60*sec)),
		},
		{
			// The store's clock steps back an hour (an NTP step): the key
			// keeps the state it had, one token spent, rather than owing
			// the hour (rr30-rl RR30-4).
			name: "a clock stepped back keeps the key's state",
			req:  ratelimit.Request{Limit: "rl-test", IP: "203.0.113.7"},
			steps: seq(allow(3, 2, 0), after(-time.Hour, allow(3, 1, 0)), allow(3, 0, 0), deny(3, 1, 60*sec),
				after(60*sec, allow(3, 2, 0))),
		},
		{
			// A ban keeps what was left of it when the clock steps back,
			// in the store and in the limiter's cache of bans.
			name: "a ban across a clock stepped back",
			cfg:  func(c *ratelimit.Config) { c.BanAfterStrikes = 3; c.PenaltyDecay = time.Hour },
			req:  ratelimit.Request{Limit: "rl-test", IP: "203.0.113.7"},
			steps: seq(countdown(3, 3, 0), deny(3, 1, 60*sec), deny(1, 2, 60*sec), banned(1, 60*sec),
				after(-time.Hour, banned(1, 60*sec)), after(10*sec, banned(1, 50*sec)),
				after(50*sec, allow(3, 2, 0))),
		},
		{
			// With bans off, strikes stop at ratelimit.MaxStrikes.
			name:  "strikes bounded without bans",
			cfg:   func(c *ratelimit.Config) { c.BanAfterStrikes = 0 },
			req:   ratelimit.Request{Limit: "rl-test", IP: "203.0.113.7"},
			steps: seq(countdown(3, 3, 0), deny(3, 1, 60*sec), denials(2, ratelimit.MaxStrikes+20, 60*sec)),
		},
		{
			// The repeat window (90s) is shorter than the longest ban
			// (120s): a ban after one of 120s still counts as a repeat,
			// since the window is counted from the previous ban's end.
			name: "ban escalation never drops back",
			cfg: func(c *ratelimit.Config) {
				c.BanAfterStrikes = 3
				c.BanMax = 120 * sec
				c.BanRepeatWindow = 90 * sec
				c.PenaltyDecay = time.Hour
			},
			req: ratelimit.Request{Limit: "rl-test", IP: "203.0.113.7"},
			steps: seq(countdown(3, 3, 0), deny(3, 1, 60*sec), deny(1, 2, 60*sec), banned(1, 60*sec),
				after(60*sec, allow(3, 2, 0)), allow(3, 1, 0), allow(3, 0, 0), deny(3, 1, 60*sec), deny(1, 2, 60*sec), banned(1, 120*sec),
				after(120*sec, allow(3, 2, 0)), allow(3, 1, 0), allow(3, 0, 0), deny(3, 1, 60*sec), deny(1, 2, 60*sec), banned(1, 120*sec)),
		},
		{
			name: "ban, its doubling and its cap",
			cfg: func(c *ratelimit.Config) {
				c.BanAfterStrikes = 3
				c.BanMax = 150 * sec
				c.PenaltyDecay = time.Hour
			},
			req: ratelimit.Request{Limit: "rl-test", IP: "203.0.113.7"},
			steps: seq(countdown(3, 3, 0), deny(3, 1, 60*sec), deny(1, 2, 60*sec), banned(1, 60*sec), banned(1, 60*sec),
				after(60*sec, allow(3, 2, 0)), allow(3, 1, 0), allow(3, 0, 0), deny(3, 1, 60*sec), deny(1, 2, 60*sec), banned(1, 120*sec),
				after(120*sec, allow(3, 2, 0)), allow(3, 1, 0), allow(3, 0, 0), deny(3, 1, 60*sec), deny(1, 2, 60*sec), banned(1, 150*sec)),
		},
		{
			// 3 tokens owed, 20s each, when the 2s ban starts: a request
			// passes 20s later, at the bucket's full capacity (the ban
			// reset the strikes), not when the ban ends.
			name: "a ban's Retry-After waits for the debt",
			cfg:  func(c *ratelimit.Config) { c.BanDuration = 2 * sec; c.PenaltyDecay = 2 * sec },
			req:  ratelimit.Request{Limit: "rl-test", IP: "203.0.113.7"},
			steps: seq(countdown(3, 3, 0), deny(3, 1, 60*sec), deny(1, 2, 60*sec), deny(1, 3, 60*sec), deny(1, 4, 60*sec),
				bannedFor(1, 20*sec, 2*sec), after(sec, bannedFor(1, 19*sec, sec)),
				after(19*sec, allow(3, 0, 0))),
		},
		{
			// The window shrinks to 6s during the ban: the 59s owed are 5.9s
			// at the new rate (2s a token), so a request passes at 2.9s, at
			// 3 tokens.
			name: "a ban's Retry-After after the interval changed",
			cfg:  func(c *ratelimit.Config) { c.BanDuration = 2 * sec; c.PenaltyDecay = 2 * sec },
			req:  ratelimit.Request{Limit: "rl-test", IP: "203.0.113.7"},
			steps: seq(countdown(3, 3, 0), deny(3, 1, 60*sec), deny(1, 2, 60*sec), deny(1, 3, 60*sec), deny(1, 4, 60*sec),
				bannedFor(1, 20*sec, 2*sec),
				after(sec, with(ratelimit.Override{Target: "rl-test", Capacity: 3, Window: 6 * sec}, bannedFor(1, 1900*time.Millisecond, sec))),
				after(1900*time.Millisecond, allow(3, 0, 0))),
		},
		{
			// The request that forgives the strikes answers under the
			// capacity it gives back, as the next one does (review's
			// "5@0 1@3.5 3@0").
			name:  "sustained success answers under the forgiven capacity",
			req:   ratelimit.Request{Limit: "rl-test", IP: "203.0.113.7"},
			setup: []ratelimit.Override{{Target: "rl-test", Capacity: 3, Window: 3 * sec}},
			steps: seq(countdown(3, 3, 0), deny(3, 1, 3*sec), deny(1, 2, 3*sec),
				after(3500*time.Millisecond, allow(3, 2, 0)), allow(3, 1, 0)),
		},
		{
			name:  "TTL'd override expiring",
			cfg:   noPenalty,
			req:   ratelimit.Request{Limit: "rl-test", IP: "203.0.113.7"},
			setup: []ratelimit.Override{{Target: "rl-test", Capacity: 1, Window: 60 * sec}},
			ttl:   30 * sec,
			steps: seq(allow(1, 0, 0), deny(1, 1, 60*sec),
				// Back to 3 per 60s, keeping half a token spent.
				after(30*sec, allow(3, 1, 1)), allow(3, 0, 1), deny(3, 2, 10*sec)),
		},
		{
			name:  "shadow override counts, never denies",
			req:   ratelimit.Request{Limit: "rl-test", IP: "203.0.113.7"},
			setup: []ratelimit.Override{{Target: "rl-test:ip", Capacity: 1, Window: 60 * sec, Mode: ratelimit.ModeShadow}},
			steps: seq(allow(1, 0, 0),
				step{want: Outcome{Allowed: true, Scope: ratelimit.ScopeIP, Capacity: 1, RetryAfter: 60 * sec, Shadow: true}},
				step{want: Outcome{Allowed: true, Scope: ratelimit.ScopeIP, Capacity: 1, RetryAfter: 60 * sec, Shadow: true}}),
		},
		{
			name: "changed limit keeps what was spent",
			cfg:  noPenalty,
			req:  ratelimit.Request{Limit: "tenant-meta", IP: "203.0.113.7"},
			steps: seq(countdown(60, 60, 0)[:10],
				with(ratelimit.Override{Target: "tenant-meta", Capacity: 40, Window: 60 * sec}, allow(40, 29, 0)),
				with(ratelimit.Override{Target: "tenant-meta", Capacity: 5, Window: 60 * sec}, deny(5, 1, 84*sec))),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := NewClock()
			l := NewLimiter(t, newStore(t, clock), clock, tt.cfg)
			ctx := context.Background()
			for _, o := range tt.setup {
				if _, err := l.SetOverride(ctx, o, tt.ttl); err != nil {
					t.Fatalf("SetOverride(%+v): %v", o, err)
				}
			}
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				if s.override != nil {
					if _, err := l.SetOverride(ctx, *s.override, 0); err != nil {
						t.Fatalf("step %d: SetOverride: %v", i, err)
					}
				}
				d, err := l.Allow(ctx, tt.req)
				if err != nil {
					t.Fatalf("step %d: Allow: %v", i, err)
				}
				if diff := cmp.Diff(s.want, OutcomeOf(d, clock.Now())); diff != "" {
					t.Fatalf("step %d: decision mismatch (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

// testStrikeRetryAfter: the Retry-After of a 429 that adds a strike is the
// wait under the capacity that strike leaves, so a client that comes back
// exactly then is let in, round after round, rather than refused and struck
// again.
func testStrikeRetryAfter(t *testing.T, newStore NewStore) {
	tests := []struct {
		name   string
		cfg    func(*ratelimit.Config)
		policy *ratelimit.Override
		req    ratelimit.Request
		rounds int
	}{
		{
			name:   "3 per 3s, default penalties",
			policy: &ratelimit.Override{Target: "rl-test", Capacity: 3, Window: 3 * sec},
			req:    ratelimit.Request{Limit: "rl-test", IP: "203.0.113.7"},
			rounds: 4,
		},
		{
			name:   "tenant-meta, strikes that last",
			cfg:    func(c *ratelimit.Config) { c.BanAfterStrikes = 0; c.PenaltyDecay = time.Hour },
			req:    ratelimit.Request{Limit: "tenant-meta", IP: "203.0.113.7"},
			rounds: 8,
		},
		{
			name:   "run, premium",
			req:    ratelimit.Request{Limit: "run", IP: "203.0.113.7", Premium: true},
			rounds: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := NewClock()
			l := NewLimiter(t, newStore(t, clock), clock, tt.cfg)
			ctx := context.Background()
			if tt.policy != nil {
				if _, err := l.SetOverride(ctx, *tt.policy, 0); err != nil {
					t.Fatal(err)
				}
			}
			allow := func() ratelimit.Decision {
				t.Helper()
				d, err := l.Allow(ctx, tt.req)
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			for round := 1; round <= tt.rounds; round++ {
				d := allow()
				for d.Allowed {
					d = allow() // spend what the bucket holds
				}
				if d.Banned() || d.Strikes == 0 {
					t.Fatalf("round %d: %+v, want a 429 that strikes", round, d)
				}
				clock.Advance(d.RetryAfter)
				if back := allow(); !back.Allowed {
					t.Fatalf("round %d: the 429 said retry after %s (capacity %d, strikes %d); back exactly then: %+v, want allowed",
						round, d.RetryAfter, d.Capacity, d.Strikes, back)
				}
			}
		})
	}
}

func testRemainingExact(t *testing.T, newStore NewStore) {
	tests := []struct {
		name     string
		capacity int
		window   time.Duration
	}{
		{"10 per second", 10, time.Second},
		{"1000 per hour", 1000, time.Hour},
		{"7 per minute", 7, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := NewClock()
			l := NewLimiter(t, newStore(t, clock), clock, noPenalty)
			ctx := context.Background()
			if _, err := l.SetOverride(ctx, ratelimit.Override{Target: "rl-test", Capacity: tt.capacity, Window: tt.window}, 0); err != nil {
				t.Fatal(err)
			}
			var got, want []int
			for i := range 3 {
				d, err := l.Allow(ctx, ratelimit.Request{Limit: "rl-test", IP: "198.51.100.1"})
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, d.Remaining)
				want = append(want, tt.capacity-1-i)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("remaining on a fresh key (-want +got):\n%s", diff)
			}
		})
	}
}

func testMultiScope(t *testing.T, newStore NewStore) {
	clock := NewClock()
	l := NewLimiter(t, newStore(t, clock), clock, noPenalty)
	ctx := context.Background()
	type result struct {
		Allowed   bool
		Scope     ratelimit.Scope
		Remaining int
	}
	do := func(ip, user string) result {
		t.Helper()
		d, err := l.Allow(ctx, ratelimit.Request{Limit: "run", IP: ip, User: user})
		if err != nil {
			t.Fatal(err)
		}
		return result{d.Allowed, d.Scope, d.Remaining}
	}
	for i := range 10 {
		if diff := cmp.Diff(result{true, ratelimit.ScopeIP, 9 - i}, do("10.0.0.1", "u1")); diff != "" {
			t.Fatalf("request %d (-want +got):\n%s", i, diff)
		}
	}
	// The user's bucket denies; the second IP's bucket must not be spent.
	if diff := cmp.Diff(result{false, ratelimit.ScopeUser, 0}, do("10.0.0.2", "u1")); diff != "" {
		t.Errorf("same user, other IP (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(result{true, ratelimit.ScopeIP, 9}, do("10.0.0.2", "")); diff != "" {
		t.Errorf("other IP without user after a denied request (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(result{false, ratelimit.ScopeIP, 0}, do("10.0.0.1", "u2")); diff != "" {
		t.Errorf("first IP, other user (-want +got):\n%s", diff)
	}
	// u2's bucket was not spent by the request its IP denied.
	if diff := cmp.Diff(result{true, ratelimit.ScopeIP, 8}, do("10.0.0.2", "u2")); diff != "" {
		t.Errorf("other user after a denied request (-want +got):\n%s", diff)
	}
	d, err := l.Allow(ctx, ratelimit.Request{Limit: "secure-ping"})
	if code := core.ErrorCode(err); code != core.CodeInvalid {
		t.Errorf("secure-ping without user and tenant: code %q (decision %+v), want invalid", code, d)
	}
}

func testIPv6(t *testing.T, newStore NewStore) {
	clock := NewClock()
	l := NewLimiter(t, newStore(t, clock), clock, noPenalty)
	ctx := context.Background()
	var got []string
	for _, ip := range []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:2::3", "2001:db8:1:3::1", "::ffff:192.0.2.1"} {
		d, err := l.Allow(ctx, ratelimit.Request{Limit: "rl-test", IP: ip})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %v %d", d.Key(), d.Allowed, d.Remaining))
	}
	want := []string{
		"rl-test:ip:2001:db8:1:2::/64 true 2",
		"rl-test:ip:2001:db8:1:2::/64 true 1",
		"rl-test:ip:2001:db8:1:2::/64 true 0",
		"rl-test:ip:2001:db8:1:3::/64 true 2",
		"rl-test:ip:192.0.2.1 true 2",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("IPv6 clients share their /64 (-want +got):\n%s", diff)
	}
	if _, err := l.Allow(ctx, ratelimit.Request{Limit: "rl-test", IP: "not-an-ip"}); core.ErrorCode(err) != core.CodeInvalid {
		t.Errorf("malformed IP: err %v, want invalid", err)
	}
}

func testMostSpecific(t *testing.T, newStore NewStore) {
	clock := NewClock()
	l := NewLimiter(t, newStore(t, clock), clock, nil)
	ctx := context.Background()
	for _, o := range []ratelimit.Override{
		{Target: "rl-test", Capacity: 5, Window: time.Minute},
		{Target: "rl-test:ip", Capacity: 4, Window: time.Minute},
		{Target: "rl-test:ip:10.0.0.1", Capacity: 2, Window: time.Minute},
	} {
		if _, err := l.SetOverride(ctx, o, 0); err != nil {
			t.Fatal(err)
		}
	}
	capOf := func(ip string) int {
		t.Helper()
		d, err := l.Allow(ctx, ratelimit.Request{Limit: "rl-test", IP: ip})
		if err != nil {
			t.Fatal(err)
		}
		return d.Capacity
	}
	got := []int{capOf("10.0.0.1"), capOf("10.0.0.2")}
	if err := l.DeleteOverride(ctx, "rl-test:ip"); err != nil {
		t.Fatal(err)
	}
	got = append(got, capOf("10.0.0.3"), capOf("10.0.0.1"))
	if err := l.DeleteOverride(ctx, "rl-test:ip:10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	got = append(got, capOf("10.0.0.4"))
	if diff := cmp.Diff([]int{2, 4, 5, 2, 5}, got); diff != "" {
		t.Errorf("capacities (-want +got):\n%s", diff)
	}
}

func testOverrideAPI(t *testing.T, newStore NewStore) {
	clock := NewClock()
	l := NewLimiter(t, newStore(t, clock), clock, nil)
	ctx := context.Background()
	bad := []struct {
		name string
		o    ratelimit.Override
		ttl  time.Duration
	}{
		{"unknown limit", ratelimit.Override{Target: "nope", Capacity: 1, Window: time.Minute}, 0},
		{"scope the limit lacks", ratelimit.Override{Target: "secure-ping:ip", Capacity: 1, Window: time.Minute}, 0},
		{"unknown scope", ratelimit.Override{Target: "run:planet", Capacity: 1, Window: time.Minute}, 0},
		{"malformed IP", ratelimit.Override{Target: "run:ip:300.1.1.1", Capacity: 1, Window: time.Minute}, 0},
		{"empty identity", ratelimit.Override{Target: "run:ip:", Capacity: 1, Window: time.Minute}, 0},
		{"zero capacity", ratelimit.Override{Target: "run", Window: time.Minute}, 0},
		{"negative capacity", ratelimit.Override{Target: "run", Capacity: -1, Window: time.Minute}, 0},
		{"zero window", ratelimit.Override{Target: "run", Capacity: 1}, 0},
		{"negative ttl", ratelimit.Override{Target: "run", Capacity: 1, Window: time.Minute}, -time.Second},
		{"unknown mode", ratelimit.Override{Target: "run", Capacity: 1, Window: time.Minute, Mode: "loud"}, 0},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := l.SetOverride(ctx, tt.o, tt.ttl); core.ErrorCode(err) != core.CodeInvalid {
				t.Errorf("SetOverride: err %v, want code invalid", err)
			}
		})
	}
	o, err := l.SetOverride(ctx, ratelimit.Override{Target: "run:ip:2001:db8::5", Capacity: 7, Window: 30 * time.Second, Origin: "api"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := ratelimit.Override{Target: "run:ip:2001:db8::/64", Capacity: 7, Window: 30 * time.Second, Mode: ratelimit.ModeEnforce,
		Origin: "api", CreatedAt: clock.Now(), ExpiresAt: clock.Now().Add(time.Minute)}
	if diff := cmp.Diff(want, o); diff != "" {
		t.Errorf("SetOverride (-want +got):\n%s", diff)
	}
	if err := l.RefreshOverrides(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]ratelimit.Override{want}, l.Overrides()); diff != "" {
		t.Errorf("Overrides after refresh (-want +got):\n%s", diff)
	}
	if err := l.DeleteOverride(ctx, "run:ip:2001:db8::/64"); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteOverride(ctx, "run:ip:2001:db8::/64"); core.ErrorCode(err) != core.CodeNotFound {
		t.Errorf("second delete: err %v, want not_found", err)
	}
	if err := l.DeleteOverride(ctx, "nope"); core.ErrorCode(err) != core.CodeInvalid {
		t.Errorf("delete of a bad target: err %v, want invalid", err)
	}
	if got := l.Overrides(); len(got) != 0 {
		t.Errorf("Overrides after delete = %v, want none", got)
	}
}

func testOverrideSeenByOthers(t *testing.T, newStore NewStore) {
	clock := NewClock()
	store := newStore(t, clock)
	a := NewLimiter(t, store, clock, nil)
	b := NewLimiter(t, store, clock, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	if _, err := a.SetOverride(ctx, ratelimit.Override{Target: "rl-test", Capacity: 9, Window: time.Minute}, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the other limiter sees the override", func() bool {
		o, ok := b.Override("rl-test:ip:10.0.0.1")
		return ok && o.Capacity == 9
	})
	if err := a.DeleteOverride(ctx, "rl-test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the other limiter sees the deletion", func() bool {
		_, ok := b.Override("rl-test:ip:10.0.0.1")
		return !ok
	})
}

// waitFor polls cond for up to 5 s, a bound that proves progress, not speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testReset(t *testing.T, newStore NewStore) {
	clock := NewClock()
	l := NewLimiter(t, newStore(t, clock), clock, func(c *ratelimit.Config) { c.BanAfterStrikes = 2 })
	ctx := context.Background()
	req := ratelimit.Request{Limit: "rl-test", IP: "192.0.2.9"}
	var last ratelimit.Decision
	for range 5 {
		var err error
		if last, err = l.Allow(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if !last.Banned() {
		t.Fatalf("after 5 requests: %+v, want banned", last)
	}
	if err := l.Reset(ctx, "rl-test:ip:192.0.2.9"); err != nil {
		t.Fatal(err)
	}
	d, err := l.Allow(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Outcome{Allowed: true, Scope: ratelimit.ScopeIP, Capacity: 3, Remaining: 2}, OutcomeOf(d, clock.Now())); diff != "" {
		t.Errorf("after reset (-want +got):\n%s", diff)
	}
	for _, key := range []string{"rl-test", "rl-test:ip", "nope:ip:1.2.3.4", "rl-test:ip:bad"} {
		if err := l.Reset(ctx, key); core.ErrorCode(err) != core.CodeInvalid {
			t.Errorf("Reset(%q): err %v, want invalid", key, err)
		}
	}
}

func testSnapshot(t *testing.T, newStore NewStore) {
	clock := NewClock()
	l := NewLimiter(t, newStore(t, clock), clock, nil)
	ctx := context.Background()
	hit := func(ip string, n int) {
		for range n {
			if _, err := l.Allow(ctx, ratelimit.Request{Limit: "rl-test", IP: ip}); err != nil {
				t.Fatal(err)
			}
		}
	}
	hit("192.0.2.1", 1)
	clock.Advance(2 * time.Second)
	hit("192.0.2.2", 4) // one 429: a strike
	clock.Advance(2 * time.Second)
	hit("192.0.2.3", 2)
	if _, err := l.SetOverride(ctx, ratelimit.Override{Target: "run", Capacity: 3, Window: time.Minute}, 0); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	s, err := l.Snapshot(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	want := ratelimit.Snapshot{
		Buckets: []ratelimit.BucketState{
			{Key: "rl-test:ip:192.0.2.3", Capacity: 3, Remaining: 1, LastSeen: now.Add(-time.Second)},
			// One strike: the next request gets 3 × 0.5, 1.
			{Key: "rl-test:ip:192.0.2.2", Capacity: 1, Remaining: 0, Strikes: 1, LastSeen: now.Add(-3 * time.Second)},
		},
		Penalties: []ratelimit.BucketState{
			{Key: "rl-test:ip:192.0.2.2", Capacity: 1, Remaining: 0, Strikes: 1, LastSeen: now.Add(-3 * time.Second)},
		},
		PenalizedKeys: 1,
		Overrides:     []ratelimit.Override{{Target: "run", Capacity: 3, Window: time.Minute, Mode: ratelimit.ModeEnforce, CreatedAt: now.Add(-time.Second)}},
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("Snapshot (-want +got):\n%s", diff)
	}
	n, err := l.PenalizedKeys(ctx)
	if err != nil || n != 1 {
		t.Errorf("PenalizedKeys = %d, %v; want 1", n, err)
	}
}

// testSnapshotNext: a snapshot shows each key with the capacity and tokens
// left that its next request is decided with: strikes decay as they are
// read, and the capacity with them (review finding 5); a banned key shows
// its banned answer's; one whose ban is over, the full capacity.
func testSnapshotNext(t *testing.T, newStore NewStore) {
	clock := NewClock()
	l := NewLimiter(t, newStore(t, clock), clock, func(c *ratelimit.Config) { c.PenaltyDecay = 2 * sec; c.BanDuration = 2 * sec })
	ctx := context.Background()
	if _, err := l.SetOverride(ctx, ratelimit.Override{Target: "rl-test", Capacity: 8, Window: 8 * sec}, 0); err != nil {
		t.Fatal(err)
	}
	struck := ratelimit.Request{Limit: "rl-test", IP: "192.0.2.10"}
	banned := ratelimit.Request{Limit: "rl-test", IP: "192.0.2.11"}
	hit := func(req ratelimit.Request, n int) ratelimit.Decision {
		t.Helper()
		var d ratelimit.Decision
		for range n {
			var err error
			if d, err = l.Allow(ctx, req); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	hit(struck, 8+3)                        // 8 tokens, 3 strikes
	if d := hit(banned, 8+5); !d.Banned() { // 8 tokens, 4 strikes, the ban
		t.Fatalf("%+v, want banned", d)
	}
	type state struct {
		Capacity, Remaining, Strikes int
		BanFor                       time.Duration
	}
	states := func() map[string]state {
		t.Helper()
		s, err := l.Snapshot(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]state{}
		for _, b := range s.Buckets {
			st := state{Capacity: b.Capacity, Remaining: b.Remaining, Strikes: b.Strikes}
			if !b.BannedUntil.IsZero() {
				st.BanFor = b.BannedUntil.Sub(clock.Now())
			}
			out[b.Key] = st
		}
		return out
	}
	a, b := "rl-test:ip:192.0.2.10", "rl-test:ip:192.0.2.11"
	var elapsed time.Duration
	for _, tt := range []struct {
		at   time.Duration // since the requests
		want map[string]state
	}{
		// 3 strikes: 8 × 0.5³ = 1, the 8 tokens owed. Banned: nothing, at
		// the capacity the ban answers.
		{sec, map[string]state{a: {1, 0, 3, 0}, b: {1, 0, 0, sec}}},
		// 2 strikes decayed (one per 2s): 4, with 3 tokens owed. The ban
		// is over: all 8, 3 owed.
		{5 * sec, map[string]state{a: {4, 1, 1, 0}, b: {8, 5, 0, 0}}},
		// Every strike decayed: 8, 1.5 owed.
		{6500 * time.Millisecond, map[string]state{a: {8, 6, 0, 0}, b: {8, 6, 0, 0}}},
	} {
		clock.Advance(tt.at - elapsed)
		elapsed = tt.at
		if diff := cmp.Diff(tt.want, states()); diff != "" {
			t.Errorf("snapshot %s after (-want +got):\n%s", tt.at, diff)
		}
	}
	// The next request sees what the last snapshot showed, less its token.
	for _, req := range []ratelimit.Request{struck, banned} {
		d := hit(req, 1)
		if got := (state{Capacity: d.Capacity, Remaining: d.Remaining, Strikes: d.Strikes}); !d.Allowed || got != (state{8, 5, 0, 0}) {
			t.Errorf("%s: next request %+v, want allowed at capacity 8 with 5 left", d.Key(), d)
		}
	}
}

func testConcurrency(t *testing.T, newStore NewStore) {
	clock := NewClock() // frozen: no refill at all
	l := NewLimiter(t, newStore(t, clock), clock, nil)
	req := ratelimit.Request{Limit: "tenant-meta", IP: "203.0.113.50"}
	if got := Admitted(t, 64, 4, func(int) *ratelimit.Limiter { return l }, req); got != 60 {
		t.Errorf("64 goroutines × 4 requests admitted %d, want exactly the burst, 60", got)
	}
}

// Admitted has n goroutines each ask each times for req, goroutine i of
// the limiter limiter(i), and returns how many requests were admitted (an
// error fails t and ends its goroutine).
func Admitted(t *testing.T, n, each int, limiter func(i int) *ratelimit.Limiter, req ratelimit.Request) int64 {
	t.Helper()
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := limiter(i)
			for range each {
				d, err := l.Allow(context.Background(), req)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return admitted.Load()
}

// testDeleteExpiredOverride: the deletion of an expired override (a
// limiter's refresh, on what it read a while ago) removes only an override
// still expired when it runs; one set again meanwhile (a script renewing
// it as it ends) stays, and a missing one is no error.
func testDeleteExpiredOverride(t *testing.T, newStore NewStore) {
	clock := NewClock()
	s := newStore(t, clock)
	ctx := context.Background()
	now := clock.Now().Truncate(time.Millisecond)
	set := func(target string, expires time.Time) {
		t.Helper()
		o := ratelimit.Override{Target: target, Capacity: 3, Window: time.Minute, Mode: ratelimit.ModeEnforce, CreatedAt: now, ExpiresAt: expires}
		if err := s.SetOverride(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	set("rl-test:ip:192.0.2.1", now.Add(-time.Second)) // expired
	set("rl-test:ip:192.0.2.2", now.Add(time.Hour))    // renewed: in force
	set("rl-test:ip:192.0.2.3", time.Time{})           // no expiry
	for _, target := range []string{"rl-test:ip:192.0.2.1", "rl-test:ip:192.0.2.2", "rl-test:ip:192.0.2.3", "rl-test:ip:192.0.2.4"} {
		if err := s.DeleteExpiredOverride(ctx, target, now); err != nil {
			t.Fatalf("DeleteExpiredOverride(%s): %v", target, err)
		}
	}
	os, err := s.Overrides(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, o := range os {
		left = append(left, o.Target)
	}
	slices.Sort(left)
	if diff := cmp.Diff([]string{"rl-test:ip:192.0.2.2", "rl-test:ip:192.0.2.3"}, left); diff != "" {
		t.Errorf("overrides left (-want +got):\n%s", diff)
	}
}

// testRemoveExpiredOverride: removing an override past its end answers not
// found, as `limits get` no longer lists it (it answered "removed" while the
// store still held it), and deletes it from the store.
func testRemoveExpiredOverride(t *testing.T, newStore NewStore) {
	clock := NewClock()
	s := newStore(t, clock)
	l := NewLimiter(t, s, clock, nil)
	ctx := context.Background()
	const target = "rl-test:ip:192.0.2.7"
	if _, err := l.SetOverride(ctx, ratelimit.Override{Target: target, Capacity: 3, Window: time.Minute}, time.Second); err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * time.Second)
	if err := l.DeleteOverride(ctx, target); core.ErrorCode(err) != core.CodeNotFound {
		t.Errorf("removing the expired override: err %v, want not_found", err)
	}
	os, err := s.Overrides(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(os) != 0 {
		t.Errorf("the store still holds %v", os)
	}
	// One in force is removed as before.
	if _, err := l.SetOverride(ctx, ratelimit.Override{Target: target, Capacity: 3, Window: time.Minute}, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteOverride(ctx, target); err != nil {
		t.Errorf("removing the override in force: %v", err)
	}
}

// decision is what the tenant and global tests compare of a decision.
type decision struct {
	Allowed   bool
	Key       string
	Capacity  int
	Remaining int
	Strikes   int
	Banned    bool
}

// runDecisions returns, for the scope tests, do: l's decision of a "run"
// request of ip, user and tenant (a test failure on error); and check:
// what compared with what it wants.
func runDecisions(t *testing.T, l *ratelimit.Limiter) (do func(ip, user, tenant string) decision, check func(what string, want, got decision)) {
	do = func(ip, user, tenant string) decision {
		t.Helper()
		d, err := l.Allow(context.Background(), ratelimit.Request{Limit: "run", IP: ip, User: user, Tenant: tenant})
		if err != nil {
			t.Fatal(err)
		}
		return decisionOf(d)
	}
	check = func(what string, want, got decision) {
		t.Helper()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", what, diff)
		}
	}
	return do, check
}

func decisionOf(d ratelimit.Decision) decision {
	return decision{Allowed: d.Allowed, Key: d.Key(), Capacity: d.Capacity, Remaining: d.Remaining, Strikes: d.Strikes, Banned: d.Banned()}
}

// testTenantScope: a limit's tenant scope is in force only where an
// override targets it (limit:tenant for every tenant, limit:tenant:T for
// one), for requests whose tenant is known; it is all or nothing with the
// limit's own scopes, penalizes as they do, and is gone with its override.
// The limit's own override does not put it in force.
func testTenantScope(t *testing.T, newStore NewStore) {
	clock := NewClock()
	l := NewLimiter(t, newStore(t, clock), clock, func(c *ratelimit.Config) { c.BanAfterStrikes = 3; c.PenaltyDecay = time.Hour })
	ctx := context.Background()
	set := func(target string, capacity int) {
		t.Helper()
		if _, err := l.SetOverride(ctx, ratelimit.Override{Target: target, Capacity: capacity, Window: time.Minute}, 0); err != nil {
			t.Fatalf("SetOverride(%s): %v", target, err)
		}
	}
	do, check := runDecisions(t, l)

	set("run", 100) // the limit's own override: no tenant bucket
	check("a tenant's request under the limit's override", decision{true, "run:ip:10.0.0.1", 100, 99, 0, false}, do("10.0.0.1", "", "t1"))
	if err := l.DeleteOverride(ctx, "run"); err != nil {
		t.Fatal(err)
	}

	set("run:tenant", 2)
	check("t1, first", decision{true, "run:tenant:t1", 2, 1, 0, false}, do("10.0.0.2", "u2", "t1"))
	check("t1, second, from another IP and user", decision{true, "run:tenant:t1", 2, 0, 0, false}, do("10.0.0.3", "u3", "t1"))
	check("t1, third: the tenant's bucket refuses", decision{false, "run:tenant:t1", 2, 0, 1, false}, do("10.0.0.4", "u4", "t1"))
	// The refused request spent nothing of its IP and user.
	check("10.0.0.4 without a tenant", decision{true, "run:ip:10.0.0.4", 10, 9, 0, false}, do("10.0.0.4", "", ""))
	check("u4 without a tenant", decision{true, "run:user:u4", 10, 9, 0, false}, do("", "u4", ""))
	check("t2 has a bucket of its own", decision{true, "run:tenant:t2", 2, 1, 0, false}, do("10.0.0.6", "", "t2"))
	// A tenant's bucket is penalized as any other: strikes, then a ban.
	check("t1, strike 2", decision{false, "run:tenant:t1", 1, 0, 2, false}, do("10.0.0.7", "", "t1"))
	if got := do("10.0.0.8", "", "t1"); !got.Banned || got.Key != "run:tenant:t1" {
		t.Errorf("t1 at its third strike: %+v, want banned", got)
	}

	// A tenant's own override is more specific than the scope's.
	set("run:tenant:t3", 5)
	check("t3 under its own override", decision{true, "run:tenant:t3", 5, 4, 0, false}, do("10.0.0.9", "", "t3"))

	// Without the scope's override, only the tenant of a key override has
	// a tenant bucket.
	if err := l.DeleteOverride(ctx, "run:tenant"); err != nil {
		t.Fatal(err)
	}
	check("t1 once run:tenant is gone", decision{true, "run:ip:10.0.0.10", 10, 9, 0, false}, do("10.0.0.10", "", "t1"))
	check("t3, still under its own override", decision{true, "run:tenant:t3", 5, 3, 0, false}, do("10.0.0.11", "", "t3"))
	if err := l.DeleteOverride(ctx, "run:tenant:t3"); err != nil {
		t.Fatal(err)
	}
	check("t3 once its override is gone", decision{true, "run:ip:10.0.0.12", 10, 9, 0, false}, do("10.0.0.12", "", "t3"))

	// An override with a TTL puts the scope in force until it ends.
	if _, err := l.SetOverride(ctx, ratelimit.Override{Target: "run:tenant:t4", Capacity: 1, Window: time.Hour}, time.Minute); err != nil {
		t.Fatal(err)
	}
	check("t4 under a TTL'd override", decision{true, "run:tenant:t4", 1, 0, 0, false}, do("10.0.0.13", "", "t4"))
	clock.Advance(time.Minute)
	check("t4 once the override expired", decision{true, "run:ip:10.0.0.14", 10, 9, 0, false}, do("10.0.0.14", "", "t4"))
}

// testGlobalScope: an override of limit:global gives all the limit's
// requests one bucket, limit:global:all, that refuses without striking or
// banning (one client's excess would otherwise lock every client out); a
// request it refuses spends nothing of the other scopes; it can be reset,
// and is gone with its override.
func testGlobalScope(t *testing.T, newStore NewStore) {
	clock := NewClock()
	l := NewLimiter(t, newStore(t, clock), clock, func(c *ratelimit.Config) { c.BanAfterStrikes = 2 })
	ctx := context.Background()
	do, check := runDecisions(t, l)
	for _, bad := range []string{"run:global:other", "run:global:"} {
		if _, err := l.SetOverride(ctx, ratelimit.Override{Target: bad, Capacity: 3, Window: time.Minute}, 0); core.ErrorCode(err) != core.CodeInvalid {
			t.Errorf("SetOverride(%s): err %v, want invalid", bad, err)
		}
	}
	o, err := l.SetOverride(ctx, ratelimit.Override{Target: "run:global", Capacity: 3, Window: time.Minute}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if o.Target != "run:global" {
		t.Errorf("stored target %q, want run:global", o.Target)
	}
	if _, err := l.SetOverride(ctx, ratelimit.Override{Target: "run:ip", Capacity: 1, Window: time.Hour}, 0); err != nil {
		t.Fatal(err)
	}
	check("first client", decision{true, "run:ip:10.0.1.1", 1, 0, 0, false}, do("10.0.1.1", "", ""))
	check("second client", decision{true, "run:ip:10.0.1.2", 1, 0, 0, false}, do("10.0.1.2", "", ""))
	check("third client, with a user and a tenant", decision{true, "run:ip:10.0.1.3", 1, 0, 0, false}, do("10.0.1.3", "u3", "t3"))
	// The bucket is empty: every client is refused, never struck, never
	// banned, however often it is refused.
	for i := range 5 {
		check(fmt.Sprintf("refusal %d", i+1), decision{false, "run:global:all", 3, 0, 0, false}, do("10.0.1.9", "", ""))
	}
	d, err := l.Allow(ctx, ratelimit.Request{Limit: "run", IP: "10.0.1.10"})
	if err != nil {
		t.Fatal(err)
	}
	if d.RetryAfter != 20*time.Second {
		t.Errorf("Retry-After %s, want 20s (3 per minute, no strike)", d.RetryAfter)
	}
	clock.Advance(20 * time.Second)
	// 10.0.1.9 was refused five times and spent nothing of its IP's one token.
	check("a refused client, a token later", decision{true, "run:ip:10.0.1.9", 1, 0, 0, false}, do("10.0.1.9", "", ""))
	check("the next", decision{false, "run:global:all", 3, 0, 0, false}, do("10.0.1.11", "", ""))

	if err := l.Reset(ctx, "run:global:all"); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteOverride(ctx, "run:ip"); err != nil {
		t.Fatal(err)
	}
	check("after a reset", decision{true, "run:global:all", 3, 2, 0, false}, do("10.0.1.12", "", ""))
	// Every scope at once: ip, user, tenant and global.
	if _, err := l.SetOverride(ctx, ratelimit.Override{Target: "run:tenant", Capacity: 5, Window: time.Minute}, 0); err != nil {
		t.Fatal(err)
	}
	check("four scopes", decision{true, "run:global:all", 3, 1, 0, false}, do("10.0.1.13", "u13", "t13"))

	if err := l.DeleteOverride(ctx, "run:global"); err != nil {
		t.Fatal(err)
	}
	check("without the override", decision{true, "run:tenant:t13", 5, 3, 0, false}, do("10.0.1.14", "u14", "t13"))
	// The key's own target puts it in force as well (the bucket full
	// again a minute later).
	clock.Advance(time.Minute)
	if _, err := l.SetOverride(ctx, ratelimit.Override{Target: "run:global:all", Capacity: 2, Window: time.Minute}, 0); err != nil {
		t.Fatal(err)
	}
	check("under run:global:all", decision{true, "run:global:all", 2, 1, 0, false}, do("10.0.1.15", "", ""))
}
