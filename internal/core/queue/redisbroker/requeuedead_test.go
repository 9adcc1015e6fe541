package redisbroker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/brokertest"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
)

// TestRequeueDeadStaleEntries: an entry of the dead set whose job hash is
// gone, or whose job is not dead (a pending one here), is dropped from the
// set and never moved: the pending job is not pushed a second time. A dead
// job of an earlier version, in history as well, leaves both sets.
func TestRequeueDeadStaleEntries(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	clock := brokertest.NewClock()
	const prefix, q = "st:", "stale"
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: prefix, Clock: clock})
	dead := brokertest.MakeDead(t, b, clock, q, 2)
	pending := &queue.Job{ID: queue.NewID(), Queue: q, Type: "ping", Source: queue.SourceAPI}
	if err := b.Enqueue(ctx, queue.NewJob{Job: pending}); err != nil {
		t.Fatal(err)
	}
	k := prefix + "q:{" + q + "}:"
	old := float64(clock.Now().Add(-time.Hour).UnixMilli())
	if err := rdb.ZAdd(ctx, k+"dead", redis.Z{Score: old, Member: "ghost"}, redis.Z{Score: old, Member: pending.ID}).Err(); err != nil {
		t.Fatal(err)
	}
	// dead[0] as an earlier version left it: in history too.
	if err := rdb.ZAdd(ctx, k+"history", redis.Z{Score: old, Member: dead[0]}).Err(); err != nil {
		t.Fatal(err)
	}
	r, err := b.RequeueDead(ctx, q, time.Time{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([2]any{dead, 0}, [2]any{r.IDs, r.Remaining}); d != "" {
		t.Errorf("moved, remaining (-want +got):\n%s", d)
	}
	line, err := rdb.LRange(ctx, k+"pending", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(append([]string{pending.ID}, dead...), line); d != "" {
		t.Errorf("the pending list (-want +got):\n%s", d)
	}
	for _, set := range []string{"dead", "history"} {
		if n, err := rdb.ZCard(ctx, k+set).Result(); err != nil || n != 0 {
			t.Errorf("%s set: %d entries, %v; want none", set, n, err)
		}
	}
	if n, _ := rdb.Exists(ctx, k+"j:ghost").Result(); n != 0 {
		t.Error("the ghost entry made a job hash")
	}
}

// TestRequeueDeadBoundedScripts: each script call looks at no more than 500
// dead jobs (so a long dead set never holds Redis for long): 1,200 dead
// jobs take three calls, all moved, in order.
func TestRequeueDeadBoundedScripts(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	clock := brokertest.NewClock()
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: "bd:", Clock: clock, HistoryLimit: 5000})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	dead := brokertest.MakeDead(t, b, clock, "big", 1200)
	hook := &cmdHook{}
	rdb.AddHook(hook)
	r, err := b.RequeueDead(ctx, "big", time.Time{}, queue.MaxRequeueDead)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(dead, r.IDs); d != "" {
		t.Errorf("moved (-want +got):\n%s", d)
	}
	scripts := 0
	for _, n := range hook.names() {
		if strings.HasPrefix(n, "eval") {
			scripts++
		}
	}
	if scripts != 3 {
		t.Errorf("%d script calls for 1,200 dead jobs, want 3 of at most 500 (commands %v)", scripts, hook.names())
	}
}

// TestRequeueDeadOutOfMemory: with Redis out of memory, RequeueDead is
// refused whole (the OOM guard, as requeueScript has it): nothing moves.
func TestRequeueDeadOutOfMemory(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	clock := brokertest.NewClock()
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: "om:", Clock: clock})
	dead := brokertest.MakeDead(t, b, clock, "oom", 3)
	if err := rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.ConfigSet(context.Background(), "maxmemory", "0") })
	r, err := b.RequeueDead(ctx, "oom", time.Time{}, 10)
	if err == nil || !strings.Contains(err.Error(), "OOM") || len(r.IDs) != 0 {
		t.Errorf("RequeueDead out of memory: %v, %v; want Redis's OOM error, nothing moved", r.IDs, err)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	for _, id := range dead {
		if j, err := b.Get(ctx, id); err != nil || j.Status != queue.StatusDead {
			t.Errorf("job %s after the refused call: %+v, %v; want dead", id, j, err)
		}
	}
	if s, err := b.Stats(ctx, "oom"); err != nil || s.Pending != 0 || s.Dead != 3 {
		t.Errorf("stats: %+v, %v; want 0 pending, 3 dead", s, err)
	}
}
