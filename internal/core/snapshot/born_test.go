package snapshot_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/snapshot"
)

// TestNewQueueRates: the jobs that make a queue count in its enqueue rate
// (and in _other's, when it is folded there at once). A queue born in a
// burst of 10 jobs showed ENQ/S 0 while its DONE/S rose: its first sample
// was its totals then, with the burst in them.
func TestNewQueueRates(t *testing.T) {
	svc, enqueue := manualService(t)
	build := builder(t, svc)
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

// TestNewQueueRatesOverTheWindow (review metrics29 LOW 3): a queue made
// since the previous snapshot has its rates over the last minute, as any
// other queue: a burst of 30 jobs made and run in it showed 10/s three
// seconds later (its rates were over the time since that snapshot), 1/s
// after 30 s, where every other queue and Prometheus said 0.5/s. In the
// tracker's first minute, when the other queues' rates are over the time
// since it began, so are a new queue's.
func TestNewQueueRatesOverTheWindow(t *testing.T) {
	ctx := context.Background()
	svc, enqueue := manualService(t)
	build := builder(t, svc)
	burst := func(q string, n int) {
		t.Helper()
		enqueue(q, n)
		for range n {
			if _, err := svc.RunNext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(q snapshot.Queue, when string, want float64) {
		t.Helper()
		if diff := cmp.Diff([]float64{want, want}, []float64{q.EnqueueRate, q.DoneRate}); diff != "" {
			t.Errorf("%s %s: enqueue and done rates (-want +got)\n%s", q.Name, when, diff)
		}
	}

	enqueue("old", 1)
	build(0)
	build(20 * time.Second)
	burst("early", 30)
	check(build(23 * time.Second)["early"], "made in the tracker's first 23 s", 30.0/23)

	for at := 30 * time.Second; at <= 2*time.Minute; at += 30 * time.Second {
		build(at)
	}
	burst("late", 30)
	check(build(2*time.Minute + 3*time.Second)["late"], "3 s after the snapshot before it", 0.5)
	check(build(2*time.Minute + 30*time.Second)["late"], "30 s after the snapshot before it", 0.5)
	check(build(3*time.Minute + 5*time.Second)["late"], "a minute after the burst", 0)
}

// builder returns a function that builds a snapshot of svc's queues at
// a time after a fixed start, with one rate tracker across its calls, and
// returns its queues by name.
func builder(t *testing.T, svc *queue.Service) func(at time.Duration) map[string]snapshot.Queue {
	rates := snapshot.NewRateTracker()
	t0 := time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC)
	return func(at time.Duration) map[string]snapshot.Queue {
		t.Helper()
		s, err := snapshot.Build(context.Background(), snapshot.Sources{Jobs: svc, Rates: rates}, t0.Add(at))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]snapshot.Queue{}
		for _, q := range s.Queues {
			out[q.Name] = q
		}
		return out
	}
}
