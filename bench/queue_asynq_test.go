// Queue benchmarks: they measure refrakt's Redis job queue next to asynq
// (github.com/hibiken/asynq) with the shapes of asynq's own benchmarks, on
// one throwaway redis-server: asynq on DB 14, refrakt on DB 15.
//
//	cd bench && go test -run '^$' -bench 'EndToEnd' -benchtime 1x
//	cd bench && go test -run '^$' -bench 'Enqueue|FetchComplete' -benchtime 2s
//	cd bench && go test -run '^$' -bench 'RefraktPickupLatency' -benchtime 1000x

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
	"github.com/refrakt/refrakt/internal/redistest"
)

const (
	asynqDB   = 14
	refraktDB = 15
	e2eCount  = 100000 // asynq's BenchmarkEndToEndSimple
	e2eConc   = 10
)

// queuePrefetch is the Prefetch setting under test (0 = refrakt's default).
var queuePrefetch = 0

// server starts a throwaway redis-server for one benchmark; asynq's and
// refrakt's benchmarks each use a fresh one with the same settings.
func queueServer(b *testing.B) string {
	b.Helper()
	return redistest.Start(b).Addr()
}

func queueFlush(b *testing.B, addr string, db int) *redis.Client {
	b.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, DB: db, PoolSize: 64})
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		b.Fatal(err)
	}
	return rdb
}

// redisCPU returns the CPU seconds (user+sys) redis-server has used.
func redisCPU(b *testing.B, addr string) float64 {
	b.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	total := 0.0
	for _, line := range strings.Split(info, "\r\n") {
		for _, k := range []string{"used_cpu_user:", "used_cpu_sys:"} {
			if v, ok := strings.CutPrefix(line, k); ok {
				f, _ := strconv.ParseFloat(v, 64)
				total += f
			}
		}
	}
	return total
}

// makePayload is asynq's makeTask payload: {"data": n}.
func queuePayload(n int) []byte {
	p, _ := json.Marshal(map[string]int{"data": n})
	return p
}

// ---- asynq ----

func BenchmarkAsynqEndToEndSimple(b *testing.B) {
	addr := queueServer(b)
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		queueFlush(b, addr, asynqDB).Close()
		opt := asynq.RedisClientOpt{Addr: addr, DB: asynqDB}
		client := asynq.NewClient(opt)
		srv := asynq.NewServer(opt, asynq.Config{
			Concurrency:    e2eConc,
			RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Second },
			LogLevel:       asynq.FatalLevel,
		})
		for i := 0; i < e2eCount; i++ {
			if _, err := client.Enqueue(asynq.NewTask(fmt.Sprintf("task%d", i), queuePayload(i))); err != nil {
				b.Fatal(err)
			}
		}
		client.Close()
		var wg sync.WaitGroup
		wg.Add(e2eCount)
		cpu0 := redisCPU(b, addr)
		start := time.Now()
		b.StartTimer()
		_ = srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { wg.Done(); return nil }))
		wg.Wait()
		b.StopTimer()
		b.ReportMetric(float64(e2eCount)/time.Since(start).Seconds(), "jobs/s")
		b.ReportMetric(redisCPU(b, addr)-cpu0, "redis-cpu-s")
		srv.Shutdown()
		b.StartTimer()
	}
}

func BenchmarkAsynqEnqueue(b *testing.B) {
	addr := queueServer(b)
	queueFlush(b, addr, asynqDB).Close()
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: addr, DB: asynqDB})
	defer client.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := client.Enqueue(asynq.NewTask("task", queuePayload(i))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkAsynqEnqueueParallel is the closest asynq has to a batch enqueue
// (v0.26 has none): many goroutines enqueueing at once.
func BenchmarkAsynqEnqueueParallel(b *testing.B) {
	addr := queueServer(b)
	queueFlush(b, addr, asynqDB).Close()
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: addr, DB: asynqDB, PoolSize: 64})
	defer client.Close()
	b.SetParallelism(16)
	b.ResetTimer()
	var i atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.Enqueue(asynq.NewTask("task", queuePayload(int(i.Add(1))))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// ---- refrakt ----

func newRefraktQueue(b *testing.B, addr string, conc int, reg *queue.Registry) (*queue.Service, *redis.Client) {
	rdb := queueFlush(b, addr, refraktDB)
	svc := queue.NewService(queue.Deps{Broker: redisbroker.New(rdb, redisbroker.Options{}), Registry: reg}, queue.Config{Concurrency: conc, Prefetch: queuePrefetch})
	return svc, rdb
}

func BenchmarkRefraktEndToEndSimple(b *testing.B) {
	addr := queueServer(b)
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		var wg sync.WaitGroup
		reg := queue.NewRegistry()
		_ = reg.Register("task", queue.Handler{Run: func(context.Context, json.RawMessage) (json.RawMessage, error) {
			wg.Done()
			return nil, nil
		}})
		svc, rdb := newRefraktQueue(b, addr, e2eConc, reg)
		reqs := make([]queue.EnqueueRequest, 0, 1000)
		for i := 0; i < e2eCount; i++ {
			reqs = append(reqs, queue.EnqueueRequest{Type: "task", Payload: queuePayload(i)})
			if len(reqs) == cap(reqs) {
				if _, err := svc.EnqueueBatch(context.Background(), reqs, queue.SourceAPI); err != nil {
					b.Fatal(err)
				}
				reqs = reqs[:0]
			}
		}
		wg.Add(e2eCount)
		pool := queue.NewPool(svc)
		cpu0 := redisCPU(b, addr)
		start := time.Now()
		b.StartTimer()
		pool.Start()
		wg.Wait()
		b.StopTimer()
		b.ReportMetric(float64(e2eCount)/time.Since(start).Seconds(), "jobs/s")
		b.ReportMetric(redisCPU(b, addr)-cpu0, "redis-cpu-s")
		_ = pool.Shutdown(context.Background())
		rdb.Close()
		b.StartTimer()
	}
}

func BenchmarkRefraktEnqueue(b *testing.B) {
	addr := queueServer(b)
	svc, rdb := newRefraktQueue(b, addr, 0, nil)
	defer rdb.Close()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "echo", Payload: queuePayload(i)}, queue.SourceAPI); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkRefraktEnqueueBatch enqueues in batches of 100: one round trip
// (and one script) per batch.
func BenchmarkRefraktEnqueueBatch(b *testing.B) {
	addr := queueServer(b)
	svc, rdb := newRefraktQueue(b, addr, 0, nil)
	defer rdb.Close()
	ctx := context.Background()
	reqs := make([]queue.EnqueueRequest, 100)
	b.ResetTimer()
	for i := 0; i < b.N; i += len(reqs) {
		for j := range reqs {
			reqs[j] = queue.EnqueueRequest{Type: "echo", Payload: queuePayload(i + j)}
		}
		if _, err := svc.EnqueueBatch(ctx, reqs, queue.SourceAPI); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

func BenchmarkRefraktEnqueueParallel(b *testing.B) {
	addr := queueServer(b)
	svc, rdb := newRefraktQueue(b, addr, 0, nil)
	defer rdb.Close()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := svc.Enqueue(context.Background(), queue.EnqueueRequest{Type: "echo", Payload: queuePayload(1)}, queue.SourceAPI); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkRefraktFetchComplete takes b.N pending jobs and records their
// success, 10 at a time (a worker's batch), without running handlers.
func BenchmarkRefraktFetchComplete(b *testing.B) {
	addr := queueServer(b)
	svc, rdb := newRefraktQueue(b, addr, 0, nil)
	defer rdb.Close()
	ctx := context.Background()
	reqs := make([]queue.EnqueueRequest, 1000)
	for i := range reqs {
		reqs[i] = queue.EnqueueRequest{Type: "ping"}
	}
	for i := 0; i < b.N; i += len(reqs) {
		if _, err := svc.EnqueueBatch(ctx, reqs, queue.SourceAPI); err != nil {
			b.Fatal(err)
		}
	}
	br := svc.Broker()
	b.ResetTimer()
	for done := 0; done < b.N; {
		ls, err := br.Fetch(ctx, queue.FetchRequest{N: min(10, b.N-done), Lease: 30 * time.Second})
		if err != nil || len(ls) == 0 {
			b.Fatalf("fetch: %v (%d)", err, len(ls))
		}
		out := make([]queue.Outcome, len(ls))
		for i, l := range ls {
			out[i] = queue.Outcome{Ref: l.Ref(), Result: json.RawMessage(`"pong"`)}
		}
		if _, err := br.Finish(ctx, out); err != nil {
			b.Fatal(err)
		}
		done += len(ls)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkRefraktPickupLatency enqueues one job at a time on an idle
// queue and measures enqueue → handler start; reports p50 and p99.
func BenchmarkRefraktPickupLatency(b *testing.B) {
	addr := queueServer(b)
	started := make(chan time.Time, 1)
	reg := queue.NewRegistry()
	_ = reg.Register("probe", queue.Handler{Run: func(context.Context, json.RawMessage) (json.RawMessage, error) {
		started <- time.Now()
		return nil, nil
	}})
	svc, rdb := newRefraktQueue(b, addr, 4, reg)
	defer rdb.Close()
	pool := queue.NewPool(svc)
	pool.Start()
	defer pool.Shutdown(context.Background())
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		time.Sleep(5 * time.Millisecond) // let the pool go idle (blocked on the wake-up list)
		t0 := time.Now()
		if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "probe"}, queue.SourceAPI); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-started).Sub(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
}

// BenchmarkAsynqPickupLatency is the same probe on asynq.
func BenchmarkAsynqPickupLatency(b *testing.B) {
	addr := queueServer(b)
	queueFlush(b, addr, asynqDB).Close()
	opt := asynq.RedisClientOpt{Addr: addr, DB: asynqDB}
	client := asynq.NewClient(opt)
	defer client.Close()
	started := make(chan time.Time, 1)
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: 4, LogLevel: asynq.FatalLevel})
	_ = srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { started <- time.Now(); return nil }))
	defer srv.Shutdown()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		time.Sleep(5 * time.Millisecond)
		t0 := time.Now()
		if _, err := client.Enqueue(asynq.NewTask("probe", nil)); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-started).Sub(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
}
