package redisstore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/redisstore"
	"github.com/refrakt/refrakt/internal/core/ratelimit/storetest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// newClusterClient returns a cluster client of c, closed when the test ends.
func newClusterClient(t testing.TB, c *redistest.Cluster) *redis.ClusterClient {
	t.Helper()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Seeds(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// TestCluster runs the store's cluster checks on one Redis Cluster of three
// masters, emptied before each.
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	tests := []struct {
		name string
		fn   func(*testing.T, *redistest.Cluster)
	}{
		{"Conformance", testClusterConformance},
		{"KeysSpreadAndGlobal", testClusterKeysSpreadAndGlobal},
		{"BracesInIdentity", testClusterBracesInIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.Flush(t)
			tt.fn(t, c)
		})
	}
}

// testClusterConformance runs the whole store suite on the cluster: every
// script call stays in one slot, the indexes and the override hash are keys
// of their own, and the override channel reaches every node's subscribers.
func testClusterConformance(t *testing.T, c *redistest.Cluster) {
	rdb := newClusterClient(t, c)
	last := ""
	storetest.Run(t, func(t *testing.T, clock ratelimit.Clock) ratelimit.Store {
		// A test may build several stores (daemons) on one Redis: flush
		// only when a new test starts.
		if t.Name() != last {
			c.Flush(t)
			last = t.Name()
		}
		return newStore(t, rdb, redisstore.Options{Clock: clock, Timeout: 5 * time.Second})
	})
}

// testClusterKeysSpreadAndGlobal hammers many keys from three stores (three
// daemons, each with its own cluster client) and checks that the keys live
// on every master, that each key admitted exactly its burst across the
// three, and that the busiest-buckets snapshot, read from its index key,
// sees keys of every node.
func testClusterKeysSpreadAndGlobal(t *testing.T, c *redistest.Cluster) {
	clock := storetest.NewClock()
	var limiters []*ratelimit.Limiter
	var stores []*redisstore.Store
	for range 3 {
		s := newStore(t, newClusterClient(t, c), redisstore.Options{Clock: clock, Timeout: 5 * time.Second})
		stores = append(stores, s)
		limiters = append(limiters, storetest.NewLimiter(t, s, clock, nil))
	}
	const ips = 24
	admitted := make([]atomic.Int64, ips)
	var wg sync.WaitGroup
	for g := range 48 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 * ips {
				ip := (g + i) % ips
				d, err := limiters[(g+i)%3].Allow(context.Background(), ratelimit.Request{Limit: "rl-test", IP: fmt.Sprintf("198.51.100.%d", ip)})
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					admitted[ip].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	perNode := map[string]int{}
	for ip := range ips {
		if got := admitted[ip].Load(); got != 3 {
			t.Errorf("198.51.100.%d: admitted %d across three stores, want exactly the burst, 3", ip, got)
		}
		perNode[c.MasterFor(fmt.Sprintf("refrakt:rl:{rl-test:ip:198.51.100.%d}", ip)).Addr()]++
	}
	if len(perNode) != 3 {
		t.Errorf("the %d keys live on %d masters, want all 3: %v", ips, len(perNode), perNode)
	}
	snap, err := stores[0].Snapshot(context.Background(), &ratelimit.Rules{PenaltyFactor: 0.5, BanAfter: 5}, ips)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, b := range snap.Recent {
		seen[c.MasterFor("refrakt:rl:{"+b.Key+"}").Addr()] = true
	}
	if len(snap.Recent) != ips || len(seen) != 3 {
		t.Errorf("snapshot lists %d buckets on %d masters, want %d on 3", len(snap.Recent), len(seen), ips)
	}
}

// testClusterBracesInIdentity: a user id may hold "}", which ends the hash
// tag of its bucket's Redis key early. Two keys of one request that would
// share a slot by their whole names but not by their real tags must still
// go in separate script calls, or the cluster refuses the call (CROSSSLOT).
func testClusterBracesInIdentity(t *testing.T, c *redistest.Cluster) {
	const ipKey = "run:ip:203.0.113.7"
	user := ""
	for i := 0; user == "" && i < 1<<22; i++ {
		u := fmt.Sprintf("u%d}x", i)
		if redistest.KeySlot("run:user:"+u) == redistest.KeySlot(ipKey) &&
			redistest.KeySlot("refrakt:rl:{run:user:"+u+"}") != redistest.KeySlot("refrakt:rl:{"+ipKey+"}") {
			user = u
		}
	}
	if user == "" {
		t.Fatal("found no user id whose bucket key collides with " + ipKey)
	}
	clock := storetest.NewClock()
	l := storetest.NewLimiter(t, newStore(t, newClusterClient(t, c), redisstore.Options{Clock: clock, Timeout: 5 * time.Second}), clock, nil)
	for i := range 3 {
		d, err := l.Allow(context.Background(), ratelimit.Request{Limit: "run", IP: "203.0.113.7", User: user})
		if err != nil {
			t.Fatalf("request %d of ip and user %q: %v", i+1, user, err)
		}
		if want := 9 - i; !d.Allowed || d.Remaining != want {
			t.Errorf("request %d: allowed %v, remaining %d, want allowed with %d left", i+1, d.Allowed, d.Remaining, want)
		}
	}
}
