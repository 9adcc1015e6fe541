package redisbroker_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
)

// TestEnqueueOneRoundTrip: one caller's Enqueue in a known queue is one
// round trip (one EVALSHA, the wake-up pushed by the script), and what it
// acknowledged is in Redis: the job hash, its id in the pending list (or
// the scheduled set) and a wake-up naming its queue. The first one, which
// makes the queue, is one round trip too: the script lists the queue.
func TestEnqueueOneRoundTrip(t *testing.T) {
	_, rdb := newClient(t)
	calls := &cmdHook{}
	rdb.AddHook(calls)
	ctx := context.Background()
	svc := queue.NewService(queue.Deps{Broker: redisbroker.New(rdb, redisbroker.Options{Prefix: "rt:"})}, queue.Config{})
	if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI); err != nil {
		t.Fatal(err) // the first call also loads the script
	}
	made, sent := calls.trips.Load(), len(calls.names())
	if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: "second"}, queue.SourceAPI); err != nil {
		t.Fatal(err)
	}
	if got, cmds := calls.trips.Load()-made, calls.names()[sent:]; got != 1 || !slices.Equal(cmds, []string{"evalsha"}) {
		t.Errorf("the enqueue that made a queue took %d round trips of %v, want 1 of [evalsha]", got, cmds)
	}
	for _, q := range []string{"default", "second"} {
		if listed, err := rdb.SIsMember(ctx, "rt:queues", q).Result(); err != nil || !listed {
			t.Errorf("queue %s is not in the index after its first enqueue (%v, %v)", q, listed, err)
		}
	}
	if err := rdb.Del(ctx, "rt:wake").Err(); err != nil {
		t.Fatal(err)
	}
	before := calls.trips.Load()
	const n = 20
	var ids []string
	for i := range n {
		req := queue.EnqueueRequest{Type: "echo", Payload: []byte(`{"n":1}`)}
		if i%4 == 3 {
			req.DelayMS = 60000
		}
		j, err := svc.Enqueue(ctx, req, queue.SourceAPI)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	if got := calls.trips.Load() - before; got != n {
		t.Errorf("%d round trips for %d enqueues, want one each", got, n)
	}
	for i, id := range ids {
		h, err := rdb.HGetAll(ctx, "rt:q:{default}:j:"+id).Result()
		if err != nil {
			t.Fatal(err)
		}
		if h["id"] != id || h["payload"] != `{"n":1}` || h["source"] != queue.SourceAPI {
			t.Errorf("job %s: hash %v", id, h)
		}
		if i%4 == 3 {
			if _, err := rdb.ZScore(ctx, "rt:q:{default}:scheduled", id).Result(); err != nil || h["status"] != "scheduled" {
				t.Errorf("delayed job %s: status %q, in the scheduled set: %v", id, h["status"], err)
			}
		} else if pos, err := rdb.LPos(ctx, "rt:q:{default}:pending", id, redis.LPosArgs{}).Result(); err != nil || h["status"] != "pending" {
			t.Errorf("job %s: status %q, pending list position %d (%v)", id, h["status"], pos, err)
		}
	}
	// One wake-up per pending job, none for the scheduled ones.
	wake, err := rdb.LRange(ctx, "rt:wake", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(wake) != n-n/4 {
		t.Errorf("%d wake-ups, want %d", len(wake), n-n/4)
	}
	for _, q := range wake {
		if q != "default" {
			t.Errorf("wake-up %q, want default", q)
		}
	}
}

// TestWakeListBounded: with nobody fetching, the wake-ups pushed by the
// enqueue script never pile up beyond 96 (trimmed to the last 64).
func TestWakeListBounded(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: "wb:"})
	for range 500 {
		if err := b.Enqueue(ctx, queue.NewJob{Job: &queue.Job{ID: queue.NewID(), Queue: "default", Type: "ping"}}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := rdb.LLen(ctx, "wb:wake").Result()
	if err != nil {
		t.Fatal(err)
	}
	if n < 1 || n > 96 {
		t.Errorf("wake-up list holds %d entries, want 1-96", n)
	}
	st, err := b.Stats(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 500 || st.Enqueued != 500 {
		t.Errorf("pending %d, enqueued %d: want 500 each", st.Pending, st.Enqueued)
	}
}

// countedService returns a broker on a throwaway Redis, its scripts loaded
// (no NOSCRIPT fallback to count), a service on it, and the count of its
// round trips.
func countedService(t *testing.T) (*redisbroker.Broker, *queue.Service, *cmdHook) {
	t.Helper()
	_, rdb := newClient(t)
	calls := &cmdHook{}
	rdb.AddHook(calls)
	b := redisbroker.New(rdb, redisbroker.Options{})
	if err := b.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b, queue.NewService(queue.Deps{Broker: b}, queue.Config{}), calls
}

// TestFetchAmongIdleQueues: a fetch costs a few round trips however many
// queues exist with no job ready (one pipelined question picks the queues
// that have some), and still takes every ready job of every queue.
func TestFetchAmongIdleQueues(t *testing.T) {
	ctx := context.Background()
	b, svc, calls := countedService(t)
	addIdleQueues(t, svc, 40)
	fetch := func(n int) ([]queue.Lease, int64) {
		t.Helper()
		before := calls.trips.Load()
		ls, err := b.Fetch(ctx, queue.FetchRequest{N: n, Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return ls, calls.trips.Load() - before
	}
	fetch(10) // a first fetch may open a connection (HELLO, CLIENT SETINFO)
	if ls, trips := fetch(10); len(ls) != 0 || trips > 3 {
		t.Errorf("fetch among 40 idle queues: %d jobs in %d round trips, want none in at most 3", len(ls), trips)
	}
	var want []string
	for i := range 5 {
		for range 2 {
			want = append(want, enqueuePing(t, svc, fmt.Sprintf("hot-%d", i), 0).ID)
		}
	}
	ls, trips := fetch(100)
	var got []string
	for _, l := range ls {
		got = append(got, l.Job.ID)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("fetched %v, want every ready job %v", got, want)
	}
	// The queue list (read again only when the cached one is over 2 s
	// old), the question (one pipeline) and one script per queue with jobs.
	if trips > 2+5 {
		t.Errorf("fetch of 10 jobs in 5 of 45 queues: %d round trips, want at most 7", trips)
	}
}

// TestTickAcrossQueues: a tick over many queues is one pipeline of scripts
// (plus the queue list and the wake-ups), not a round trip per queue, and
// promotes the due jobs of every queue.
func TestTickAcrossQueues(t *testing.T) {
	ctx := context.Background()
	b, svc, calls := countedService(t)
	for i := range 40 {
		enqueuePing(t, svc, fmt.Sprintf("q-%d", i), 1)
	}
	time.Sleep(5 * time.Millisecond)
	if _, err := b.Tick(ctx); err != nil { // warm-up: may open a connection
		t.Fatal(err)
	}
	for i := range 40 {
		enqueuePing(t, svc, fmt.Sprintf("q-%d", i), 1)
	}
	time.Sleep(5 * time.Millisecond)
	before := calls.trips.Load()
	res, err := b.Tick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if trips := calls.trips.Load() - before; res.Scheduled != 40 || trips > 3 {
		t.Errorf("tick of 40 queues: promoted %d in %d round trips, want 40 in at most 3", res.Scheduled, trips)
	}
	// A queue with more due jobs than one script moves is ticked again
	// until done, beside a queue with one.
	reqs := make([]queue.EnqueueRequest, 2500)
	for i := range reqs {
		reqs[i] = queue.EnqueueRequest{Type: "ping", Queue: "big", DelayMS: 1}
	}
	if _, err := svc.EnqueueBatch(ctx, reqs, queue.SourceAPI); err != nil {
		t.Fatal(err)
	}
	enqueuePing(t, svc, "q-0", 1)
	time.Sleep(5 * time.Millisecond)
	if res, err := b.Tick(ctx); err != nil || res.Scheduled != 2501 {
		t.Errorf("tick of a 2500-job backlog and one job: promoted %d (%v), want 2501", res.Scheduled, err)
	}
	for _, q := range []string{"big", "q-0"} {
		st, err := b.Stats(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if st.Scheduled != 0 {
			t.Errorf("queue %s: %d still scheduled", q, st.Scheduled)
		}
	}
}

// TestStatsAcrossQueues: the service's stats of every queue (the metrics
// sampler, /api/obs/jobs, refrakt top) are one pipeline, not a round trip per
// queue, and agree with each queue's own Stats.
func TestStatsAcrossQueues(t *testing.T) {
	ctx := context.Background()
	b, svc, calls := countedService(t)
	for i := range 30 {
		q := fmt.Sprintf("q-%02d", i)
		for range i % 3 {
			enqueuePing(t, svc, q, 0)
		}
		enqueuePing(t, svc, q, 60_000)
	}
	if _, err := svc.Stats(ctx); err != nil { // warm-up: may open a connection
		t.Fatal(err)
	}
	before := calls.trips.Load()
	all, err := svc.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if trips := calls.trips.Load() - before; len(all) != 30 || trips > 2 {
		t.Errorf("stats of 30 queues: %d in %d round trips, want 30 in at most 2", len(all), trips)
	}
	for i, st := range all {
		one, err := b.Stats(ctx, st.Queue)
		if err != nil {
			t.Fatal(err)
		}
		one.OldestPendingAge, one.OldestPendingSec = st.OldestPendingAge, st.OldestPendingSec // read at another moment
		if st != one || st.Pending != int64(i%3) || st.Scheduled != 1 {
			t.Errorf("queue %s: %+v, alone %+v, want %d pending and 1 scheduled", st.Queue, st, one, i%3)
		}
	}
}

// enqueueAllocs is what a one-job Enqueue in a known queue allocates (the
// go-redis command, its args, the reply): as on main before batches, whose
// bookkeeping (a PartialEnqueueError's queues stored) is built only for a
// call that failed. One allocation more fails this test.
const enqueueAllocs = 33

// TestEnqueueAllocs: a one-job Enqueue in a known queue allocates no more
// than enqueueAllocs, raceAllocs more under -race (AllocsPerRun, a count,
// not a time).
func TestEnqueueAllocs(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: "al:"})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	svc := queue.NewService(queue.Deps{Broker: b}, queue.Config{})
	const runs = 500
	jobs := make([]queue.NewJob, runs+2) // AllocsPerRun runs once more, to warm up
	for i := range jobs {
		nj, err := svc.Prepare(queue.EnqueueRequest{Type: "ping", Queue: "a"}, queue.SourceAPI)
		if err != nil {
			t.Fatal(err)
		}
		jobs[i] = nj
	}
	if err := b.Enqueue(ctx, jobs[0]); err != nil { // the queue made and known
		t.Fatal(err)
	}
	i := 1
	got := testing.AllocsPerRun(runs, func() {
		if err := b.Enqueue(ctx, jobs[i]); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if got > enqueueAllocs+raceAllocs {
		t.Errorf("a one-job Enqueue allocates %.2f times, more than %d", got, enqueueAllocs+raceAllocs)
	}
}
