package membroker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/fakeclock"
)

// TestOutOfLineRemovalEmptiesHeaps: a scheduled or retrying job that leaves
// its heap other than by coming due (cancelled, or run now by id) leaves
// nothing behind in it, so the heaps hold the queue's live jobs only, and
// their arrays shrink back after a burst. It was left there until its old
// run time (review growth29, MEDIUM 2: 100,000 jobs delayed a day and
// cancelled held 5.7 MiB with the queue showing 0 scheduled).
func TestOutOfLineRemovalEmptiesHeaps(t *testing.T) {
	const n = 1000
	ctx := context.Background()
	delayed := func(t *testing.T, b *Broker, mod func(*queue.Job)) []string {
		t.Helper()
		var ids []string
		for i := range n {
			j := &queue.Job{ID: fmt.Sprintf("s%04d", i), Queue: queue.DefaultQueue, Type: "ping", MaxRetries: 3}
			if mod != nil {
				mod(j)
			}
			if err := b.Enqueue(ctx, queue.NewJob{Job: j, Delay: 24 * time.Hour}); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, j.ID)
		}
		return ids
	}
	retrying := func(t *testing.T, b *Broker) []string {
		t.Helper()
		var ids []string
		for i := range n {
			j := &queue.Job{ID: fmt.Sprintf("r%04d", i), Queue: queue.DefaultQueue, Type: "fail", MaxRetries: 3}
			if err := b.Enqueue(ctx, queue.NewJob{Job: j}); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, j.ID)
		}
		ls, err := b.Fetch(ctx, queue.FetchRequest{N: n, Lease: time.Minute})
		if err != nil || len(ls) != n {
			t.Fatalf("Fetch: %d leases, %v", len(ls), err)
		}
		var outs []queue.Outcome
		for _, l := range ls {
			outs = append(outs, queue.Outcome{Ref: l.Ref(), Err: "boom", RetryIn: time.Hour})
		}
		if _, err := b.Finish(ctx, outs); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	for _, c := range []struct {
		name      string
		make      func(*testing.T, *Broker) []string
		take      func(*testing.T, *Broker, string)
		scheduled int64 // jobs left scheduled afterwards
	}{
		{"cancel scheduled", func(t *testing.T, b *Broker) []string { return delayed(t, b, nil) }, cancel, 0},
		{"cancel retrying", retrying, cancel, 0},
		{"run scheduled now", func(t *testing.T, b *Broker) []string { return delayed(t, b, nil) }, runNow, 0},
		{"run retrying now", retrying, runNow, 0},
		// Run early, a recurring job is scheduled again: once, not twice.
		{"run recurring now", func(t *testing.T, b *Broker) []string {
			return delayed(t, b, func(j *queue.Job) { j.IntervalSeconds = 3600 })
		}, runNow, n},
	} {
		t.Run(c.name, func(t *testing.T) {
			clock := fakeclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			b := New(Options{Clock: clock, HistoryLimit: 10})
			for _, id := range c.make(t, b) {
				c.take(t, b, id)
			}
			checkHeapSizes(t, b, c.scheduled, 0)
		})
	}
	// What the review ran: enqueue a job delayed a day and cancel it, over
	// and over, each cancelled job soon trimmed from the history.
	t.Run("enqueue and cancel in turn", func(t *testing.T) {
		clock := fakeclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		b := New(Options{Clock: clock, HistoryLimit: 10})
		for i := range n {
			j := &queue.Job{ID: fmt.Sprintf("t%04d", i), Queue: queue.DefaultQueue, Type: "ping"}
			if err := b.Enqueue(ctx, queue.NewJob{Job: j, Delay: 24 * time.Hour}); err != nil {
				t.Fatal(err)
			}
			cancel(t, b, j.ID)
		}
		checkHeapSizes(t, b, 0, 0)
		if got := len(b.jobs); got != 10 {
			t.Errorf("%d jobs stored, want the 10 of the history", got)
		}
	})
}

// checkHeapSizes fails unless the default queue's heaps hold scheduled and
// retry items, as many as its gauges say, in arrays at most 64 long or
// twice what they hold.
func checkHeapSizes(t *testing.T, b *Broker, scheduled, retry int64) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[queue.DefaultQueue]
	if got := q.count[queue.StatusScheduled]; got != scheduled {
		t.Errorf("%d jobs scheduled, want %d", got, scheduled)
	}
	if got := q.count[queue.StatusFailed]; got != retry {
		t.Errorf("%d jobs awaiting a retry, want %d", got, retry)
	}
	for _, h := range []struct {
		name  string
		n     int
		c     int
		count int64
	}{{"scheduled", len(q.scheduled), cap(q.scheduled), scheduled}, {"retry", len(q.retry), cap(q.retry), retry}} {
		if int64(h.n) != h.count {
			t.Errorf("%s heap holds %d items for %d jobs", h.name, h.n, h.count)
		}
		if h.c > max(64, 2*h.n) {
			t.Errorf("%s heap's array is %d long for %d items", h.name, h.c, h.n)
		}
	}
}

// TestOutOfLineRemovalCompactsPending: pending jobs cancelled or run by id
// stay in the deque only while they are fewer than the live ones, and
// compacting it keeps the order jobs are fetched in, jobs handed back at
// the head included. They stayed until fetched, for good on a queue no
// worker fetches from (manual mode).
func TestOutOfLineRemovalCompactsPending(t *testing.T) {
	const n = 999
	ctx := context.Background()
	newBroker := func(t *testing.T) (*Broker, []string) {
		t.Helper()
		clock := fakeclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		b := New(Options{Clock: clock, HistoryLimit: 10})
		var ids []string
		for i := range n {
			j := &queue.Job{ID: fmt.Sprintf("p%04d", i), Queue: queue.DefaultQueue, Type: "ping"}
			if err := b.Enqueue(ctx, queue.NewJob{Job: j}); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, j.ID)
		}
		return b, ids
	}
	for _, c := range []struct {
		name string
		take func(*testing.T, *Broker, string)
	}{{"cancel", cancel}, {"run now", runNow}} {
		t.Run(c.name+" all", func(t *testing.T) {
			b, ids := newBroker(t)
			for _, id := range ids {
				c.take(t, b, id)
			}
			checkPendingSize(t, b, 0)
		})
		t.Run(c.name+" two in three", func(t *testing.T) {
			b, ids := newBroker(t)
			var want []string
			for i, id := range ids {
				if i%3 == 1 {
					want = append(want, id)
					continue
				}
				c.take(t, b, id)
			}
			checkPendingSize(t, b, int64(len(want)))
			if d := cmp.Diff(want, fetchAll(t, b)); d != "" {
				t.Errorf("fetched (-want +got):\n%s", d)
			}
		})
	}
	// Jobs handed back go to the head, in their order; cancelling some of
	// them and of the others keeps everyone's place.
	t.Run("handed back", func(t *testing.T) {
		b, ids := newBroker(t)
		ls, err := b.Fetch(ctx, queue.FetchRequest{N: 6, Lease: time.Minute})
		if err != nil || len(ls) != 6 {
			t.Fatalf("Fetch: %d leases, %v", len(ls), err)
		}
		var refs []queue.Ref
		for _, l := range ls {
			refs = append(refs, l.Ref())
		}
		if _, err := b.Release(ctx, refs); err != nil {
			t.Fatal(err)
		}
		var want []string
		for i, id := range ids {
			if i%3 == 1 {
				want = append(want, id)
				continue
			}
			cancel(t, b, id)
		}
		checkPendingSize(t, b, int64(len(want)))
		if d := cmp.Diff(want, fetchAll(t, b)); d != "" {
			t.Errorf("fetched (-want +got):\n%s", d)
		}
	})
}

// checkPendingSize fails unless the default queue has pending jobs and its
// deque at most twice as many items.
func checkPendingSize(t *testing.T, b *Broker, pending int64) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[queue.DefaultQueue]
	if got := q.count[queue.StatusPending]; got != pending {
		t.Errorf("%d jobs pending, want %d", got, pending)
	}
	if items := q.pending.len(); int64(items) > 2*pending {
		t.Errorf("pending deque holds %d items for %d jobs", items, pending)
	}
}

// fetchAll fetches every pending job of b, returning their ids in order.
func fetchAll(t *testing.T, b *Broker) []string {
	t.Helper()
	ls, err := b.Fetch(context.Background(), queue.FetchRequest{N: 1 << 20, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, l := range ls {
		ids = append(ids, l.Job.ID)
	}
	return ids
}

// cancel cancels job id of b.
func cancel(t *testing.T, b *Broker, id string) {
	t.Helper()
	if _, _, err := b.Cancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

// runNow runs job id of b now, by id, to success.
func runNow(t *testing.T, b *Broker, id string) {
	t.Helper()
	ctx := context.Background()
	l, err := b.Claim(ctx, id, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Finish(ctx, []queue.Outcome{{Ref: l.Ref()}}); err != nil {
		t.Fatal(err)
	}
}
