package redisbroker_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/brokertest"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
)

// serverCalls returns how many times Redis has run each command since the
// last CONFIG RESETSTAT, those run by scripts included (INFO commandstats),
// by lower-case name.
func serverCalls(tb testing.TB, rdb *redis.Client) map[string]int {
	tb.Helper()
	out := map[string]int{}
	for name, rest := range infoFields(tb, rdb, "commandstats") {
		n, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		out[strings.TrimPrefix(name, "cmdstat_")], _ = strconv.Atoi(n)
	}
	return out
}

// serverCPU returns the CPU time the Redis server has used so far (user and
// system, all its threads), from INFO cpu.
func serverCPU(tb testing.TB, rdb *redis.Client) time.Duration {
	tb.Helper()
	f := infoFields(tb, rdb, "cpu")
	var sec float64
	for _, k := range []string{"used_cpu_user", "used_cpu_sys"} {
		v, err := strconv.ParseFloat(f[k], 64)
		if err != nil {
			tb.Fatalf("INFO cpu: %s: %v", k, err)
		}
		sec += v
	}
	return time.Duration(sec * float64(time.Second))
}

// infoFields returns the "name:value" lines of an INFO section.
func infoFields(tb testing.TB, rdb *redis.Client, section string) map[string]string {
	tb.Helper()
	info, err := rdb.Info(context.Background(), section).Result()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if name, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.HasPrefix(name, "#") {
			out[name] = v
		}
	}
	return out
}

// costOf runs fn and returns the commands Redis ran for it (scripts'
// included) and the round trips fn's client made, but those that set up a
// new connection of the pool.
func costOf(t *testing.T, rdb *redis.Client, hook *cmdHook, fn func()) (map[string]int, int64) {
	t.Helper()
	if err := rdb.ConfigResetStat(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	trips, setups := hook.trips.Load(), hook.setups.Load()
	fn()
	trips = hook.trips.Load() - trips - (hook.setups.Load() - setups)
	calls := serverCalls(t, rdb)
	return calls, trips
}

// finishedHistory fills queues with finished jobs for the cost tests, one
// millisecond apart (no ties): in each queue, first perQueue succeeded jobs,
// then cancelled ones, the latest. It returns the ids of each status, latest
// first.
func finishedHistory(t *testing.T, b *redisbroker.Broker, clock *brokertest.Clock, queues []string, succeeded, cancelled int) map[queue.Status][]string {
	t.Helper()
	ctx := context.Background()
	out := map[queue.Status][]string{}
	for _, q := range queues {
		for range succeeded {
			j := &queue.Job{ID: queue.NewID(), Queue: q, Type: "ping"}
			if err := b.Enqueue(ctx, queue.NewJob{Job: j}); err != nil {
				t.Fatal(err)
			}
			ls, err := b.Fetch(ctx, queue.FetchRequest{Queues: []string{q}, N: 1, Lease: time.Minute})
			if err != nil || len(ls) != 1 {
				t.Fatalf("Fetch: %v %v", ls, err)
			}
			if _, err := b.Finish(ctx, []queue.Outcome{{Ref: ls[0].Ref()}}); err != nil {
				t.Fatal(err)
			}
			out[queue.StatusSucceeded] = append(out[queue.StatusSucceeded], j.ID)
			clock.Advance(time.Millisecond)
		}
	}
	for _, q := range queues {
		for range cancelled {
			j := &queue.Job{ID: queue.NewID(), Queue: q, Type: "ping"}
			if err := b.Enqueue(ctx, queue.NewJob{Job: j, Delay: time.Hour}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := b.Cancel(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
			out[queue.StatusCancelled] = append(out[queue.StatusCancelled], j.ID)
			clock.Advance(time.Millisecond)
		}
	}
	for _, ids := range out {
		slices.Reverse(ids)
	}
	return out
}

// TestListFinishedCost: listing succeeded or cancelled jobs reads the
// latest entries of each queue's history up to the limit (and those it
// skips, in another status), not the whole history: the job hashes Redis
// reads grow with the limit, not with JOB_HISTORY or the number of queues,
// and the listing is one round trip.
func TestListFinishedCost(t *testing.T) {
	_, rdb := newClient(t)
	hook := &cmdHook{}
	rdb.AddHook(hook)
	ctx := context.Background()
	clock := brokertest.NewClock()
	b := redisbroker.New(rdb, redisbroker.Options{Clock: clock, HistoryLimit: 1000})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	queues := make([]string, 20)
	for i := range queues {
		queues[i] = fmt.Sprintf("cost%02d", i)
	}
	// 20 queues × 25 finished jobs, and one queue with 300 succeeded behind
	// 5 cancelled.
	all := finishedHistory(t, b, clock, queues, 20, 5)
	deep := finishedHistory(t, b, clock, []string{"deep"}, 300, 5)
	for st, ids := range deep { // deep's are the latest
		all[st] = append(slices.Clone(ids), all[st]...)
	}

	tests := []struct {
		name     string
		f        queue.Filter
		want     []string
		maxReads int   // job hashes read (HGET, HMGET, EXISTS), at most
		maxTrips int64 // round trips, at most
	}{
		// Per queue: the jobs skipped (the 5 cancelled ones, for succeeded
		// jobs) and twice the limit (a look at the status, a read of the job).
		{"succeeded, 1 of all queues", queue.Filter{Status: queue.StatusSucceeded, Limit: 1}, all[queue.StatusSucceeded][:1], 21 * (5 + 2*1), 2},
		{"cancelled, 3 of all queues", queue.Filter{Status: queue.StatusCancelled, Limit: 3}, all[queue.StatusCancelled][:3], 21 * (2 * 3), 2},
		{"succeeded, 10 of one deep queue", queue.Filter{Queue: "deep", Status: queue.StatusSucceeded, Limit: 10}, deep[queue.StatusSucceeded][:10], 5 + 2*10, 1},
		{"cancelled, 2 of one deep queue", queue.Filter{Queue: "deep", Status: queue.StatusCancelled, Limit: 2}, deep[queue.StatusCancelled][:2], 2 * 2, 1},
		// Fewer than the limit: the whole history is read, once.
		{"cancelled, all of one deep queue", queue.Filter{Queue: "deep", Status: queue.StatusCancelled, Limit: 50}, deep[queue.StatusCancelled], 300 + 2*5, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var jobs []*queue.Job
			calls, trips := costOf(t, rdb, hook, func() {
				var err error
				if jobs, err = b.List(ctx, tt.f); err != nil {
					t.Fatal(err)
				}
			})
			got := []string{}
			for _, j := range jobs {
				got = append(got, j.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("listed %v, want %v", got, tt.want)
			}
			reads := calls["hget"] + calls["hmget"] + calls["exists"]
			t.Logf("%d round trips, %d job hashes read, Redis ran %v", trips, reads, calls)
			if reads > tt.maxReads {
				t.Errorf("Redis read %d job hashes (%v), want at most %d", reads, calls, tt.maxReads)
			}
			if trips > tt.maxTrips {
				t.Errorf("%d round trips, want at most %d", trips, tt.maxTrips)
			}
		})
	}
}

// TestListFinishedTies: jobs finished in one Finish call share their
// finished_at; at the cut of the limit they are listed by id, as when the
// whole history was read and sorted.
func TestListFinishedTies(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	clock := brokertest.NewClock()
	b := redisbroker.New(rdb, redisbroker.Options{Clock: clock})
	var ids []string
	for _, q := range []string{"tie-a", "tie-b"} {
		for range 6 {
			j := &queue.Job{ID: queue.NewID(), Queue: q, Type: "ping"}
			if err := b.Enqueue(ctx, queue.NewJob{Job: j}); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, j.ID)
		}
	}
	clock.Advance(time.Millisecond)
	var outcomes []queue.Outcome
	for _, q := range []string{"tie-a", "tie-b"} {
		ls, err := b.Fetch(ctx, queue.FetchRequest{Queues: []string{q}, N: 6, Lease: time.Minute})
		if err != nil || len(ls) != 6 {
			t.Fatalf("Fetch: %v %v", ls, err)
		}
		for _, l := range ls {
			outcomes = append(outcomes, queue.Outcome{Ref: l.Ref()})
		}
	}
	if _, err := b.Finish(ctx, outcomes); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	for _, q := range []string{"", "tie-a"} {
		for _, limit := range []int{1, 2, 5, 12} {
			jobs, err := b.List(ctx, queue.Filter{Queue: q, Status: queue.StatusSucceeded, Limit: limit})
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, id := range ids {
				if j, err := b.Get(ctx, id); err == nil && (q == "" || j.Queue == q) && len(want) < limit {
					want = append(want, id)
				}
			}
			got := []string{}
			for _, j := range jobs {
				got = append(got, j.ID)
			}
			if !slices.Equal(got, want) {
				t.Errorf("queue %q, limit %d: listed %v, want %v (the smallest ids)", q, limit, got, want)
			}
		}
	}
}

// TestListFinishedLongWalk: a walk longer than one script call allows (a
// status few of the latest jobs have, long runs of jobs finished in the
// same millisecond) goes on where it stopped, over several round trips, and
// lists what reading and sorting the whole history listed: latest first,
// ties by id.
func TestListFinishedLongWalk(t *testing.T) {
	_, rdb := newClient(t)
	hook := &cmdHook{}
	rdb.AddHook(hook)
	ctx := context.Background()
	at := time.Now().Add(-time.Hour).UnixMilli()
	var jobs []finished
	add := func(n int, st queue.Status, step int64) {
		for range n {
			at += step
			jobs = append(jobs, finished{queue.NewID(), st, at})
		}
	}
	// Oldest first: 1500 cancelled in one millisecond, 700 succeeded, 1500
	// succeeded in one millisecond, 3 cancelled, 800 succeeded, 2 cancelled
	// in one millisecond.
	add(1, queue.StatusCancelled, 1)
	add(1499, queue.StatusCancelled, 0)
	add(700, queue.StatusSucceeded, 1)
	add(1, queue.StatusSucceeded, 1)
	add(1499, queue.StatusSucceeded, 0)
	add(3, queue.StatusCancelled, 1)
	add(800, queue.StatusSucceeded, 1)
	add(1, queue.StatusCancelled, 1)
	add(1, queue.StatusCancelled, 0)
	writeFinished(t, rdb, "long", jobs)
	short := finished{queue.NewID(), queue.StatusCancelled, at + 1} // the latest
	writeFinished(t, rdb, "short", []finished{short})
	b := redisbroker.New(rdb, redisbroker.Options{HistoryLimit: 10_000})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	// want: the whole history sorted as List sorts, cut at the limit.
	want := func(st queue.Status, limit int) []string {
		var all []*queue.Job
		for _, j := range jobs {
			if j.st == st {
				all = append(all, &queue.Job{ID: j.id, FinishedAt: time.UnixMilli(j.at)})
			}
		}
		queue.SortRecentFirst(all, st)
		out := []string{}
		for _, j := range all[:min(limit, len(all))] {
			out = append(out, j.ID)
		}
		return out
	}
	for _, st := range []queue.Status{queue.StatusCancelled, queue.StatusSucceeded} {
		for _, limit := range []int{1, 2, 3, 4, 5, 6, 7, 100, 1000} {
			trips := hook.trips.Load()
			got, err := b.List(ctx, queue.Filter{Queue: "long", Status: st, Limit: limit})
			if err != nil {
				t.Fatal(err)
			}
			trips = hook.trips.Load() - trips
			ids := []string{}
			for _, j := range got {
				ids = append(ids, j.ID)
			}
			if w := want(st, limit); !slices.Equal(ids, w) {
				t.Errorf("%s, limit %d: listed %d jobs %v…, want %d %v…", st, limit, len(ids), ids[:min(3, len(ids))], len(w), w[:min(3, len(w))])
			}
			if st == queue.StatusCancelled && limit >= 6 && trips < 3 {
				t.Errorf("%s, limit %d: %d round trips for a walk of %d entries, want several", st, limit, trips, len(jobs))
			}
		}
	}
	// Across queues: the walk of the short queue ends in the first round
	// trip, the other's goes on.
	got, err := b.List(ctx, queue.Filter{Status: queue.StatusCancelled, Limit: 7})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, j := range got {
		ids = append(ids, j.ID)
	}
	if w := append([]string{short.id}, want(queue.StatusCancelled, 6)...); !slices.Equal(ids, w) {
		t.Errorf("cancelled of all queues: listed %v, want %v", ids, w)
	}
}

// TestGetCost: on a single Redis server, Get reads a job in one round trip
// whatever the number of queues, known id or not: one script that reads the
// index and looks for the job's hash (EXISTS) in each queue, and reads the
// one it finds. Claim, Cancel and Requeue find the job's queue the same way.
// A queue another broker made a moment ago is found at once.
func TestGetCost(t *testing.T) {
	_, rdb := newClient(t)
	hook := &cmdHook{}
	rdb.AddHook(hook)
	ctx := context.Background()
	b := redisbroker.New(rdb, redisbroker.Options{})
	other := redisbroker.New(rdb, redisbroker.Options{})
	for _, br := range []*redisbroker.Broker{b, other} {
		if err := br.Load(ctx); err != nil {
			t.Fatal(err)
		}
	}
	const queues = 50
	var jobs []*queue.Job
	for i := range queues {
		j := &queue.Job{ID: queue.NewID(), Queue: fmt.Sprintf("get%02d", i), Type: "ping"}
		if err := b.Enqueue(ctx, queue.NewJob{Job: j, Delay: time.Hour}); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	if _, err := b.Get(ctx, jobs[0].ID); err != nil { // b's names are read now
		t.Fatal(err)
	}
	fresh := &queue.Job{ID: queue.NewID(), Queue: "made-by-other", Type: "ping"}
	if err := other.Enqueue(ctx, queue.NewJob{Job: fresh}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, id string
		want     *queue.Job // nil: not found
	}{
		{"first queue", jobs[0].ID, jobs[0]},
		{"last queue", jobs[queues-1].ID, jobs[queues-1]},
		{"queue made by another broker", fresh.ID, fresh},
		{"unknown id", queue.NewID(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *queue.Job
			var err error
			calls, trips := costOf(t, rdb, hook, func() { got, err = b.Get(ctx, tt.id) })
			t.Logf("%d round trips, Redis ran %v", trips, calls)
			if tt.want == nil {
				if core.ErrorCode(err) != core.CodeNotFound || err.Error() != "job "+tt.id+" not found" {
					t.Errorf("Get: %v, %v; want \"job %s not found\" (not_found)", got, err, tt.id)
				}
			} else if err != nil || got.ID != tt.want.ID || got.Queue != tt.want.Queue || got.Status != tt.want.Status {
				t.Errorf("Get: %+v, %v; want %+v", got, err, tt.want)
			}
			if trips != 1 {
				t.Errorf("%d round trips, want 1", trips)
			}
			if reads := calls["hmget"] + calls["hget"]; reads > 1 {
				t.Errorf("Redis read %d job hashes (%v), want at most 1", reads, calls)
			}
			if calls["exists"] > queues+1 {
				t.Errorf("Redis ran EXISTS %d times, want at most once per queue (%d)", calls["exists"], queues+1)
			}
		})
	}
	// Claim, Cancel and Requeue: one round trip to find the job, one to act.
	for _, op := range []struct {
		name string
		fn   func(id string) error
	}{
		{"claim", func(id string) error { _, err := b.Claim(ctx, id, time.Minute); return err }},
		{"cancel", func(id string) error { _, _, err := b.Cancel(ctx, id); return err }},
		{"requeue", func(id string) error { _, _, err := b.Requeue(ctx, id); return err }},
	} {
		_, trips := costOf(t, rdb, hook, func() {
			if err := op.fn(queue.NewID()); core.ErrorCode(err) != core.CodeNotFound {
				t.Errorf("%s of an unknown id: %v, want not_found", op.name, err)
			}
		})
		if trips != 1 {
			t.Errorf("%s of an unknown id: %d round trips, want 1", op.name, trips)
		}
	}
}
