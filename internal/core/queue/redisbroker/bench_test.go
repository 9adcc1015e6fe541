package redisbroker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/brokertest"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
	"github.com/refrakt/refrakt/internal/redistest"
)

// The comparison with asynq lives in the bench module (bench/queue); these
// measure the broker alone on a throwaway redis-server.

func benchService(b *testing.B, conc int, reg *queue.Registry) *queue.Service {
	b.Helper()
	srv := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 32})
	b.Cleanup(func() { rdb.Close() })
	return queue.NewService(queue.Deps{Broker: redisbroker.New(rdb, redisbroker.Options{}), Registry: reg}, queue.Config{Concurrency: conc})
}

func BenchmarkEnqueue(b *testing.B) {
	svc := benchService(b, 0, nil)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "echo", Payload: json.RawMessage(`{"data":1}`)}, queue.SourceAPI); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

func BenchmarkEnqueueBatch100(b *testing.B) {
	svc := benchService(b, 0, nil)
	ctx := context.Background()
	reqs := make([]queue.EnqueueRequest, 100)
	for i := range reqs {
		reqs[i] = queue.EnqueueRequest{Type: "echo", Payload: json.RawMessage(`{"data":1}`)}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += len(reqs) {
		if _, err := svc.EnqueueBatch(ctx, reqs, queue.SourceAPI); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkFetchFinish takes pending jobs 10 at a time and records their
// success: the broker's share of running a job.
func BenchmarkFetchFinish(b *testing.B) {
	svc := benchService(b, 0, nil)
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

// BenchmarkEndToEnd runs b.N no-op jobs through a pool of 10 workers, in
// one queue alone and beside 99 other queues with no job ready.
func BenchmarkEndToEnd(b *testing.B) {
	for _, queues := range []int{1, 100} {
		b.Run(fmt.Sprintf("queues=%d", queues), func(b *testing.B) { endToEnd(b, queues) })
	}
}

func endToEnd(b *testing.B, queues int) {
	brokertest.EndToEnd(b, func(reg *queue.Registry) *queue.Service {
		svc := benchService(b, 10, reg)
		addIdleQueues(b, svc, queues-1)
		return svc
	})
}

// BenchmarkPickupLatency: enqueue → handler start on an idle queue, alone
// and beside 99 other queues that hold only scheduled jobs (none ready).
func BenchmarkPickupLatency(b *testing.B) {
	for _, queues := range []int{1, 100} {
		b.Run(fmt.Sprintf("queues=%d", queues), func(b *testing.B) { pickupLatency(b, queues) })
	}
}

func pickupLatency(b *testing.B, queues int) {
	started := make(chan time.Time, 1)
	reg := queue.NewRegistry()
	_ = reg.Register("probe", queue.Handler{Run: func(context.Context, json.RawMessage) (json.RawMessage, error) {
		started <- time.Now()
		return nil, nil
	}})
	svc := benchService(b, 4, reg)
	ctx := context.Background()
	addIdleQueues(b, svc, queues-1)
	p := queue.NewPool(svc)
	p.Start()
	defer p.Shutdown(context.Background())
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		time.Sleep(5 * time.Millisecond)
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

// addIdleQueues makes n more queues, each holding one job scheduled an hour
// ahead: they exist, and none has a job ready.
func addIdleQueues(tb testing.TB, svc *queue.Service, n int) {
	tb.Helper()
	for i := range n {
		enqueuePing(tb, svc, fmt.Sprintf("idle-%d", i), 3_600_000)
	}
}

// enqueuePing enqueues a ping in queue q, delayed by delayMS (0: ready).
func enqueuePing(tb testing.TB, svc *queue.Service, q string, delayMS int64) *queue.Job {
	tb.Helper()
	j, err := svc.Enqueue(context.Background(), queue.EnqueueRequest{Type: "ping", Queue: q, DelayMS: delayMS}, queue.SourceAPI)
	if err != nil {
		tb.Fatal(err)
	}
	return j
}
