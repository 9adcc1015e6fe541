package brokertest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// EndToEnd measures a pool draining b.N no-op jobs, enqueued in batches of
// 1000 before the clock starts, and reports jobs/s: asynq's
// BenchmarkEndToEndSimple shape. newService returns the service under test
// on reg, whose "noop" handler this sets up.
func EndToEnd(b *testing.B, newService func(reg *queue.Registry) *queue.Service) {
	var wg sync.WaitGroup
	reg := queue.NewRegistry()
	_ = reg.Register("noop", queue.Handler{Run: func(context.Context, json.RawMessage) (json.RawMessage, error) {
		wg.Done()
		return nil, nil
	}})
	svc := newService(reg)
	ctx := context.Background()
	reqs := make([]queue.EnqueueRequest, 0, 1000)
	for i := 0; i < b.N; i++ {
		reqs = append(reqs, queue.EnqueueRequest{Type: "noop"})
		if len(reqs) == cap(reqs) || i == b.N-1 {
			if _, err := svc.EnqueueBatch(ctx, reqs, queue.SourceAPI); err != nil {
				b.Fatal(err)
			}
			reqs = reqs[:0]
		}
	}
	wg.Add(b.N)
	p := queue.NewPool(svc)
	b.ResetTimer()
	p.Start()
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
	_ = p.Shutdown(ctx)
}
