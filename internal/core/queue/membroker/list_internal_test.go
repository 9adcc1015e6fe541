package membroker

import (
	"container/heap"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/fakeclock"
)

// TestEarliestMatchesSort: walking a heap with earliest visits its entries in
// the order a full sort gives, and stops when told, on random heaps of many
// sizes with tied times and repeated ids.
func TestEarliestMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for _, n := range []int{0, 1, 2, 3, 4, 7, 8, 9, 31, 100, 1000, 5000} {
		for round := range 5 {
			t.Run(fmt.Sprintf("n=%d/%d", n, round), func(t *testing.T) {
				var h timeHeap
				for range n + n/4 {
					heap.Push(&h, &entry{job: queue.Job{ID: fmt.Sprintf("j%d", rng.IntN(n+1))}, at: rng.Int64N(int64(n/2 + 2))})
				}
				for range n / 4 { // as Tick's promotions leave it
					heap.Pop(&h)
				}
				sorted := sortedCopy(h)
				for _, stop := range []int{1, 2, 5, 50, len(h), len(h) + 1} {
					var got []*entry
					h.earliest(func(e *entry) bool {
						got = append(got, e)
						return len(got) < stop
					})
					want := sorted[:min(stop, len(sorted))]
					// Items equal in (at, id) may come in either order, as
					// with sort.Sort, which is not stable.
					key := func(s []*entry) []string {
						out := make([]string, len(s))
						for i, e := range s {
							out[i] = fmt.Sprintf("%d/%s", e.at, e.job.ID)
						}
						return out
					}
					if d := cmp.Diff(key(want), key(got)); d != "" {
						t.Fatalf("first %d of %d items (-sort +earliest):\n%s", stop, len(h), d)
					}
				}
			})
		}
	}
}

// TestListTimeHeapsMatchFullSort: the scheduled and failed jobs a queue
// lists are those the former copy-and-sort of the whole heap listed, in the
// same order, on brokers whose heaps have had jobs taken out of the middle
// (cancelled, claimed, run again) and put back.
func TestListTimeHeapsMatchFullSort(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{1, 2, 10, 100, 1000, 3000} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("jobs=%d/seed=%d", n, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, uint64(n)))
				clock := fakeclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
				b := New(Options{Clock: clock})
				var ids []string
				for i := range n {
					// Coarse delays, so that many jobs share a run_at.
					j := &queue.Job{ID: fmt.Sprintf("id%05d", rng.IntN(1_000_000)*10+i%10), Queue: queue.DefaultQueue, Type: "ping",
						MaxRetries: rng.IntN(2), IntervalSeconds: rng.IntN(3)}
					if err := b.Enqueue(ctx, queue.NewJob{Job: j, Delay: time.Duration(rng.IntN(20)) * time.Second}); err != nil {
						continue // a repeated id
					}
					ids = append(ids, j.ID)
				}
				// Cancel some, claim some and finish them (recurring ones go
				// back to scheduled with the same id, failed ones to retry).
				for _, id := range ids {
					switch rng.IntN(4) {
					case 0:
						if _, _, err := b.Cancel(ctx, id); err != nil {
							t.Fatal(err)
						}
					case 1:
						l, err := b.Claim(ctx, id, time.Minute)
						if err != nil {
							t.Fatal(err)
						}
						o := queue.Outcome{Ref: l.Ref()}
						if rng.IntN(2) == 0 {
							o.Err, o.RetryIn = "x", time.Duration(rng.IntN(5))*time.Second
						}
						if _, err := b.Finish(ctx, []queue.Outcome{o}); err != nil {
							t.Fatal(err)
						}
					}
					if rng.IntN(50) == 0 {
						clock.Advance(time.Second)
					}
				}
				checkHeaps(t, b)
				b.mu.Lock()
				defer b.mu.Unlock()
				q := b.queues[queue.DefaultQueue]
				for _, c := range []struct {
					st queue.Status
					h  timeHeap
				}{{queue.StatusScheduled, q.scheduled}, {queue.StatusFailed, q.retry}} {
					for _, limit := range []int{1, 3, 50, n, n + 1} {
						want := sortedList(c.h, limit)
						got := jobIDs(b.list(q, c.st, 0, limit))
						if d := cmp.Diff(want, got); d != "" {
							t.Fatalf("%s, limit %d (-full sort +walk):\n%s", c.st, limit, d)
						}
					}
				}
			})
		}
	}
}

// sortedList is what list returned for heap h before the walk: a sorted
// copy of the whole heap, cut at limit.
func sortedList(h timeHeap, limit int) []string {
	out := []string{}
	for _, e := range sortedCopy(h)[:min(limit, len(h))] {
		out = append(out, e.job.ID)
	}
	return out
}

// sortedCopy returns h's entries in heap order. It sorts a plain slice: a
// timeHeap's Swap would move the entries' indexes into the copy.
func sortedCopy(h timeHeap) []*entry {
	out := slices.Clone([]*entry(h))
	slices.SortFunc(out, func(a, b *entry) int {
		switch {
		case a.at != b.at && a.at < b.at:
			return -1
		case a.at != b.at:
			return 1
		}
		return strings.Compare(a.job.ID, b.job.ID)
	})
	return out
}

func jobIDs(jobs []*queue.Job) []string {
	out := []string{}
	for _, j := range jobs {
		out = append(out, j.ID)
	}
	return out
}
