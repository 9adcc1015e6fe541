package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// testPeek: Limiter.Peek shows a key as its next decision finds it, and
// changes nothing. Two keys go through the same requests at the same times;
// before each of key A's, A is peeked 100 times (every answer the same, and
// each agreeing with the decision that follows), and B never is: the two
// keys' decisions, their snapshot entries and their last peek are the same.
// The requests walk through a fresh key, tokens spent, strikes given and
// decayed, a ban and its end, a changed policy (the debt rescaled), a shadow
// override and the forgiveness of sustained success.
func testPeek(t *testing.T, newStore NewStore) {
	clock := NewClock()
	l := NewLimiter(t, newStore(t, clock), clock, func(c *ratelimit.Config) {
		c.PenaltyDecay = 2 * sec
		c.BanDuration = 2 * sec
	})
	ctx := context.Background()
	a := ratelimit.Request{Limit: "rl-test", IP: "192.0.2.20"}
	b := ratelimit.Request{Limit: "rl-test", IP: "192.0.2.21"}
	keyA, keyB := "rl-test:ip:192.0.2.20", "rl-test:ip:192.0.2.21"

	peek := func(key string) ratelimit.KeyState {
		t.Helper()
		st, err := l.Peek(ctx, key)
		if err != nil {
			t.Fatalf("Peek(%s): %v", key, err)
		}
		return st
	}
	st := peek(keyA)
	want := ratelimit.KeyState{Key: keyA, Limit: "rl-test", Scope: ratelimit.ScopeIP, Identity: "192.0.2.20", InForce: true,
		Policy: ratelimit.Policy{Burst: 3, Rate: 3, Window: time.Minute}, Fresh: true,
		Peeked: ratelimit.Peeked{Capacity: 3, Remaining: 3}, Now: clock.Now().UTC()}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("a key never seen (-want +got):\n%s", diff)
	}

	// request decides A (peeked 100 times first) and B alike, and checks
	// that the peek said what A's decision then does.
	request := func(step string) {
		t.Helper()
		p := peek(keyA)
		for range 99 {
			if again := peek(keyA); !cmp.Equal(p, again) {
				t.Fatalf("%s: peeks differ (-first +later):\n%s", step, cmp.Diff(p, again))
			}
		}
		da, err := l.Allow(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		db, err := l.Allow(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		now := clock.Now()
		t.Logf("%s: peek %+v, decision allowed %v shadow %v remaining %d strikes %d", step, p.Peeked, da.Allowed, da.Shadow, da.Remaining, da.Strikes)
		if diff := cmp.Diff(OutcomeOf(db, now), OutcomeOf(da, now)); diff != "" {
			t.Errorf("%s: the peeked key decided otherwise (-unpeeked +peeked):\n%s", step, diff)
		}
		switch banned := time.UnixMicro(p.BannedUntil); {
		case p.BannedUntil > 0 && !p.Shadow:
			if !da.Banned() || !da.BannedUntil.Equal(banned) || da.Capacity != p.Capacity || da.RetryAfter != time.Duration(p.RetryAfter)*time.Microsecond {
				t.Errorf("%s: peek %+v, then the decision %+v; want it banned until %s at capacity %d, retry after %dµs",
					step, p.Peeked, da, banned, p.Capacity, p.RetryAfter)
			}
		case p.Remaining > 0:
			if !da.Allowed || da.Shadow || da.Remaining != p.Remaining-1 || da.Capacity != p.Capacity || da.Strikes != p.Strikes || p.RetryAfter != 0 {
				t.Errorf("%s: peek %+v, then the decision %+v; want it allowed at capacity %d with %d left, %d strikes",
					step, p.Peeked, da, p.Capacity, p.Remaining-1, p.Strikes)
			}
		case p.Shadow:
			if !da.Allowed || !da.Shadow || da.Capacity != p.Capacity {
				t.Errorf("%s: peek %+v (shadow), then the decision %+v; want it allowed as shadow_limited", step, p.Peeked, da)
			}
		default:
			if da.Allowed || p.RetryAfter <= 0 {
				t.Errorf("%s: peek %+v (no token), then the decision %+v; want it refused", step, p.Peeked, da)
			}
		}
	}
	requests := func(step string, n int) {
		t.Helper()
		for range n {
			request(step)
		}
	}
	override := func(o ratelimit.Override) {
		t.Helper()
		if _, err := l.SetOverride(ctx, o, 0); err != nil {
			t.Fatal(err)
		}
	}

	requests("the burst spent", 3)
	clock.Advance(sec)
	requests("refused: strikes", 3)
	clock.Advance(3 * sec) // a strike decays, and tokens refill
	requests("struck again, banned", 6)
	clock.Advance(sec)
	requests("banned", 2)
	clock.Advance(3 * sec) // the ban is over
	requests("after the ban", 1)
	override(ratelimit.Override{Target: "rl-test:ip", Capacity: 10, Window: 5 * sec}) // debt rescaled
	requests("a changed policy", 4)
	override(ratelimit.Override{Target: "rl-test:ip", Capacity: 1, Window: 5 * sec, Mode: ratelimit.ModeShadow})
	requests("a shadow override", 3)
	if err := l.DeleteOverride(ctx, "rl-test:ip"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(500 * time.Millisecond)
	requests("the limit's own policy again", 3)
	clock.Advance(2 * time.Minute) // full again, a whole window after the last strike
	requests("forgiven", 2)

	// Peeking between decisions moved nothing the store keeps either: the
	// last-seen times and the figures the snapshot shows are B's.
	clock.Advance(sec)
	for range 100 {
		peek(keyA)
	}
	snap, err := l.Snapshot(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]ratelimit.BucketState{}
	for _, s := range snap.Buckets {
		byKey[s.Key] = s
	}
	sa, sb := byKey[keyA], byKey[keyB]
	sa.Key = keyB
	if diff := cmp.Diff(sb, sa); diff != "" || sb.Key == "" {
		t.Errorf("snapshot of the peeked key (-unpeeked +peeked):\n%s", diff)
	}
	pa, pb := peek(keyA), peek(keyB)
	pa.Key, pa.Identity = pb.Key, pb.Identity
	if diff := cmp.Diff(pb, pa); diff != "" {
		t.Errorf("the keys' last peek (-unpeeked +peeked):\n%s", diff)
	}
	if pa.Fresh || pa.LastSeen.IsZero() || pa.LastBan.IsZero() {
		t.Errorf("peek after the decisions: %+v, want a key seen and banned before", pa)
	}

	// An hour later nothing of it matters: a fresh key again.
	clock.Advance(time.Hour)
	if st := peek(keyA); !st.Fresh || st.Remaining != 3 || st.Strikes != 0 || st.BannedUntil != 0 {
		t.Errorf("an hour later: %+v, want a fresh key with 3 tokens", st)
	}

	// A tenant scope no override puts in force has no bucket to show.
	if st := peek("rl-test:tenant:acme"); st.InForce {
		t.Errorf("rl-test:tenant:acme without an override: %+v, want not in force", st)
	}
	override(ratelimit.Override{Target: "rl-test:tenant", Capacity: 7, Window: time.Minute})
	if st := peek("rl-test:tenant:acme"); !st.InForce || st.Remaining != 7 || st.Override == nil || st.Override.Target != "rl-test:tenant" {
		t.Errorf("rl-test:tenant:acme under rl-test:tenant: %+v, want in force with 7 tokens", st)
	}

	// Not a key: refused as invalid.
	for _, bad := range []string{"", "rl-test", "rl-test:ip", "nope:ip:1.2.3.4", "rl-test:user:u1", "rl-test:ip:bad"} {
		if _, err := l.Peek(ctx, bad); core.ErrorCode(err) != core.CodeInvalid {
			t.Errorf("Peek(%q): %v, want %s", bad, err, core.CodeInvalid)
		}
	}
}
