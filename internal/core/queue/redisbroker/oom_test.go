package redisbroker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/brokertest"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
)

// TestNothingMovesWhenRedisIsOutOfMemory: with maxmemory reached (and
// noeviction, the policy refrakt asks for), Redis refuses the writes that
// record outcomes and renew leases. A fetch, a tick, a claim or a requeue
// must then move nothing either: before, the fetch (its first write an LPOP,
// which Redis lets through) took jobs whose outcomes could never be written,
// the tick recovered their leases as failed attempts, and jobs whose
// handlers succeeded every time ended dead.
func TestNothingMovesWhenRedisIsOutOfMemory(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	clock := brokertest.NewClock()
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: "oom:", Clock: clock})
	svc := queue.NewService(queue.Deps{Broker: b, Clock: clock}, queue.Config{Concurrency: queue.ManualMode})
	enqueuePing(t, svc, "", 0)
	enqueuePing(t, svc, "", 0)
	// Due after the test: the tick below finds only the expired lease, whose
	// recovery's first write (a ZREM) Redis would let through.
	scheduled := enqueuePing(t, svc, "", 600000)
	leases, err := b.Fetch(ctx, queue.FetchRequest{Queues: []string{"default"}, N: 1, Lease: time.Minute})
	if err != nil || len(leases) != 1 {
		t.Fatalf("fetch: %d leases, %v", len(leases), err)
	}
	dead := enqueuePing(t, svc, "other", 0)
	if _, err := svc.Cancel(ctx, dead.ID); err != nil {
		t.Fatal(err)
	}
	before, err := b.Stats(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}

	if err := rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.ConfigSet(context.Background(), "maxmemory", "0") })
	clock.Advance(2 * time.Minute) // the running job's lease has expired
	wantOOM := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "OOM") {
			t.Errorf("%s out of memory: %v, want Redis's OOM error", what, err)
		}
	}
	ls, err := b.Fetch(ctx, queue.FetchRequest{Queues: []string{"default"}, N: 10, Lease: time.Minute})
	wantOOM("fetch", err)
	if len(ls) != 0 {
		t.Errorf("fetch out of memory started %d jobs, want 0", len(ls))
	}
	_, err = b.Claim(ctx, scheduled.ID, time.Minute)
	wantOOM("claim", err)
	_, _, err = b.Requeue(ctx, dead.ID)
	wantOOM("requeue", err)
	_, err = b.Tick(ctx)
	wantOOM("tick", err)

	if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	after, err := b.Stats(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	type gauges struct{ Pending, Scheduled, Running, Started, Failed int64 }
	g := func(s queue.Stats) gauges {
		return gauges{int64(s.Pending), int64(s.Scheduled), int64(s.Running), int64(s.Started), int64(s.Failed)}
	}
	if g(after) != g(before) {
		t.Errorf("out of memory, the queue moved: %+v before, %+v after", g(before), g(after))
	}
	if j, err := svc.Get(ctx, dead.ID); err != nil || j.Status != queue.StatusCancelled {
		t.Errorf("the requeued job: %+v, %v; want still cancelled", j, err)
	}
	// Memory back: everything moves again.
	if ls, err := b.Fetch(ctx, queue.FetchRequest{Queues: []string{"default"}, N: 10, Lease: time.Minute}); err != nil || len(ls) != 1 {
		t.Errorf("fetch with memory back: %d jobs, %v; want the pending one", len(ls), err)
	}
}
