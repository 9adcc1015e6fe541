package redisbroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
)

// TestBatchWakesEveryFetcher (fix40, simp40 MEDIUM-1): four daemons idle,
// each blocked on the wake-up list; one batch of four ready jobs of one
// queue. The script pushes one wake-up per ready job (up to the backlog),
// so every fetch gets a job (with one wake-up per queue, one did and the
// other three returned nothing after their 10 s wait: a miss shows as 0
// leases, not as a time).
func TestBatchWakesEveryFetcher(t *testing.T) {
	srv, admin := newClient(t)
	var svc *queue.Service
	batchWakesEveryFetcher(t, admin, func(i int) *redisbroker.Broker {
		b := wakeBroker(t, srv.Addr(), "bw:")
		if i == 0 {
			svc = queue.NewService(queue.Deps{Broker: b}, queue.Config{})
		}
		return b
	}, func() *queue.Service { return svc })
}

// batchWakesEveryFetcher blocks a fetch of each of four brokers (newBroker
// makes the i-th) on the wake-up list, waits until admin's server sees the
// four blocked, enqueues one batch of four ready jobs of one queue through
// svc, and asserts that each fetch got one of them.
func batchWakesEveryFetcher(t *testing.T, admin *redis.Client, newBroker func(i int) *redisbroker.Broker, svc func() *queue.Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var chs []chan wakeFetched
	for i := range 4 {
		b := newBroker(i)
		ch := make(chan wakeFetched, 1)
		go func() {
			ls, err := b.Fetch(ctx, queue.FetchRequest{N: 1, Lease: 10 * time.Second, Wait: 10 * time.Second})
			ch <- wakeFetched{ls, err}
		}()
		chs = append(chs, ch)
	}
	blockedInBLPOP(t, admin, 4)
	reqs := make([]queue.EnqueueRequest, 4)
	for i := range reqs {
		reqs[i] = queue.EnqueueRequest{Type: "ping", Queue: "b"}
	}
	if _, err := svc().EnqueueBatch(ctx, reqs, queue.SourceAPI); err != nil {
		t.Fatal(err)
	}
	for i, ch := range chs {
		if got := <-ch; got.err != nil || len(got.leases) != 1 {
			t.Errorf("fetcher %d: %d leases, %v; want one job of the batch", i+1, len(got.leases), got.err)
		}
	}
}

// TestSetNotStalledByManyForeignWakeUps (fix40, simp40 MEDIUM-2): A works
// queue a alone and is blocked, nobody else is; one batch holds a job in
// each of 100 other queues, then one of a. A pops each foreign wake-up,
// hands it back (pausing for the first three only), pops it again and
// drops it: two pops each, beyond the loop's bound, so the fetch takes its
// own queue once more before it returns, and gets a's job (before, it
// returned no lease after its 96 pops).
func TestSetNotStalledByManyForeignWakeUps(t *testing.T) {
	srv, admin := newClient(t)
	a := wakeBroker(t, srv.Addr(), "mf:")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fa := fetchAsync(ctx, a, "a")
	blockedInBLPOP(t, admin, 1)
	svc := queue.NewService(queue.Deps{Broker: a}, queue.Config{})
	var reqs []queue.EnqueueRequest
	for i := range 100 {
		reqs = append(reqs, queue.EnqueueRequest{Type: "ping", Queue: "f" + string(rune('a'+i/26)) + string(rune('a'+i%26))})
	}
	reqs = append(reqs, queue.EnqueueRequest{Type: "ping", Queue: "a"})
	jobs, err := svc.EnqueueBatch(ctx, reqs, queue.SourceAPI)
	if err != nil {
		t.Fatal(err)
	}
	want := jobs[len(jobs)-1].ID
	if got := <-fa; got.err != nil || len(got.leases) != 1 || got.leases[0].Job.ID != want {
		t.Errorf("A's fetch = %d leases, %v; want a's job %s", len(got.leases), got.err, want)
	}
}
