package redisstore_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/redisstore"
	"github.com/refrakt/refrakt/internal/redistest"
)

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
