package queue_test

import (
	"context"
	"testing"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/membroker"
)

// TestRunCounts: the runs of a service are counted by outcome (a job that
// fails with retries left: failed; on its last attempt: dead), and none is
// busy once they returned.
func TestRunCounts(t *testing.T) {
	s := queue.NewService(queue.Deps{Broker: membroker.New(membroker.Options{})}, queue.Config{Concurrency: queue.ManualMode})
	ctx := context.Background()
	zero := 0
	one := 1
	mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping"})
	mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping"})
	mustEnqueue(t, s, queue.EnqueueRequest{Type: "fail", MaxRetries: &one})
	mustEnqueue(t, s, queue.EnqueueRequest{Type: "fail", MaxRetries: &zero})
	for range 4 {
		if _, err := s.RunNext(ctx, ""); err != nil {
			t.Fatal(err)
		}
	}
	diff(t, "run counts", queue.RunCounts{Succeeded: 2, Failed: 1, Dead: 1}, s.RunCounts())
}
