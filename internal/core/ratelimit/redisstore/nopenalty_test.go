package redisstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/storetest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestNoPenaltyEqualsApply decides requests of one and two buckets, some of
// them NoPenalty (the global scope's) and some shadow, with take.lua and
// with Cell.Apply under the memory store's all-or-nothing rule: the results
// must be the same. A NoPenalty bucket refuses without striking or banning
// even where the same key was struck before under another policy.
func TestNoPenaltyEqualsApply(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	clock := storetest.NewClock()
	rules := ratelimit.DefaultConfig().Rules()
	rules.BanAfter = 3
	s := testStore(t, rdb, Options{Clock: clock})
	ctx := context.Background()
	cells := map[string]ratelimit.Cell{}
	var refusedCalm, struck int
	for i := range 300 {
		bs := []ratelimit.Bucket{{
			Key:       fmt.Appendf(nil, "run:global:all%d", i%3),
			Capacity:  2 + i%3,
			Interval:  20_000_000,
			Window:    60_000_000,
			NoPenalty: i%4 != 3, // now and then the same key penalizes
			Shadow:    i%11 == 10,
		}}
		if i%2 == 0 {
			bs = append(bs, ratelimit.Bucket{Key: fmt.Appendf(nil, "run:ip:192.0.2.%d", i%5), Capacity: 4, Interval: 15_000_000, Window: 60_000_000})
		}
		got := make([]ratelimit.Result, len(bs))
		if err := s.Take(ctx, &rules, bs, got); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		now := clock.Now().UnixMicro()
		want := make([]ratelimit.Result, len(bs))
		prev, next := make([]ratelimit.Cell, len(bs)), make([]ratelimit.Cell, len(bs))
		denied := false
		for j := range bs {
			prev[j] = cells[string(bs[j].Key)]
			next[j] = prev[j]
			next[j].Apply(&bs[j], &rules, now, &want[j])
			denied = denied || !want[j].Allowed
		}
		for j := range bs {
			if !denied || !want[j].Allowed {
				cells[string(bs[j].Key)] = next[j]
			} else if !want[j].Shadowed {
				// Given back: the store answers the token unspent.
				want[j].Remaining = min(want[j].Remaining+1, want[j].Capacity)
			}
			if !want[j].Allowed && bs[j].NoPenalty && !want[j].Banned {
				refusedCalm++
				if had := prev[j].StrikesAt(&rules, now); want[j].Strikes > had || want[j].NewBan {
					t.Fatalf("step %d: a NoPenalty bucket refused with %d strikes (%d before), new ban %v", i, want[j].Strikes, had, want[j].NewBan)
				}
			}
			struck += btoi(!want[j].Allowed && want[j].Strikes > 0)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("step %d: take.lua vs Cell.Apply (-want +got):\n%s", i, diff)
		}
		if i%4 == 3 {
			clock.Advance(9 * time.Second)
		}
	}
	if refusedCalm == 0 || struck == 0 {
		t.Errorf("the sequence refused %d times without a penalty and struck %d times; it must do both", refusedCalm, struck)
	}
}
