package memstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/memstore"
	"github.com/refrakt/refrakt/internal/core/ratelimit/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock ratelimit.Clock) ratelimit.Store {
		return memstore.New(clock)
	})
}

// TestIdleKeysEvicted checks that memory follows the active keys: a key
// whose bucket is full again and that has no strikes or ban is dropped by
// the shard sweeps; a penalized key stays until its penalty has decayed.
func TestIdleKeysEvicted(t *testing.T) {
	clock := storetest.NewClock()
	store := memstore.New(clock)
	l := storetest.NewLimiter(t, store, clock, func(c *ratelimit.Config) { c.PenaltyDecay = 2 * time.Minute })
	ctx := context.Background()
	for i := range 1000 {
		if _, err := l.Allow(ctx, ratelimit.Request{Limit: "rl-test", IP: fmt.Sprintf("10.0.%d.%d", i/256, i%256)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 { // the fourth is a 429: a strike
		if _, err := l.Allow(ctx, ratelimit.Request{Limit: "rl-test", IP: "192.0.2.1"}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := ratelimit.DefaultConfig()
	cfg.PenaltyDecay = 2 * time.Minute
	r := cfg.Rules()
	var got []int
	for _, step := range []time.Duration{0, 20 * time.Second, 40 * time.Second, 60 * time.Second} {
		clock.Advance(step)
		store.Sweep(&r)
		got = append(got, store.Len())
	}
	// t+0: all held; t+20s: the 1000 spent one token of three at 20s each,
	// so they are full again; t+60s: the struck key's bucket is full but
	// its strike lasts until t+120s (PENALTY_DECAY 2m); t+120s: gone too.
	if diff := cmp.Diff([]int{1001, 1, 1, 0}, got); diff != "" {
		t.Errorf("keys held after sweeps (-want +got):\n%s", diff)
	}
}

// TestRepeatedKeyRefused: a request naming one bucket twice (the limiter
// never builds one) is refused at once; locking its slot twice would wait
// forever.
func TestRepeatedKeyRefused(t *testing.T) {
	store := memstore.New(storetest.NewClock())
	cfg := ratelimit.DefaultConfig()
	r := cfg.Rules()
	b := ratelimit.Bucket{Key: []byte("rl-test:ip:192.0.2.1"), Capacity: 3, Interval: 20_000_000, Window: 60_000_000}
	bs := []ratelimit.Bucket{b, {Key: []byte("rl-test:user:u1"), Capacity: 3, Interval: 20_000_000, Window: 60_000_000}, b}
	done := make(chan error, 1)
	go func() { done <- store.Take(context.Background(), &r, bs, make([]ratelimit.Result, len(bs))) }()
	select {
	case err := <-done:
		if core.ErrorCode(err) != core.CodeInvalid {
			t.Fatalf("Take with a key twice: %v, want an invalid-request error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Take with a key twice did not return")
	}
}
