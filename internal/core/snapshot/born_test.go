package snapshot_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/snapshot"
)

// TestNewQueueRates: the jobs that make a queue count in its enqueue rate
// (and in _other's, when it is folded there at once). A queue born in a
// burst of 10 jobs showed ENQ/S 0 while its DONE/S rose: its first sample
// was its totals then, with the burst in them.
func TestNewQueueRates(t *testing.T) {
	ctx := context.Background()
	svc, enqueue := manualService(t)
	rates := snapshot.NewRateTracker()
	t0 := time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC)
	build := func(at time.Duration) map[string]snapshot.Queue {
		t.Helper()
		s, err := snapshot.Build(ctx, snapshot.Sources{Jobs: svc, Rates: rates}, t0.Add(at))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]snapshot.Queue{}
		for _, q := range s.Queues {
			out[q.Name] = q
		}
		return out
	}
	enqueue("old", 1)
	build(0)
	enqueue("burst", 10)
	if q := build(2 * time.Second)["burst"]; q.EnqueueRate != 5 {
		t.Errorf("burst: enqueue rate %.2f/s after 10 jobs made it in 2 s, want 5", q.EnqueueRate)
	}

	// Past the cap: 99 queues busier than any new one; a queue made with
	// 3 jobs goes to _other at once.
	for i := range snapshot.MaxQueues {
		enqueue(fmt.Sprintf("q%03d", i), 20)
	}
	build(3 * time.Second)
	build(4 * time.Second)
	enqueue("zz-new", 3)
	got := build(5 * time.Second)
	if _, shown := got["zz-new"]; shown {
		t.Fatal("zz-new has its own row; the test wants it folded")
	}
	if o := got[queue.OtherQueues]; o.EnqueueRate <= 0 {
		t.Errorf("%s: enqueue rate %.2f/s after a new queue of its made with 3 jobs, want more than 0", queue.OtherQueues, o.EnqueueRate)
	}
}
