package membroker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/fakeclock"
)

// TestHeapsHoldExactlyTheirJobs: through random enqueues, fetches, finishes,
// cancels, runs by id, requeues and ticks, every queue's scheduled and retry
// heaps hold exactly its jobs in that status, each entry knowing its place,
// in heap order, and promote hands them on when due, earliest first; its
// pending deque holds no more stale items than live ones.
func TestHeapsHoldExactlyTheirJobs(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(5) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 29))
			clock := fakeclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			b := New(Options{Clock: clock, HistoryLimit: 20})
			queues := []string{"a", "b"}
			var ids []string
			for step := range 5000 {
				switch op := rng.IntN(10); {
				case op < 3:
					j := &queue.Job{ID: fmt.Sprintf("j%05d", step), Queue: queues[rng.IntN(2)], Type: "ping",
						MaxRetries: rng.IntN(3), IntervalSeconds: rng.IntN(2) * 30}
					delay := time.Duration(rng.IntN(3)) * time.Duration(rng.IntN(60)) * time.Second
					if err := b.Enqueue(ctx, queue.NewJob{Job: j, Delay: delay}); err != nil {
						t.Fatal(err)
					}
					ids = append(ids, j.ID)
				case op < 5:
					ls, err := b.Fetch(ctx, queue.FetchRequest{N: 1 + rng.IntN(3), Lease: 20 * time.Second})
					if err != nil {
						t.Fatal(err)
					}
					var outs []queue.Outcome
					for _, l := range ls {
						o := queue.Outcome{Ref: l.Ref()}
						if rng.IntN(2) == 0 {
							o.Err, o.RetryIn = "x", time.Duration(rng.IntN(40))*time.Second
						}
						if rng.IntN(5) > 0 { // the others' leases expire
							outs = append(outs, o)
						}
					}
					if _, err := b.Finish(ctx, outs); err != nil {
						t.Fatal(err)
					}
				case op < 9 && len(ids) > 0:
					// Out of line, on any job: refused ones change nothing.
					id := ids[rng.IntN(len(ids))]
					switch rng.IntN(3) {
					case 0:
						_, _, _ = b.Cancel(ctx, id)
					case 1:
						if l, err := b.Claim(ctx, id, time.Minute); err == nil && rng.IntN(2) == 0 {
							_, _ = b.Finish(ctx, []queue.Outcome{{Ref: l.Ref()}})
						}
					case 2:
						_, _, _ = b.Requeue(ctx, id)
					}
				default:
					clock.Advance(time.Duration(rng.IntN(15)) * time.Second)
					checkPromotionOrder(t, b)
				}
				checkHeaps(t, b)
			}
		})
	}
}

// checkHeaps fails unless each queue's scheduled and retry heaps hold
// exactly its jobs of that status, each entry at its index, in heap order,
// and its pending deque one live item per pending job and at most as many
// stale ones.
func checkHeaps(t *testing.T, b *Broker) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, q := range b.queues {
		live := 0
		q.pending.each(func(it item) bool {
			if _, ok := b.live(it); ok {
				live++
			}
			return true
		})
		if pending := q.count[queue.StatusPending]; int64(live) != pending || int64(q.pending.len()) > 2*pending {
			t.Fatalf("queue %s: pending deque holds %d items, %d live, for %d jobs", name, q.pending.len(), live, pending)
		}
		for _, c := range []struct {
			st queue.Status
			h  timeHeap
		}{{queue.StatusScheduled, q.scheduled}, {queue.StatusFailed, q.retry}} {
			if int64(len(c.h)) != q.count[c.st] {
				t.Fatalf("queue %s: %s heap holds %d entries for %d jobs", name, c.st, len(c.h), q.count[c.st])
			}
			for i, e := range c.h {
				switch {
				case e.index != i:
					t.Fatalf("queue %s: %s heap: %s at %d thinks it is at %d", name, c.st, e.job.ID, i, e.index)
				case e.job.Status != c.st || e.job.Queue != name || b.jobs[e.job.ID] != e:
					t.Fatalf("queue %s: %s heap holds %s, %s in %s", name, c.st, e.job.ID, e.job.Status, e.job.Queue)
				case e.at != e.job.RunAt.UnixMilli():
					t.Fatalf("queue %s: %s heap: %s ordered by %d, runs at %d", name, c.st, e.job.ID, e.at, e.job.RunAt.UnixMilli())
				case i > 0 && c.h.Less(i, (i-1)/2):
					t.Fatalf("queue %s: %s heap: %s at %d is earlier than its parent", name, c.st, e.job.ID, i)
				}
			}
		}
		for id, e := range b.jobs {
			if e.index >= 0 && e.job.Status != queue.StatusScheduled && e.job.Status != queue.StatusFailed {
				t.Fatalf("%s is %s but thinks it is in a heap at %d", id, e.job.Status, e.index)
			}
		}
	}
}

// checkPromotionOrder ticks b and fails unless it made pending the jobs
// that were due, each queue's scheduled ones then its retries, each earliest
// first.
func checkPromotionOrder(t *testing.T, b *Broker) {
	t.Helper()
	b.mu.Lock()
	now := b.now().UnixMilli()
	want := map[string][]string{}
	due := map[string]bool{}
	for name, q := range b.queues {
		for _, h := range []timeHeap{q.scheduled, q.retry} {
			for _, e := range sortedCopy(h) {
				if e.at <= now {
					want[name] = append(want[name], e.job.ID)
					due[e.job.ID] = true
				}
			}
		}
	}
	b.mu.Unlock()
	r, err := b.Tick(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Scheduled+r.Retried != len(due) {
		t.Fatalf("tick promoted %d+%d jobs, %d were due", r.Scheduled, r.Retried, len(due))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, q := range b.queues {
		got := []string{}
		q.pending.each(func(it item) bool {
			if _, ok := b.live(it); ok && due[it.id] {
				got = append(got, it.id)
			}
			return true
		})
		if d := cmp.Diff(append([]string{}, want[name]...), got); d != "" {
			t.Fatalf("queue %s: promoted (-due in order +pending):\n%s", name, d)
		}
	}
}
