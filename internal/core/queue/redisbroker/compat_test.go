package redisbroker_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/brokertest"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
)

// TestOldestPendingAgeOfEarlierVersionsJobs: a pending job as daemons of
// earlier versions leave it after claiming it before it was due and handing
// it back (shutdown) has no ready_at (the job was scheduled by this version,
// which stores none until a job is ready) or ready_at 0 (scheduled by an
// earlier version). Its queue's oldest pending age counts from the claim,
// its last start, as this version's claim records it: neither 0, which hides
// the backlog from admission control, nor decades, which refuses the queue
// outright.
func TestOldestPendingAgeOfEarlierVersionsJobs(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	clock := brokertest.NewClock()
	const prefix = "cmp:"
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: prefix, Clock: clock})
	svc := queue.NewService(queue.Deps{Broker: b, Clock: clock}, queue.Config{})
	claimed := clock.Now().Add(-90 * time.Second)
	for q, shape := range map[string]func(key string) error{
		"none": func(key string) error { return rdb.HDel(ctx, key, "ready_at").Err() },
		"zero": func(key string) error { return rdb.HSet(ctx, key, "ready_at", "0").Err() },
	} {
		j := enqueuePing(t, svc, q, 0)
		key := prefix + "q:{" + q + "}:j:" + j.ID
		if err := shape(key); err != nil {
			t.Fatal(err)
		}
		if err := rdb.HSet(ctx, key, "started_at", strconv.FormatInt(claimed.UnixMilli(), 10), "attempts", "0").Err(); err != nil {
			t.Fatal(err)
		}
		st, err := b.Stats(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pending != 1 || st.OldestPendingAge != 90*time.Second {
			t.Errorf("queue %s (ready_at %s): pending %d, oldest pending age %v; want 1, 1m30s (since the claim)", q, q, st.Pending, st.OldestPendingAge)
		}
	}
}

// TestDeadJobsOfEarlierVersions: daemons before dead jobs had a bound of
// their own added a dead job to history as well as to dead (dead was a
// subset of history). This version lists and counts such a job once, and
// drops it, hash and both entries, when either set's trim reaches it:
// history's, as the earlier version did (successes still push out the dead
// jobs an earlier version made), or dead's, when newer dead jobs push it out.
func TestDeadJobsOfEarlierVersions(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	clock := brokertest.NewClock()
	const prefix = "old:"
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: prefix, Clock: clock, HistoryLimit: 3})
	run := func(q, typ string, maxRetries int) *queue.Job {
		t.Helper()
		j := &queue.Job{ID: queue.NewID(), Queue: q, Type: typ, MaxRetries: maxRetries, Source: queue.SourceAPI}
		if err := b.Enqueue(ctx, queue.NewJob{Job: j}); err != nil {
			t.Fatal(err)
		}
		l, err := b.Claim(ctx, j.ID, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		o := queue.Outcome{Ref: l.Ref(), Result: json.RawMessage(`1`)}
		if typ == "fail" {
			o = queue.Outcome{Ref: l.Ref(), Err: "x"}
		}
		if _, err := b.Finish(ctx, []queue.Outcome{o}); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Millisecond)
		return j
	}
	// earlier makes a dead job of queue q as an earlier version left it:
	// in history too, at its finished_at.
	earlier := func(q string) *queue.Job {
		t.Helper()
		j := run(q, "fail", 0)
		k := prefix + "q:{" + q + "}:"
		at, err := rdb.ZScore(ctx, k+"dead", j.ID).Result()
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.ZAdd(ctx, k+"history", redis.Z{Score: at, Member: j.ID}).Err(); err != nil {
			t.Fatal(err)
		}
		return j
	}
	sets := func(q, id string) [3]bool {
		t.Helper()
		k := prefix + "q:{" + q + "}:"
		in := func(key string) bool { return rdb.ZScore(ctx, key, id).Err() == nil }
		return [3]bool{in(k + "history"), in(k + "dead"), rdb.Exists(ctx, k+"j:"+id).Val() == 1}
	}
	list := func(f queue.Filter) []string {
		t.Helper()
		jobs, err := b.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, j := range jobs {
			out = append(out, j.ID)
		}
		return out
	}

	// Listed and counted once; successes push it out of both sets, hash
	// and all, as they did.
	old := earlier("a")
	s1 := run("a", "ping", 0)
	if diff := cmp.Diff([]string{s1.ID, old.ID}, list(queue.Filter{Queue: "a"})); diff != "" {
		t.Errorf("every job of a (-want +got):\n%s", diff)
	}
	if st, err := b.Stats(ctx, "a"); err != nil || st.Dead != 1 {
		t.Errorf("dead gauge: %d (%v), want 1", st.Dead, err)
	}
	run("a", "ping", 0)
	if got := sets("a", old.ID); got != [3]bool{true, true, true} {
		t.Fatalf("the earlier version's dead job (history, dead, hash) = %v before the trim, want all", got)
	}
	run("a", "ping", 0)
	if got := sets("a", old.ID); got != [3]bool{} {
		t.Errorf("the earlier version's dead job (history, dead, hash) = %v after history's trim, want none", got)
	}

	// Newer dead jobs push it out of dead, and out of history with it.
	old = earlier("b")
	for range 3 {
		run("b", "fail", 0)
	}
	if got := sets("b", old.ID); got != [3]bool{} {
		t.Errorf("the earlier version's dead job (history, dead, hash) = %v after dead's trim, want none", got)
	}
	if n := rdb.ZCard(ctx, prefix+"q:{b}:history").Val(); n != 0 {
		t.Errorf("history of b holds %d jobs, want none (this version's dead jobs are in dead only)", n)
	}

	// A removed queue's job of each kind is counted once and goes.
	old = earlier("c")
	now := run("c", "fail", 0)
	n, err := b.RemoveQueue(ctx, "c")
	if err != nil || n != 2 {
		t.Errorf("RemoveQueue: %d jobs (%v), want 2", n, err)
	}
	for _, j := range []*queue.Job{old, now} {
		if got := sets("c", j.ID); got != [3]bool{} {
			t.Errorf("job %s of the removed queue (history, dead, hash) = %v, want none", j.ID, got)
		}
	}
}

// TestJobTimeoutFieldAcrossVersions: a job's timeout_ms is one more hash
// field, written only when set: the hash of a job with one is the hash
// of the same job without one, plus that field, so a daemon of an
// earlier version (which reads its fields by name, HMGET) reads and runs
// it as before, without the bound; a job without one, such as an earlier
// version's, has no such field and reads as none (0: the runner's
// JOB_TIMEOUT). The started job a fetch returns carries it.
func TestJobTimeoutFieldAcrossVersions(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	clock := brokertest.NewClock()
	const prefix = "tmo:"
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: prefix, Clock: clock})
	svc := queue.NewService(queue.Deps{Broker: b, Clock: clock}, queue.Config{})
	hash := func(id string) map[string]string {
		t.Helper()
		h, err := rdb.HGetAll(ctx, prefix+"q:{t}:j:"+id).Result()
		if err != nil {
			t.Fatal(err)
		}
		delete(h, "id")
		return h
	}
	plain, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: "t"}, queue.SourceAPI)
	if err != nil {
		t.Fatal(err)
	}
	bounded, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: "t", TimeoutMS: 2500}, queue.SourceAPI)
	if err != nil {
		t.Fatal(err)
	}
	want := hash(plain.ID)
	if _, ok := want["timeout_ms"]; ok {
		t.Fatalf("a job without timeout_ms has the field: %v", want)
	}
	want["timeout_ms"] = "2500"
	if d := cmp.Diff(want, hash(bounded.ID)); d != "" {
		t.Errorf("the hash of a job with timeout_ms, against one without plus the field (-want +got):\n%s", d)
	}
	for _, tt := range []struct {
		j    *queue.Job
		want int64
	}{{plain, 0}, {bounded, 2500}} {
		got, err := b.Get(ctx, tt.j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.TimeoutMS != tt.want {
			t.Errorf("Get(%s).TimeoutMS = %d, want %d", tt.j.ID, got.TimeoutMS, tt.want)
		}
	}
	leases, err := b.Fetch(ctx, queue.FetchRequest{Queues: []string{"t"}, N: 2, Lease: time.Minute})
	if err != nil || len(leases) != 2 {
		t.Fatalf("fetch: %d leases, %v", len(leases), err)
	}
	got := map[string]int64{}
	for _, l := range leases {
		got[l.Job.ID] = l.Job.TimeoutMS
	}
	if d := cmp.Diff(map[string]int64{plain.ID: 0, bounded.ID: 2500}, got); d != "" {
		t.Errorf("fetched jobs' timeout_ms (-want +got):\n%s", d)
	}
}
