package redisbroker_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
	"github.com/refrakt/refrakt/internal/redistest"
)

const lease = 30 * time.Second

// listedAndFetched checks that a fresh broker on rdb (with key prefix
// prefix, the default when "") lists q and fetches exactly the jobs ids from
// all queues.
func listedAndFetched(t *testing.T, rdb redis.UniversalClient, prefix, q string, ids ...string) {
	t.Helper()
	ctx := context.Background()
	fresh := redisbroker.New(rdb, redisbroker.Options{Prefix: prefix, SweepInterval: -1})
	qs, err := fresh.Queues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(qs, q) {
		t.Fatalf("queue %s is not listed (%v)", q, qs)
	}
	ls, err := fresh.Fetch(ctx, queue.FetchRequest{N: 50, Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range ls {
		got = append(got, l.Job.ID)
	}
	slices.Sort(got)
	ids = slices.Sorted(slices.Values(ids))
	if !slices.Equal(got, ids) {
		t.Fatalf("fetched %v from all queues, want %v", got, ids)
	}
}

// idleQueue makes queue q through b, with one job, cancelled: b knows q,
// and q holds no job to run.
func idleQueue(t *testing.T, b *redisbroker.Broker, q string) {
	t.Helper()
	ctx := context.Background()
	j := &queue.Job{ID: queue.NewID(), Queue: q, Type: "ping"}
	if err := b.Enqueue(ctx, queue.NewJob{Job: j}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Cancel(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
}

// removedWhileKnown makes queue q through enqueuer and lets remover remove
// it: enqueuer still has q in its cache of listed queues.
func removedWhileKnown(t *testing.T, enqueuer, remover *redisbroker.Broker, q string) {
	t.Helper()
	idleQueue(t, enqueuer, q)
	if _, err := remover.RemoveQueue(context.Background(), q); err != nil {
		t.Fatal(err)
	}
}

// testClusterListingFailsAfterEnqueue: on a cluster, jobs that make a queue
// again are stored, then the queue is listed by a command of its own. When
// that command fails, the enqueue still succeeds (the jobs are stored) and
// the enqueuer's next tick lists the queue.
func testClusterListingFailsAfterEnqueue(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	f := &cmdHook{}
	erdb := newClusterClient(t, c)
	erdb.AddHook(f)
	enqueuer := redisbroker.New(erdb, redisbroker.Options{SweepInterval: -1})
	remover := redisbroker.New(newClusterClient(t, c), redisbroker.Options{})
	removedWhileKnown(t, enqueuer, remover, "q")
	f.failing("sadd", true)
	j := &queue.Job{ID: queue.NewID(), Queue: "q", Type: "ping"}
	if err := enqueuer.Enqueue(ctx, queue.NewJob{Job: j}); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	f.failing("sadd", false)
	if _, err := enqueuer.Tick(ctx); err != nil {
		t.Fatalf("Tick: %v", err)
	}
	listedAndFetched(t, erdb, "", "q", j.ID)
}

// testClusterRelistFailsInRemoval: on a cluster, a job stored between a
// removal's script and its leaving the index makes the remover list the
// queue again. When that step fails, RemoveQueue says so, and either the
// remover's next tick or a second RemoveQueue (busy) lists the queue.
func testClusterRelistFailsInRemoval(t *testing.T, c *redistest.Cluster) {
	for _, repair := range []string{"tick", "remove again"} {
		t.Run(repair, func(t *testing.T) {
			c.Flush(t)
			ctx := context.Background()
			f := &cmdHook{}
			rrdb := newClusterClient(t, c)
			rrdb.AddHook(f)
			enqueuer := redisbroker.New(newClusterClient(t, c), redisbroker.Options{SweepInterval: -1})
			remover := redisbroker.New(rrdb, redisbroker.Options{SweepInterval: -1})
			idleQueue(t, enqueuer, "q")
			j := &queue.Job{ID: queue.NewID(), Queue: "q", Type: "ping"}
			f.onceBefore("srem", func() {
				if err := enqueuer.Enqueue(ctx, queue.NewJob{Job: j}); err != nil {
					t.Error(err)
				}
				f.failing("hexists", true)
			})
			if n, err := remover.RemoveQueue(ctx, "q"); err != nil || n != 1 {
				t.Fatalf("RemoveQueue with its last step failing: %d, %v; want it removed, with 1 job", n, err)
			}
			f.failing("hexists", false)
			if repair == "tick" {
				if _, err := remover.Tick(ctx); err != nil {
					t.Fatalf("Tick: %v", err)
				}
			} else if _, err := remover.RemoveQueue(ctx, "q"); err == nil {
				t.Fatal("RemoveQueue of a queue with a pending job: no error")
			}
			listedAndFetched(t, rrdb, "", "q", j.ID)
		})
	}
}

// TestSweepListsLostQueues: a queue holding a job but missing from the
// index (a process died between storing and listing on a cluster, or an
// older daemon re-made a removed queue) is listed again by the sweep of the
// next broker's first tick.
func TestSweepListsLostQueues(t *testing.T) {
	_, rdb := newClient(t)
	sweepListsLostQueues(t, rdb, func() {})
}

func sweepListsLostQueues(t *testing.T, rdb redis.UniversalClient, flush func()) {
	ctx := context.Background()
	for _, prefix := range []string{"", "a*[x]?:"} { // the default, and one full of glob characters
		t.Run("prefix="+prefix, func(t *testing.T) {
			flush()
			b := redisbroker.New(rdb, redisbroker.Options{Prefix: prefix, SweepInterval: -1})
			var ids []string
			for _, q := range []string{"lost", "kept"} {
				j := &queue.Job{ID: queue.NewID(), Queue: q, Type: "ping"}
				if err := b.Enqueue(ctx, queue.NewJob{Job: j}); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, j.ID)
			}
			if prefix == "" {
				prefix = redisbroker.DefaultPrefix
			}
			if err := rdb.SRem(ctx, prefix+"queues", "lost").Err(); err != nil {
				t.Fatal(err)
			}
			next := redisbroker.New(rdb, redisbroker.Options{Prefix: prefix})
			if _, err := next.Tick(ctx); err != nil {
				t.Fatalf("Tick: %v", err)
			}
			waitUntil(t, "the background sweep lists [kept lost]", func() bool {
				qs, _ := next.Queues(ctx)
				return slices.Equal(qs, []string{"kept", "lost"})
			})
			listedAndFetched(t, rdb, prefix, "lost", ids...)
		})
	}
}

// TestSweepBacksOff: a sweep that fails is not run again at every tick (a
// master down would be scanned by every daemon every second), but after a
// wait of 30 s, doubling; one that succeeds, after the interval. Ticks do
// not wait for it.
func TestSweepBacksOff(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	f := &cmdHook{}
	rdb.AddHook(f)
	f.failing("scan", true)
	b := redisbroker.New(rdb, redisbroker.Options{})
	for range 5 {
		if _, err := b.Tick(ctx); err != nil {
			t.Fatalf("Tick: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The sweep runs in the background: its SCAN may come after the ticks.
	waitUntil(t, "the first sweep's SCAN", func() bool { return f.count("scan") >= 1 })
	if n := f.count("scan"); n != 1 {
		t.Fatalf("%d SCANs in five ticks with SCAN failing, want 1 (then a wait)", n)
	}
}

// testClusterRemovedRightAfterItsFirstJobs: on a cluster, the enqueue that
// makes a queue lists it before it answers (listMade); what it sends after
// it answers (the wake-up, apart) lists nothing, so another broker's
// removal right after is not undone: the removed queue, empty, stays out of
// the index. Here the wake-up round trip is held until the removal is done.
func testClusterRemovedRightAfterItsFirstJobs(t *testing.T, c *redistest.Cluster) {
	removedDuringWakeUp(t, c, false)
}

// testClusterRemovedRightAfterAnEnqueueElsewhere: a broker that did not
// know a queue (a daemon just restarted) enqueues there; the queue exists,
// so it lists it only if it still does when it gets to it, after its
// wake-up: another broker's removal meanwhile is not undone.
func testClusterRemovedRightAfterAnEnqueueElsewhere(t *testing.T, c *redistest.Cluster) {
	removedDuringWakeUp(t, c, true)
}

// removedDuringWakeUp has a broker enqueue into queue q (made by another
// broker first when madeElsewhere), cancel the job, and a third broker
// remove q while the enqueuer's wake-up round trip is held; once that and
// what follows it are sent, the index must not list q.
func removedDuringWakeUp(t *testing.T, c *redistest.Cluster, madeElsewhere bool) {
	ctx := context.Background()
	h := &holdWakeUp{release: make(chan struct{}), done: make(chan struct{})}
	wait := []chan struct{}{h.done}
	if madeElsewhere {
		maker := redisbroker.New(newClusterClient(t, c), redisbroker.Options{SweepInterval: -1})
		idleQueue(t, maker, "q")
		h.checked = make(chan struct{})
		wait = append(wait, h.checked)
	}
	erdb := newClusterClient(t, c)
	erdb.AddHook(h)
	enqueuer := redisbroker.New(erdb, redisbroker.Options{SweepInterval: -1})
	remover := redisbroker.New(newClusterClient(t, c), redisbroker.Options{SweepInterval: -1})
	removedWhileKnown(t, enqueuer, remover, "q")
	close(h.release)
	for _, ch := range wait {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("the enqueue's wake-up, or its check that the queue exists, was never sent (listed without the check, a removed queue is listed again)")
		}
	}
	listed, err := erdb.SMembers(ctx, "refrakt:queues").Result()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(listed, "q") {
		t.Errorf("the index lists %v after the queue's removal, want q gone", listed)
	}
}

// holdWakeUp holds the first round trip of a pipeline that pushes a
// wake-up (RPUSH) until release is closed, and closes done once it is
// answered; checked, when given, once a round trip that checks a queue
// exists (HEXISTS) is answered.
type holdWakeUp struct {
	release, done, checked chan struct{}
	once, onceChecked      sync.Once
}

func (h *holdWakeUp) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *holdWakeUp) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *holdWakeUp) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.checked != nil && slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return c.Name() == "hexists" }) {
			defer h.onceChecked.Do(func() { close(h.checked) })
		}
		if !slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return c.Name() == "rpush" }) {
			return next(ctx, cmds)
		}
		held := false
		h.once.Do(func() { held = true })
		if !held {
			return next(ctx, cmds)
		}
		<-h.release
		defer close(h.done)
		return next(ctx, cmds)
	}
}
