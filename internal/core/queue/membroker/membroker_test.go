package membroker_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/brokertest"
	"github.com/refrakt/refrakt/internal/core/queue/membroker"
)

func TestConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, o brokertest.Options) queue.Broker {
		return membroker.New(membroker.Options{Clock: o.Clock, HistoryLimit: o.HistoryLimit})
	})
}

// BenchmarkEndToEnd: 10 workers draining no-op jobs from the memory broker,
// the pool's own cost with no round trips (redisbroker has the same on
// Redis).
func BenchmarkEndToEnd(b *testing.B) {
	brokertest.EndToEnd(b, func(reg *queue.Registry) *queue.Service {
		return queue.NewService(queue.Deps{Broker: membroker.New(membroker.Options{}), Registry: reg}, queue.Config{Concurrency: 10})
	})
}

// BenchmarkListScheduled lists the 50 earliest of n scheduled jobs (run_at
// random over a day): the cost of `GET /api/dev/jobs?status=scheduled&limit=50`,
// paid under the broker's lock, so enqueues wait for it.
func BenchmarkListScheduled(b *testing.B) {
	for _, n := range []int{100_000, 500_000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			br := scheduledBroker(b, n)
			ctx := context.Background()
			f := queue.Filter{Status: queue.StatusScheduled, Limit: 50}
			b.ResetTimer()
			for range b.N {
				jobs, err := br.List(ctx, f)
				if err != nil || len(jobs) != 50 {
					b.Fatalf("List: %d jobs, %v", len(jobs), err)
				}
			}
		})
	}
}

// BenchmarkCancelScheduled enqueues a job delayed a day and cancels it, among
// 100,000 scheduled jobs (run_at random over a day): a debouncing
// scheduler's loop. The cancel takes the job out of the heap, O(log n).
func BenchmarkCancelScheduled(b *testing.B) {
	br := scheduledBroker(b, 100_000)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		j := &queue.Job{ID: queue.NewID(), Queue: queue.DefaultQueue, Type: "ping", Source: queue.SourceAPI}
		if err := br.Enqueue(ctx, queue.NewJob{Job: j, Delay: 24 * time.Hour}); err != nil {
			b.Fatal(err)
		}
		if _, _, err := br.Cancel(ctx, j.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// scheduledBroker is a memory broker holding n scheduled jobs, their run_at
// random over a day (the same each run).
func scheduledBroker(b *testing.B, n int) *membroker.Broker {
	br := membroker.New(membroker.Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	batch := make([]queue.NewJob, 0, 1000)
	for i := range n {
		j := &queue.Job{ID: queue.NewID(), Queue: queue.DefaultQueue, Type: "ping", Source: queue.SourceAPI}
		batch = append(batch, queue.NewJob{Job: j, Delay: time.Minute + time.Duration(rng.Int64N(int64(24*time.Hour)))})
		if len(batch) == cap(batch) || i == n-1 {
			if err := br.Enqueue(context.Background(), batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	return br
}
