package memstore_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/memstore"
)

// benchLimiter is a limiter on a memory store whose run limit (per IP, as
// the requests carry no user; GCRA with penalties and bans on) admits
// everything a benchmark throws at it.
func benchLimiter(b *testing.B) (*ratelimit.Limiter, *memstore.Store) {
	b.Helper()
	store := memstore.New(ratelimit.SystemClock{})
	cfg := ratelimit.DefaultConfig()
	cfg.RunBurst, cfg.RunPerMinute = 1_000_000_000, 20_000_000 // refills a token per 3 µs, exactly
	l, err := ratelimit.New(cfg, ratelimit.Deps{Store: store})
	if err != nil {
		b.Fatal(err)
	}
	return l, store
}

func ips(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
	}
	return out
}

func BenchmarkAllowOneKey(b *testing.B) {
	l, _ := benchLimiter(b)
	ctx := context.Background()
	req := ratelimit.Request{Limit: "run", IP: "203.0.113.7"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Allow(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAllowParallel(b *testing.B) {
	for _, n := range []int{1, 10_000, 100_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			l, _ := benchLimiter(b)
			reqs := make([]ratelimit.Request, n)
			for i, ip := range ips(n) {
				reqs[i] = ratelimit.Request{Limit: "run", IP: ip}
			}
			runParallel(b, l, reqs)
		})
	}
}

// runParallel decides reqs from parallel goroutines, each walking them in
// order from its own start, 7919 after the previous one's, after one
// decision for each (so that the keys are held).
func runParallel(b *testing.B, l *ratelimit.Limiter, reqs []ratelimit.Request) {
	ctx := context.Background()
	for _, r := range reqs {
		_, _ = l.Allow(ctx, r)
	}
	n := len(reqs)
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seq.Add(7919))
		for pb.Next() {
			i++
			if _, err := l.Allow(ctx, reqs[i%n]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkBytesPerKey reports the heap an idle key costs.
func BenchmarkBytesPerKey(b *testing.B) {
	const n = 100_000
	keys := ips(n)
	ctx := context.Background()
	var per float64
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		l, store := benchLimiter(b)
		for _, ip := range keys {
			_, _ = l.Allow(ctx, ratelimit.Request{Limit: "run", IP: ip})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if store.Len() != n {
			b.Fatalf("store holds %d keys, want %d", store.Len(), n)
		}
		per = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(l)
		runtime.KeepAlive(store)
	}
	b.ReportMetric(per, "bytes/key")
}

// BenchmarkAllowParallelTwoIdentities is BenchmarkAllowParallel's 10k-key
// shape for requests that carry a user as well as an address: two buckets
// a decision, both locked at once (the store's two-bucket path).
func BenchmarkAllowParallelTwoIdentities(b *testing.B) {
	l, _ := benchLimiter(b)
	reqs := make([]ratelimit.Request, 10_000)
	for i, ip := range ips(len(reqs)) {
		reqs[i] = ratelimit.Request{Limit: "run", IP: ip, User: fmt.Sprintf("user-%d", i)}
	}
	runParallel(b, l, reqs)
}

// liveStore is a store holding n keys that stay live for an hour (one
// token per hour, spent), as an override of 1 per 3600 s keeps them, each
// seen at one of the last 60 seconds.
func liveStore(b *testing.B, n int) (*memstore.Store, *ratelimit.Rules) {
	b.Helper()
	clock := &steppedClock{at: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	store := memstore.New(clock)
	rules := &ratelimit.Rules{PenaltyFactor: 0.5, DecayMicros: 60e6, BanAfter: 5, BanMicros: 60e6, BanMaxMicros: 3600e6, RepeatMicros: 3600e6}
	bs := []ratelimit.Bucket{{Capacity: 1, Interval: 3600e6, Window: 3600e6}}
	rs := make([]ratelimit.Result, 1)
	for i, ip := range ips(n) {
		if i%(n/60+1) == 0 {
			clock.at = clock.at.Add(time.Second)
		}
		bs[0].Key = []byte("tenant-meta:ip:" + ip)
		if err := store.Take(context.Background(), rules, bs, rs); err != nil {
			b.Fatal(err)
		}
	}
	return store, rules
}

// steppedClock is a clock a benchmark moves by hand.
type steppedClock struct{ at time.Time }

func (c *steppedClock) Now() time.Time { return c.at }

// BenchmarkSnapshot is one operator's poll of the busiest 50 buckets of a
// store of live keys: the walk `refrakt top` causes every second.
func BenchmarkSnapshot(b *testing.B) {
	for _, n := range []int{100_000, 500_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			store, rules := liveStore(b, n)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := store.Snapshot(ctx, rules, 50); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/key")
		})
	}
}
