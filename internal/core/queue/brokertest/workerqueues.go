package brokertest

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// fetchOrdered takes up to n jobs from queues in their order
// (FetchRequest.Ordered), as a pool with WORKER_QUEUES fetches.
func (e *env) fetchOrdered(n int, prefer string, queues ...string) []queue.Lease {
	e.t.Helper()
	ls, err := e.b.Fetch(e.ctx, queue.FetchRequest{Queues: queues, N: n, Lease: lease, Ordered: true, Only: true, Prefer: prefer})
	if err != nil {
		e.t.Fatalf("Fetch: %v", err)
	}
	return ls
}

// leaseQueues is the queue of each lease, in order.
func leaseQueues(ls []queue.Lease) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Job.Queue
	}
	return out
}

// backlogs enqueues n jobs in each of queues and returns their ids by
// queue, oldest first.
func (e *env) backlogs(n int, queues ...string) map[string][]string {
	e.t.Helper()
	out := map[string][]string{}
	for range n {
		for _, q := range queues {
			out[q] = append(out[q], e.enqueue(q, "ping", 0).ID)
		}
	}
	return out
}

// testOrderedFetch (wq40): a fetch with Ordered visits its queues in the
// order given, every time (WORKER_QUEUE_ORDER=strict, and each weighted
// draw): one job at a time, every job of the first queue, then of the
// second, then of the third, where a rotation would take them in turns.
// Three queues and more go through the Redis broker's pre-scan of the
// pending lists (more than scanDirect), which must keep the order.
func testOrderedFetch(t *testing.T, nb NewBroker) {
	t.Run("one at a time", func(t *testing.T) {
		e := setup(t, nb, 0)
		order := []string{"o-low", "o-critical", "o-default"} // not sorted: the order is the caller's
		ids := e.backlogs(3, "o-critical", "o-default", "o-low")
		var got, want []string
		for range 9 {
			got = append(got, leaseIDs(e.fetchOrdered(1, "", order...))...)
		}
		for _, q := range order {
			want = append(want, ids[q]...)
		}
		diff(t, "jobs in the queues' order, each queue's oldest first", want, got)
		diff(t, "then nothing", 0, len(e.fetchOrdered(1, "", order...)))
	})
	t.Run("two queues, tried directly", func(t *testing.T) {
		e := setup(t, nb, 0)
		ids := e.backlogs(2, "d-a", "d-b")
		var got []string
		for range 4 {
			got = append(got, leaseIDs(e.fetchOrdered(1, "", "d-b", "d-a"))...)
		}
		diff(t, "b's jobs, then a's", slices.Concat(ids["d-b"], ids["d-a"]), got)
	})
	t.Run("a batch spans the queues in order", func(t *testing.T) {
		e := setup(t, nb, 0)
		e.backlogs(3, "b-1", "b-2", "b-3")
		got := leaseQueues(e.fetchOrdered(5, "", "b-3", "b-1", "b-2"))
		diff(t, "queues of one batch of 5", []string{"b-3", "b-3", "b-3", "b-1", "b-1"}, got)
	})
	t.Run("pre-scan of many queues, some idle, keeps the order", func(t *testing.T) {
		e := setup(t, nb, 0)
		order := []string{"s-4", "s-3", "s-2", "s-1", "s-0"}
		for _, q := range order { // every queue exists, s-4 and s-2 idle
			e.claim(e.enqueue(q, "ping", 0).ID)
		}
		ids := e.backlogs(2, "s-0", "s-1", "s-3")
		var got []string
		for range 6 {
			got = append(got, leaseIDs(e.fetchOrdered(1, "", order...))...)
		}
		diff(t, "s-3's jobs, then s-1's, then s-0's", slices.Concat(ids["s-3"], ids["s-1"], ids["s-0"]), got)
	})
	t.Run("Prefer still first", func(t *testing.T) {
		e := setup(t, nb, 0)
		ids := e.backlogs(1, "p-1", "p-2", "p-3")
		got := leaseIDs(e.fetchOrdered(3, "p-3", "p-1", "p-2", "p-3"))
		diff(t, "the preferred queue's job first, then the order", []string{ids["p-3"][0], ids["p-1"][0], ids["p-2"][0]}, got)
	})
	t.Run("a paused queue is skipped", func(t *testing.T) {
		e := setup(t, nb, 0)
		ids := e.backlogs(2, "z-held", "z-open")
		e.setPaused("z-held", true)
		got := leaseIDs(e.fetchOrdered(5, "", "z-held", "z-open"))
		diff(t, "only the open queue's jobs", ids["z-open"], got)
		diff(t, "paused queue's jobs still pending", int64(2), e.stats("z-held").Pending)
	})
	t.Run("a listed queue that does not exist", func(t *testing.T) {
		e := setup(t, nb, 0)
		ids := e.backlogs(1, "x-real")
		diff(t, "the existing queue's job", ids["x-real"], leaseIDs(e.fetchOrdered(5, "", "x-none", "x-real", "x-none-2")))
	})
}

// testNamedFetchRotates (wq40): a fetch of named queues without Ordered
// (a pool's queue set of equal weights) still rotates through them, as a
// fetch of every queue does: three fetches of one job each take one job
// of each of three queues with backlogs.
func testNamedFetchRotates(t *testing.T, nb NewBroker) {
	e := setup(t, nb, 0)
	names := []string{"r-a", "r-b", "r-c"}
	e.backlogs(3, names...)
	for range 3 {
		var got []string
		for range 3 {
			ls, err := e.b.Fetch(e.ctx, queue.FetchRequest{Queues: names, N: 1, Lease: lease, Only: true})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, leaseQueues(ls)...)
		}
		slices.Sort(got)
		diff(t, "three fetches take one job of each queue", names, got)
	}
}

// testStrictStopsAtHeldQueue (rvwq40 MEDIUM-1): a strict fetch holding
// jobs ahead (a pool's prefetch: N 3, Ahead 2) where critical's second job
// is on its last try takes critical's first job, holds critical there and
// takes nothing of low: low's jobs, held ahead of a free worker, would
// start before critical's pending ones. Without Strict (weighted), the
// fetch goes on to low, as any fetch does past a held queue.
func testStrictStopsAtHeldQueue(t *testing.T, nb NewBroker) {
	for _, strict := range []bool{true, false} {
		t.Run(map[bool]string{true: "strict", false: "weighted"}[strict], func(t *testing.T) {
			e := setup(t, nb, 0)
			first := e.enqueue("s-critical", "ping", 0).ID
			e.enqueue("s-critical", "ping", 0, func(j *queue.Job) { j.MaxRetries = 0 }) // on its last try
			e.enqueue("s-critical", "ping", 0)
			e.backlogs(2, "s-low")
			var held string
			ls, err := e.b.Fetch(e.ctx, queue.FetchRequest{Queues: []string{"s-critical", "s-low"}, N: 3, Ahead: 2, Lease: lease,
				Ordered: true, Strict: strict, Only: true, Held: &held})
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			want := []string{"s-critical"}
			if !strict {
				want = []string{"s-critical", "s-low", "s-low"}
			}
			if diff := cmp.Diff(want, leaseQueues(ls)); diff != "" {
				t.Errorf("queues of the jobs taken (-want +got):\n%s", diff)
			}
			if len(ls) > 0 && ls[0].Job.ID != first {
				t.Errorf("first job taken = %s; want critical's first %s", ls[0].Job.ID, first)
			}
			if held != "s-critical" {
				t.Errorf("held = %q; want s-critical", held)
			}
		})
	}
}
