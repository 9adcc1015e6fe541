package redisbroker_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/brokertest"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestCluster runs the broker's cluster checks on one Redis Cluster of
// three masters, emptied before each.
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	tests := []struct {
		name string
		fn   func(*testing.T, *redistest.Cluster)
	}{
		{"Conformance", testClusterConformance},
		{"ScriptsLostOnOneMaster", testClusterScriptsLostOnOneMaster},
		{"FetchWithOneMasterDown", testClusterFetchWithOneMasterDown},
		{"RemoveQueueAcrossBrokers", func(t *testing.T, c *redistest.Cluster) { raceRemoveAcrossBrokers(t, newClusterClient(t, c)) }},
		{"ListingFailsAfterEnqueue", testClusterListingFailsAfterEnqueue},
		{"RelistFailsInRemoval", testClusterRelistFailsInRemoval},
		{"SweepListsLostQueues", func(t *testing.T, c *redistest.Cluster) {
			sweepListsLostQueues(t, newClusterClient(t, c), func() { c.Flush(t) })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.Flush(t)
			tt.fn(t, c)
		})
	}
}

// newClusterClient returns a cluster client of c, closed when the test ends.
func newClusterClient(t testing.TB, c *redistest.Cluster) *redis.ClusterClient {
	t.Helper()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Seeds()})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// queuePerMaster returns one queue name served by each master of c, in
// node order, for the broker's default prefix.
func queuePerMaster(t testing.TB, c *redistest.Cluster) []string {
	t.Helper()
	nodes := c.Nodes()
	names := make([]string, len(nodes))
	found := 0
	for i := 0; found < len(nodes) && i < 1000; i++ {
		q := fmt.Sprintf("q%d", i)
		m := c.MasterFor(redisbroker.DefaultPrefix + "q:{" + q + "}:pending")
		for n, node := range nodes {
			if node == m && names[n] == "" {
				names[n] = q
				found++
			}
		}
	}
	if found < len(nodes) {
		t.Fatalf("found queues on %d of %d masters", found, len(nodes))
	}
	return names
}

// testClusterConformance runs the whole broker suite on the cluster: every
// script touches the keys of one queue, that is one slot.
func testClusterConformance(t *testing.T, c *redistest.Cluster) {
	rdb := newClusterClient(t, c)
	last := ""
	brokertest.Run(t, func(t *testing.T, o brokertest.Options) queue.Broker {
		if t.Name() != last {
			c.Flush(t)
			last = t.Name()
		}
		b := redisbroker.New(rdb, redisbroker.Options{Clock: o.Clock, HistoryLimit: o.HistoryLimit})
		if err := b.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// testClusterScriptsLostOnOneMaster: one master forgets its scripts (it was
// restarted, or failed over to a replica) while the others keep them. A
// pipeline of script calls across queues on every master then fails on that
// master only; re-running the calls that did run would enqueue twice (a
// conflict) or finish twice (a lost lease), so only the failed ones may be
// re-sent.
func testClusterScriptsLostOnOneMaster(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	rdb := newClusterClient(t, c)
	b := redisbroker.New(rdb, redisbroker.Options{})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	svc := queue.NewService(queue.Deps{Broker: b}, queue.Config{})
	names := queuePerMaster(t, c)
	forget := func() {
		t.Helper()
		if _, err := redistest.Do(c.Nodes()[1].Addr(), "SCRIPT", "FLUSH"); err != nil {
			t.Fatal(err)
		}
	}
	reqs := make([]queue.EnqueueRequest, 0, 2*len(names))
	for range 2 {
		for _, q := range names {
			reqs = append(reqs, queue.EnqueueRequest{Type: "ping", Queue: q})
		}
	}
	if _, err := svc.EnqueueBatch(ctx, reqs[:len(names)], queue.SourceAPI); err != nil {
		t.Fatal(err)
	}
	forget()
	if _, err := svc.EnqueueBatch(ctx, reqs[len(names):], queue.SourceAPI); err != nil {
		t.Fatalf("enqueue across masters after one lost its scripts: %v", err)
	}
	leases, err := b.Fetch(ctx, queue.FetchRequest{N: len(reqs), Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != len(reqs) {
		t.Fatalf("fetched %d jobs, want %d", len(leases), len(reqs))
	}
	outcomes := make([]queue.Outcome, len(leases))
	want := make([]queue.Status, len(leases))
	for i, l := range leases {
		outcomes[i] = queue.Outcome{Ref: l.Ref(), Result: []byte(`"pong"`)}
		want[i] = queue.StatusSucceeded
	}
	forget()
	got, err := b.Finish(ctx, outcomes)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("finish across masters after one lost its scripts (-want +got):\n%s", d)
	}
	for _, q := range names {
		st, err := b.Stats(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if st.Enqueued != 2 || st.Succeeded != 2 {
			t.Errorf("queue %s: enqueued %d, succeeded %d, want 2 and 2", q, st.Enqueued, st.Succeeded)
		}
	}
}

// testClusterFetchWithOneMasterDown: with one master unreachable, a fetch
// over queues on every master still takes the jobs of the queues on the
// others (the question of which queues have jobs fails only for its node),
// and the paused master's jobs are taken once it is back.
func testClusterFetchWithOneMasterDown(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Seeds(), ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	b := redisbroker.New(rdb, redisbroker.Options{})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	svc := queue.NewService(queue.Deps{Broker: b}, queue.Config{})
	names := queuePerMaster(t, c)
	for _, q := range names {
		if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: q}, queue.SourceAPI); err != nil {
			t.Fatal(err)
		}
	}
	down := c.Nodes()[1]
	down.Pause()
	resumed := false
	defer func() {
		if !resumed {
			down.Resume()
		}
	}()
	leases, err := b.Fetch(ctx, queue.FetchRequest{N: 10, Lease: time.Minute})
	if err != nil {
		t.Fatalf("fetch with one master down: %v", err)
	}
	var got []string
	for _, l := range leases {
		got = append(got, l.Job.Queue)
	}
	slices.Sort(got)
	want := []string{names[0], names[2]}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("fetched from %v with %s down, want %v", got, names[1], want)
	}
	down.Resume()
	resumed = true
	waitUntil(t, "the paused master's job is taken", func() bool {
		ls, err := b.Fetch(ctx, queue.FetchRequest{N: 10, Lease: time.Minute})
		return err == nil && len(ls) == 1 && ls[0].Job.Queue == names[1]
	})
}
