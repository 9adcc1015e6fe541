package memstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/memstore"
	"github.com/refrakt/refrakt/internal/core/ratelimit/storetest"
)

// TestPeekHoldsNoKey: peeking at keys the store does not hold adds none
// (a flood of lookups of made-up keys costs no memory), and peeking at a
// held key leaves its cell as it was, its last-seen time included.
func TestPeekHoldsNoKey(t *testing.T) {
	clock := storetest.NewClock()
	store := memstore.New(clock)
	l := storetest.NewLimiter(t, store, clock, nil)
	ctx := context.Background()
	if _, err := l.Allow(ctx, ratelimit.Request{Limit: "rl-test", IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	before, _, found, err := store.Peek(ctx, "rl-test:ip:192.0.2.1")
	if err != nil || !found {
		t.Fatalf("Peek of a held key: found %v, %v", found, err)
	}
	clock.Advance(5 * time.Second)
	for i := range 100 {
		if _, _, found, err := store.Peek(ctx, "rl-test:ip:198.51.100."+string(rune('0'+i%10))); found || err != nil {
			t.Fatalf("Peek of a key never seen: found %v, %v", found, err)
		}
		if _, err := l.Peek(ctx, "rl-test:ip:192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := store.Len(); n != 1 {
		t.Errorf("the store holds %d keys after peeks of unknown ones, want 1", n)
	}
	after, now, _, _ := store.Peek(ctx, "rl-test:ip:192.0.2.1")
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("the peeked cell changed (-before +after):\n%s", diff)
	}
	if want := clock.Now().UnixMicro(); now != want {
		t.Errorf("Peek's now %d, want the store's clock %d", now, want)
	}
}
