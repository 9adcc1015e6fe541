package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/redisstore"
	"github.com/refrakt/refrakt/internal/core/ratelimit/storetest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestPeekWritesNothing: on Redis, with its TIME (no test clock), peeking
// at a key leaves the key's state, its TTL and the indexes as they were,
// and peeking at a key never seen creates no key; the time it answers is
// the server's, and the state it shows is what the next decision finds.
func TestPeekWritesNothing(t *testing.T) {
	srv := redistest.Start(t)
	rdb := newClient(t, srv)
	store := newStore(t, rdb, redisstore.Options{Prefix: "pk:"})
	l := storetest.NewLimiter(t, store, nil, nil)
	ctx := context.Background()
	req := ratelimit.Request{Limit: "rl-test", IP: "192.0.2.1"}
	for range 2 {
		if _, err := l.Allow(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	// dump is every key under the prefix with its serialized value.
	dump := func() map[string]string {
		t.Helper()
		keys, err := rdb.Keys(ctx, "pk:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, k := range keys {
			v, err := rdb.Dump(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			out[k] = v
		}
		return out
	}
	const key = "pk:rl:{rl-test:ip:192.0.2.1}"
	before, ttl := dump(), rdb.PTTL(ctx, key).Val()
	if _, ok := before[key]; !ok || ttl <= 0 {
		t.Fatalf("no state stored for the key: %v, TTL %s", before, ttl)
	}
	// A peek that renewed the TTL would put it back above what it was 50 ms
	// before: without the wait, one renewed to its full length read about
	// the same as ttl.
	time.Sleep(50 * time.Millisecond)
	var st ratelimit.KeyState
	for range 100 {
		var err error
		if st, err = l.Peek(ctx, "rl-test:ip:192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Peek(ctx, "rl-test:ip:198.51.100.7"); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(before, dump()); diff != "" {
		t.Errorf("keys after 200 peeks (-before +after):\n%s", diff)
	}
	if after := rdb.PTTL(ctx, key).Val(); after > ttl-40*time.Millisecond {
		t.Errorf("the key's TTL went from %s to %s: a peek renewed it", ttl, after)
	}
	if server := rdb.Time(ctx).Val(); st.Now.After(server) || server.Sub(st.Now) > 5*time.Second {
		t.Errorf("peek's now %s, the server's TIME %s", st.Now, server)
	}
	if st.Fresh || st.Remaining != 1 || st.Capacity != 3 || st.LastSeen.IsZero() {
		t.Errorf("peek after 2 requests of 3: %+v, want 1 token left of 3", st)
	}
	d, err := l.Allow(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allowed || d.Remaining != 0 {
		t.Errorf("the decision after the peeks: %+v, want the last token spent", d)
	}
}
