// Package bench holds refrakt's reference benchmarks: refrakt next to the
// field's standard libraries, in one run, so the ratios are measured on the
// same machine at the same moment. It is a module of its own so that the
// main module never depends on the competitors.
package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/time/rate"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/memstore"
)

// benchCapacity is so large that every decision admits: the benchmarks
// measure the decision, not the refusal path.
const benchCapacity = 1_000_000_000

func benchIPs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
	}
	return out
}

// refraktMemory is a limiter on the memory store with penalties and bans on,
// whose "run" limit (per IP; the requests carry no user) admits everything.
func refraktMemory(b *testing.B) *ratelimit.Limiter {
	b.Helper()
	cfg := ratelimit.DefaultConfig()
	// A refill of a token per 3 µs (the premium tier's, 1 µs), the most a
	// bucket refills exactly, keeps the burst full under any load.
	cfg.RunBurst, cfg.RunPerMinute = benchCapacity, 20_000_000
	l, err := ratelimit.New(cfg, ratelimit.Deps{Store: memstore.New(ratelimit.SystemClock{})})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// xrateMap is the usual keyed use of golang.org/x/time/rate: one limiter per
// key in a sync.Map. The "xrate" runs use pre-built, pre-boxed keys (the
// strongest reference: no key building, no allocation); "xrate-keyed"
// builds each key from the request.
type xrateMap struct{ m sync.Map }

func (x *xrateMap) allow(key any) bool {
	v, ok := x.m.Load(key)
	if !ok {
		v, _ = x.m.LoadOrStore(key, rate.NewLimiter(rate.Limit(benchCapacity), benchCapacity))
	}
	return v.(*rate.Limiter).Allow()
}

// BenchmarkRatelimitMemory compares refrakt's memory store with x/time/rate
// on one key and in parallel on 1, 10k and 100k keys.
func BenchmarkRatelimitMemory(b *testing.B) {
	ctx := context.Background()
	b.Run("impl=xrate/keys=1/serial", func(b *testing.B) {
		var x xrateMap
		var key any = "run:ip:203.0.113.7"
		b.ReportAllocs()
		for b.Loop() {
			x.allow(key)
		}
	})
	b.Run("impl=refrakt/keys=1/serial", func(b *testing.B) {
		l := refraktMemory(b)
		req := ratelimit.Request{Limit: "run", IP: "203.0.113.7"}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := l.Allow(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, n := range []int{1, 10_000, 100_000} {
		ips := benchIPs(n)
		b.Run(fmt.Sprintf("impl=xrate/keys=%d/parallel", n), func(b *testing.B) { benchXrateKeys(b, ips, false) })
		// The same, building the key from the request as a middleware must
		// (refrakt builds and validates its keys on every decision too).
		b.Run(fmt.Sprintf("impl=xrate-keyed/keys=%d/parallel", n), func(b *testing.B) {
			var x xrateMap
			var seq atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seq.Add(7919))
				for pb.Next() {
					i++
					x.allow("run:ip:" + ips[i%n])
				}
			})
		})
		b.Run(fmt.Sprintf("impl=refrakt/keys=%d/parallel", n), func(b *testing.B) { benchRefraktKeys(b, ips, false) })
	}
}

// scramble spreads consecutive i over the key space (a multiplicative hash).
func scramble(i int) int { return int(uint64(i) * 0x9E3779B97F4A7C15 >> 40) }

// BenchmarkRatelimitMemoryRandom is BenchmarkRatelimitMemory's parallel
// shape with the keys visited in a scrambled order, as real clients arrive,
// instead of in order (which lets the hardware prefetcher run ahead of both
// implementations). Informational: the goal is measured in order.
func BenchmarkRatelimitMemoryRandom(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		ips := benchIPs(n)
		b.Run(fmt.Sprintf("impl=xrate/keys=%d", n), func(b *testing.B) { benchXrateKeys(b, ips, true) })
		b.Run(fmt.Sprintf("impl=refrakt/keys=%d", n), func(b *testing.B) { benchRefraktKeys(b, ips, true) })
	}
}

// benchXrateKeys runs parallel x/time/rate decisions over one pre-built,
// pre-boxed key per IP, in order (each goroutine from its own start, 7919
// keys after the previous one's) or scrambled.
func benchXrateKeys(b *testing.B, ips []string, random bool) {
	n := len(ips)
	var x xrateMap
	keys := make([]any, n)
	for i, ip := range ips {
		keys[i] = "run:ip:" + ip
		x.allow(keys[i])
	}
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seq.Add(7919))
		for pb.Next() {
			i++
			j := i
			if random {
				j = scramble(i)
			}
			x.allow(keys[j%n])
		}
	})
}

// benchRefraktKeys is benchXrateKeys for refrakt's memory limiter, which
// builds each key from the request.
func benchRefraktKeys(b *testing.B, ips []string, random bool) {
	n := len(ips)
	ctx := context.Background()
	l := refraktMemory(b)
	for _, ip := range ips {
		_, _ = l.Allow(ctx, ratelimit.Request{Limit: "run", IP: ip})
	}
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seq.Add(7919))
		for pb.Next() {
			i++
			j := i
			if random {
				j = scramble(i)
			}
			if _, err := l.Allow(ctx, ratelimit.Request{Limit: "run", IP: ips[j%n]}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
