package redisbroker_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
)

// TestPauseHoldsAgainstRacingFetches: fetchers take jobs from a queue as
// fast as they can while it is paused; once SetPaused has answered, none
// takes another (the queue's started total, read then, never moves again),
// because the flag is read inside the dequeue script, not before it.
func TestPauseHoldsAgainstRacingFetches(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	const q = "race-pause"
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: "rp:"})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	jobs := make([]queue.NewJob, 5000)
	for i := range jobs {
		jobs[i] = queue.NewJob{Job: &queue.Job{ID: queue.NewID(), Queue: q, Type: "ping", Source: queue.SourceAPI}}
	}
	if err := b.Enqueue(ctx, jobs...); err != nil {
		t.Fatal(err)
	}
	var (
		stop    atomic.Bool
		fetched atomic.Int64
		wg      sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				ls, err := b.Fetch(ctx, queue.FetchRequest{Queues: []string{q}, N: 2, Lease: time.Minute})
				if err != nil {
					t.Errorf("Fetch: %v", err)
					return
				}
				fetched.Add(int64(len(ls)))
			}
		})
	}
	// Pause while the fetchers are taking jobs.
	for fetched.Load() < 100 {
		time.Sleep(time.Millisecond)
	}
	if _, err := b.SetPaused(ctx, q, true); err != nil {
		t.Fatal(err)
	}
	at, err := b.Stats(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the fetchers go on asking
	stop.Store(true)
	wg.Wait()
	end, err := b.Stats(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if end.Started != at.Started || !end.Paused {
		t.Errorf("started %d when the pause answered, %d at the end (paused %v): fetches took jobs of a paused queue",
			at.Started, end.Started, end.Paused)
	}
	if at.Pending == 0 {
		t.Fatalf("the fetchers drained the queue before the pause: the test proves nothing")
	}
	if got := fetched.Load(); got != end.Started {
		t.Errorf("fetchers got %d jobs, the queue counted %d started", got, end.Started)
	}
}
