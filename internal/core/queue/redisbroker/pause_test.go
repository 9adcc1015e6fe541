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

// TestStalePauseFlagDroppedWhenQueueMadeAgain (rvpause36 L1): a daemon of
// the previous version removes a paused queue with its own removeScript,
// which does not know the pause flag and leaves it, with nothing else of the
// queue. The first enqueue that makes the queue again drops it: the queue
// runs, as a queue removed by this version and made again does.
func TestStalePauseFlagDroppedWhenQueueMadeAgain(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	const q = "again"
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: "sp:"})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	// What the earlier removal leaves: the flag alone.
	if err := rdb.Set(ctx, "sp:q:{"+q+"}:paused", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Enqueue(ctx, queue.NewJob{Job: &queue.Job{ID: queue.NewID(), Queue: q, Type: "ping", Source: queue.SourceAPI}}); err != nil {
		t.Fatal(err)
	}
	st, err := b.Stats(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if st.Paused {
		t.Fatal("the queue made again is paused by the flag an earlier version's removal left")
	}
	ls, err := b.Fetch(ctx, queue.FetchRequest{Queues: []string{q}, N: 1, Lease: time.Minute})
	if err != nil || len(ls) != 1 {
		t.Fatalf("Fetch of the queue made again: %d jobs, %v; want its job", len(ls), err)
	}
	// A queue that exists keeps its pause through later enqueues.
	if _, err := b.SetPaused(ctx, q, true); err != nil {
		t.Fatal(err)
	}
	if err := b.Enqueue(ctx, queue.NewJob{Job: &queue.Job{ID: queue.NewID(), Queue: q, Type: "ping", Source: queue.SourceAPI}}); err != nil {
		t.Fatal(err)
	}
	if st, err := b.Stats(ctx, q); err != nil || !st.Paused {
		t.Fatalf("after an enqueue into the paused queue: paused %v, %v; want still paused", st.Paused, err)
	}
}

// TestResumeWakesEveryBlockedFetcher (rvpause36 L3): several fetchers (of
// one daemon or many) block on the wake-up list while a paused queue holds
// jobs; a resume wakes enough of them for every held job, not one, so none
// waits out its blocking fetch.
func TestResumeWakesEveryBlockedFetcher(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	const q, fetchers = "held", 4
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: "rw:"})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	jobs := make([]queue.NewJob, fetchers)
	for i := range jobs {
		jobs[i] = queue.NewJob{Job: &queue.Job{ID: queue.NewID(), Queue: q, Type: "ping", Source: queue.SourceAPI}}
	}
	if _, err := b.SetPaused(ctx, q, true); err == nil {
		t.Fatal("pausing a queue that does not exist yet answered no error")
	}
	if err := b.Enqueue(ctx, jobs[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetPaused(ctx, q, true); err != nil {
		t.Fatal(err)
	}
	if err := b.Enqueue(ctx, jobs[1:]...); err != nil {
		t.Fatal(err)
	}
	// Each fetcher takes one job and would otherwise block for a minute.
	const wait = time.Minute
	got := make(chan int, fetchers)
	for range fetchers {
		go func() {
			ls, err := b.Fetch(ctx, queue.FetchRequest{Queues: []string{q}, N: 1, Lease: time.Minute, Wait: wait})
			if err != nil {
				t.Errorf("Fetch: %v", err)
			}
			got <- len(ls)
		}()
	}
	// Let them all block (the wake-ups of the enqueues above, consumed by
	// the first tries, leave none behind: each fetcher finds the queue
	// paused and blocks).
	time.Sleep(1500 * time.Millisecond)
	select {
	case n := <-got:
		t.Fatalf("a fetcher returned %d jobs while the queue was paused", n)
	default:
	}
	if _, err := b.SetPaused(ctx, q, false); err != nil {
		t.Fatal(err)
	}
	// Far under the fetchers' minute: a fetcher not woken would wait it out.
	deadline := time.After(20 * time.Second)
	taken := 0
	for range fetchers {
		select {
		case n := <-got:
			taken += n
		case <-deadline:
			t.Fatalf("%d of %d fetchers still blocked 20s after the resume (a minute's wait): the resume woke too few", fetchers-taken, fetchers)
		}
	}
	if taken != fetchers {
		t.Errorf("the woken fetchers took %d jobs, want %d", taken, fetchers)
	}
}

// TestRemoveQueueDeletesPauseFlag (simp36 L1): removing a paused queue
// deletes its flag with its other keys, rather than leaving it for the
// queue's next first enqueue to drop: nothing of a removed queue stays.
func TestRemoveQueueDeletesPauseFlag(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	const q, flag = "gone", "rq:q:{gone}:paused"
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: "rq:"})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	id := queue.NewID()
	if err := b.Enqueue(ctx, queue.NewJob{Job: &queue.Job{ID: id, Queue: q, Type: "ping", Source: queue.SourceAPI}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Cancel(ctx, id); err != nil { // nothing left to run
		t.Fatal(err)
	}
	if _, err := b.SetPaused(ctx, q, true); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Exists(ctx, flag).Result(); err != nil || n != 1 {
		t.Fatalf("the pause flag %s: %d, %v; want it set", flag, n, err)
	}
	if _, err := b.RemoveQueue(ctx, q); err != nil {
		t.Fatal(err)
	}
	if keys, err := rdb.Keys(ctx, "rq:q:{gone}:*").Result(); err != nil || len(keys) != 0 {
		t.Errorf("keys of the removed queue left: %q, %v", keys, err)
	}
}
