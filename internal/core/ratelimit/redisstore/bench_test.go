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
	"github.com/refrakt/refrakt/internal/core/ratelimit/memstore"
	"github.com/refrakt/refrakt/internal/core/ratelimit/redisstore"
	"github.com/refrakt/refrakt/internal/core/ratelimit/storetest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// BenchmarkAllow measures decisions through a full limiter on the Redis
// store (as the daemon builds it) at 1, 8 and 32 concurrent callers over 1000
// keys. bench/ compares the same with redis_rate.
func BenchmarkAllow(b *testing.B) {
	srv := redistest.Start(b)
	ips := make([]string, 1000)
	for i := range ips {
		ips[i] = fmt.Sprintf("10.0.%d.%d", i/256, i%256)
	}
	ctx := context.Background()
	for _, callers := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 64, ContextTimeoutEnabled: true})
			defer rdb.Close()
			// Generous timeouts: a loaded machine must not make the limiter
			// fall back to its local store, or the figures are not Redis's.
			store := redisstore.New(rdb, redisstore.Options{Timeout: 10 * time.Second})
			defer store.Close()
			cfg := ratelimit.DefaultConfig()
			cfg.BackendTimeout = 10 * time.Second
			l, err := ratelimit.New(cfg, ratelimit.Deps{Store: store, Local: memstore.New(ratelimit.SystemClock{})})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := l.SetOverride(ctx, ratelimit.Override{Target: "rl-test", Capacity: 1_000_000, Window: time.Second}, 0); err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1))
						if i > b.N {
							return
						}
						if _, err := l.Allow(ctx, ratelimit.Request{Limit: "rl-test", IP: ips[i%len(ips)]}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
			if l.Degraded() {
				b.Fatal("fell back to the local store")
			}
		})
	}
}

// BenchmarkRefreshOverrides measures a limiter's refresh of 10,000 stored
// overrides: when nothing changed (each daemon's every second: one HGET of
// the change count) and a full load (after a change: HSCAN of the hash).
func BenchmarkRefreshOverrides(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	pipe := rdb.Pipeline()
	for i := range 10_000 {
		pipe.HSet(ctx, "refrakt:rl:overrides", fmt.Sprintf("run:ip:10.%d.%d.%d", i>>16, i>>8&255, i&255),
			`{"capacity":5,"window_ms":60000,"mode":"enforce","created_at_ms":1764150000000}`)
	}
	pipe.HIncrBy(ctx, "refrakt:rl:overrides", "#version", 1)
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	for _, full := range []bool{false, true} {
		b.Run(fmt.Sprintf("full=%v", full), func(b *testing.B) {
			store := redisstore.New(rdb, redisstore.Options{})
			defer store.Close()
			clock := storetest.NewClock()
			l, err := ratelimit.New(ratelimit.DefaultConfig(), ratelimit.Deps{Store: store, Local: memstore.New(clock), Clock: clock})
			if err != nil {
				b.Fatal(err)
			}
			if err := l.RefreshOverrides(ctx); err != nil {
				b.Fatal(err)
			}
			if n := len(l.Overrides()); n != 10_000 {
				b.Fatalf("%d overrides loaded, want 10000", n)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if full {
					clock.Advance(time.Minute)
				}
				if err := l.RefreshOverrides(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
