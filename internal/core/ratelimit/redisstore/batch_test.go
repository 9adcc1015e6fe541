package redisstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/storetest"
	"github.com/refrakt/refrakt/internal/redistest"
)

func testStore(t *testing.T, rdb redis.UniversalClient, o Options) *Store {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	s := New(rdb, o)
	t.Cleanup(func() { s.Close() })
	return s
}

// batchSteps is a sequence of single-bucket decisions on a few keys with
// small capacities, so that it spends, refuses, strikes, bans, decays and
// changes intervals; shadow and premium-like buckets share keys with others.
func batchSteps() []ratelimit.Bucket {
	var out []ratelimit.Bucket
	for i := range 200 {
		b := ratelimit.Bucket{
			Key:      fmt.Appendf(nil, "rl-test:ip:192.0.2.%d", i%5),
			Capacity: 3 + i%5,
			Interval: 20_000_000,
			Window:   60_000_000,
		}
		if i%7 == 0 {
			b.Interval = 10_000_000 // a changed interval rescales the debt
		}
		if i%5 == 4 {
			b.Shadow = true
		}
		out = append(out, b)
	}
	return out
}

// TestBatchedEqualsOneByOne decides the same sequence three ways: all in one
// script call, one request per round trip, and with ratelimit's Cell.Apply; the
// results must be the same, penalties and bans included.
func TestBatchedEqualsOneByOne(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	clock := storetest.NewClock()
	rules := ratelimit.DefaultConfig().Rules()
	rules.BanAfter = 3
	steps := batchSteps()
	ctx := context.Background()

	// Rounds of 40 decisions at one instant, then time moves on: within a
	// round, later decisions on a key see the earlier ones.
	const round = 40
	batched := testStore(t, rdb, Options{Prefix: "batched:", Clock: clock})
	single := testStore(t, rdb, Options{Prefix: "single:", Clock: clock})
	cells := map[string]ratelimit.Cell{}
	var denied, bans, shadowed int
	for start := 0; start < len(steps); start += round {
		bs := steps[start : start+round]
		var groups []*group
		for i := range bs {
			groups = append(groups, batched.newGroup(&rules, bs[i:i+1]))
		}
		if calls := batched.calls(groups); len(calls) != 1 {
			t.Fatalf("%d decisions went in %d calls, want 1", len(bs), len(calls))
		} else {
			putCalls(calls)
		}
		batched.exec(ctx, groups)
		for i := range bs {
			got := groups[i].ops[0]
			if got.err != nil {
				t.Fatalf("step %d batched: %v", start+i, got.err)
			}
			one := make([]ratelimit.Result, 1)
			if err := single.Take(ctx, &rules, bs[i:i+1], one); err != nil {
				t.Fatalf("step %d one by one: %v", start+i, err)
			}
			var want ratelimit.Result
			c := cells[string(bs[i].Key)]
			c.Apply(&bs[i], &rules, clock.Now().UnixMicro(), &want)
			cells[string(bs[i].Key)] = c
			if diff := cmp.Diff(want, got.res); diff != "" {
				t.Errorf("step %d batched vs Cell.Apply (-want +got):\n%s", start+i, diff)
			}
			denied += btoi(!want.Allowed)
			bans += btoi(want.NewBan)
			shadowed += btoi(want.Shadowed)
			if diff := cmp.Diff(want, one[0]); diff != "" {
				t.Errorf("step %d one by one vs Cell.Apply (-want +got):\n%s", start+i, diff)
			}
		}
		clock.Advance(7 * time.Second)
	}
	if denied == 0 || bans == 0 || shadowed == 0 {
		t.Errorf("the sequence denied %d, banned %d and shadowed %d times; it must do each", denied, bans, shadowed)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestOneKeyAcrossBatches hammers one key from many goroutines and two
// stores (two daemons): however the decisions are batched, exactly the
// capacity is admitted while the clock stands still.
func TestOneKeyAcrossBatches(t *testing.T) {
	srv := redistest.Start(t)
	clock := storetest.NewClock()
	rules := ratelimit.Rules{PenaltyFactor: 1}
	const capacity = 50
	var stores []*Store
	for range 2 {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 8})
		t.Cleanup(func() { rdb.Close() })
		stores = append(stores, testStore(t, rdb, Options{Clock: clock}))
	}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := []ratelimit.Bucket{{Key: []byte("rl-test:ip:198.51.100.1"), Capacity: capacity, Interval: 1_000_000, Window: 60_000_000}}
			rs := make([]ratelimit.Result, 1)
			for range 20 {
				if err := stores[g%2].Take(context.Background(), &rules, b, rs); err != nil {
					t.Error(err)
					return
				}
				if rs[0].Allowed {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got := admitted.Load(); got != capacity {
		t.Errorf("admitted %d of 640 decisions, want exactly the capacity, %d", got, capacity)
	}
}

// TestSingleClientOnClusterNode: a single-server client on a one-node
// Cluster (REDIS_CLUSTER=false) may not put keys of two slots in one call;
// the store notices the refusal, decides those keys again slot by slot, and
// keeps to one slot per call from then on.
func TestSingleClientOnClusterNode(t *testing.T) {
	c := redistest.StartCluster(t, 1)
	rdb := redis.NewClient(&redis.Options{Addr: c.Nodes()[0].Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	clock := storetest.NewClock()
	s := testStore(t, rdb, Options{Clock: clock})
	rules := ratelimit.DefaultConfig().Rules()
	bs := []ratelimit.Bucket{
		{Key: []byte("run:ip:203.0.113.7"), Capacity: 10, Interval: 2_000_000, Window: 60_000_000},
		{Key: []byte("run:user:u1"), Capacity: 10, Interval: 2_000_000, Window: 60_000_000},
	}
	if keySlot(s.bucketKey("run:ip:203.0.113.7")) == keySlot(s.bucketKey("run:user:u1")) {
		t.Fatal("the test's keys share a slot")
	}
	rs := make([]ratelimit.Result, 2)
	for i := range 3 {
		if err := s.Take(context.Background(), &rules, bs, rs); err != nil {
			t.Fatalf("decision %d: %v", i+1, err)
		}
		for j := range rs {
			if !rs[j].Allowed || rs[j].Remaining != 9-i {
				t.Errorf("decision %d, key %d: %+v, want allowed with %d left", i+1, j, rs[j], 9-i)
			}
		}
	}
	if s.multiSlot.Load() {
		t.Error("the store still puts keys of several slots in one call")
	}
}

// TestReplyForms decodes a reply mixing take.lua's short and full forms,
// and refuses one cut short or too long.
func TestReplyForms(t *testing.T) {
	f := func(b []byte, fs ...float64) []byte {
		for _, x := range fs {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
		}
		return b
	}
	const now = 1_700_000_000_000_000
	reply := f(nil, now)
	reply = f(append(reply, 1|flagShort), 5, 4, 20_000_000)
	reply = f(append(reply, 4), 3, 0, 60_000_000, 30_000_000, 0, now+30_000_000, now+30_000_000)
	s := &Store{penalized: map[string]int64{}} // read needs no server
	c := &call{ops: []*op{{key: "a"}, {key: "b"}}}
	if !c.read(s, string(reply)) {
		t.Fatal("read refused a well-formed reply")
	}
	want := []ratelimit.Result{
		{Allowed: true, Capacity: 5, Remaining: 4, ResetAfter: 20_000_000, Now: now},
		{Banned: true, Capacity: 3, ResetAfter: 60_000_000, RetryAfter: 30_000_000, BannedUntil: now + 30_000_000, Now: now},
	}
	for i, o := range c.ops {
		if diff := cmp.Diff(want[i], o.res); diff != "" {
			t.Errorf("op %d (-want +got):\n%s", i, diff)
		}
	}
	if c.ops[0].pend != 0 || c.ops[1].pend != now+30_000_000 || s.penalized["b"] != now+30_000_000 || len(s.penalized) != 1 {
		t.Errorf("penalty ends %d, %d, recorded %v", c.ops[0].pend, c.ops[1].pend, s.penalized)
	}
	for _, bad := range []string{string(reply[:len(reply)-1]), string(reply) + "x", string(reply[:8+shortReplySize])} {
		if c.read(s, bad) {
			t.Errorf("read accepted a reply of %d bytes", len(bad))
		}
	}
}
