package snapshot_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/membroker"
	"github.com/refrakt/refrakt/internal/core/snapshot"
)

// TestOtherQueuesRates: the entry that sums the queues beyond the busiest
// shows the rates of what those queues did, not of who is in it. A queue
// leaving it and coming back (its whole past of 500 jobs with it) showed
// as 500 jobs a second in _other, with none enqueued to any of its queues.
func TestOtherQueuesRates(t *testing.T) {
	ctx := context.Background()
	svc, enqueue := manualService(t)
	drain := func(q string, n int) {
		t.Helper()
		for range n {
			if _, err := svc.RunNext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range snapshot.MaxQueues {
		enqueue(fmt.Sprintf("q%03d", i), 2) // busier than "big" once it is drained
	}
	enqueue("big", 500)
	drain("big", 500)

	rates := snapshot.NewRateTracker()
	t0 := time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC)
	other := func(at time.Duration) snapshot.Queue {
		t.Helper()
		s, err := snapshot.Build(ctx, snapshot.Sources{Jobs: svc, Rates: rates}, t0.Add(at))
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range s.Queues {
			if q.Name == queue.OtherQueues {
				return q
			}
		}
		t.Fatalf("no %s in %d queues", queue.OtherQueues, len(s.Queues))
		return snapshot.Queue{}
	}
	other(0)
	enqueue("big", 3) // big is among the busiest now
	other(time.Second)
	drain("big", 3) // and folded again, its 503 jobs with it
	o := other(2 * time.Second)
	if o.EnqueueRate != 0 || o.DoneRate != 0 {
		t.Errorf("%s rates with nothing enqueued to or done by its queues while folded: enqueue %.1f/s, done %.1f/s", queue.OtherQueues, o.EnqueueRate, o.DoneRate)
	}
	enqueue("q099", 4) // one folded queue (the last by name) takes and does 4 jobs
	drain("q099", 4)
	o = other(4 * time.Second)
	if o.EnqueueRate != 1 {
		t.Errorf("%s enqueue rate after 4 jobs to one of its queues in 4 s: %.2f/s, want 1", queue.OtherQueues, o.EnqueueRate)
	}
}

// manualService is a queue service on the memory broker that runs a job
// only when asked, and enqueue(q, n) adds n ping jobs to queue q.
func manualService(t *testing.T) (*queue.Service, func(q string, n int)) {
	svc := queue.NewService(queue.Deps{Broker: membroker.New(membroker.Options{})}, queue.Config{Concurrency: queue.ManualMode})
	return svc, func(q string, n int) {
		t.Helper()
		for range n {
			if _, err := svc.Enqueue(context.Background(), queue.EnqueueRequest{Type: "ping", Queue: q}, queue.SourceAPI); err != nil {
				t.Fatal(err)
			}
		}
	}
}
