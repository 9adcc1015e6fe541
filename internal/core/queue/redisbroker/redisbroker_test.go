package redisbroker_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/brokertest"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
	"github.com/refrakt/refrakt/internal/redistest"
)

// newClient starts a throwaway redis-server and returns a client of it.
func newClient(t *testing.T) (*redistest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return srv, rdb
}

func TestConformance(t *testing.T) {
	_, rdb := newClient(t)
	var n atomic.Int64
	brokertest.Run(t, func(t *testing.T, o brokertest.Options) queue.Broker {
		// Each test gets its own prefix: the same server, separate keys.
		b := redisbroker.New(rdb, redisbroker.Options{Prefix: fmt.Sprintf("t%d:", n.Add(1)), Clock: o.Clock, HistoryLimit: o.HistoryLimit})
		if err := b.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// TestConformanceAsReadmeACLUser runs the conformance suite as the ACL user
// README.md gives (its commands, keys under the prefix): a script that
// starts calling a command the README does not list fails here.
func TestConformanceAsReadmeACLUser(t *testing.T) {
	srv := redistest.Start(t)
	var n atomic.Int64
	brokertest.Run(t, func(t *testing.T, o brokertest.Options) queue.Broker {
		prefix := fmt.Sprintf("app%d:", n.Add(1))
		opt, err := redis.ParseURL(srv.ReadmeACLUser(t, prefix))
		if err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewClient(opt)
		t.Cleanup(func() { rdb.Close() })
		b := redisbroker.New(rdb, redisbroker.Options{Prefix: prefix, Clock: o.Clock, HistoryLimit: o.HistoryLimit})
		if err := b.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// TestKeyLayout: every key of a queue carries the queue's hash tag, so each
// script touches one cluster slot; the index and the wake-up list are the
// only other keys.
func TestKeyLayout(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: "lay:"})
	svc := queue.NewService(queue.Deps{Broker: b}, queue.Config{})
	for _, q := range []string{"default", "mail"} {
		for _, typ := range []string{"ping", "fail"} {
			if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: typ, Queue: q, MaxRetries: intp(0)}, queue.SourceAPI); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: q, DelayMS: 60000}, queue.SourceAPI); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := svc.RunNext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	keys, err := rdb.Keys(ctx, "*").Result() // a test may use KEYS; the broker never does
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		switch {
		case k == "lay:queues", k == "lay:wake":
		case strings.HasPrefix(k, "lay:q:{default}:"), strings.HasPrefix(k, "lay:q:{mail}:"):
		default:
			t.Errorf("key %q is outside the layout", k)
		}
	}
	if len(keys) < 10 {
		t.Errorf("only %d keys: %v", len(keys), keys)
	}
}

// TestScriptsReloaded: after Redis forgets its scripts (a restart, SCRIPT
// FLUSH), every operation still works (EVALSHA falls back to EVAL).
func TestScriptsReloaded(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	b := redisbroker.New(rdb, redisbroker.Options{})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	svc := queue.NewService(queue.Deps{Broker: b}, queue.Config{})
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	j, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI)
	if err != nil {
		t.Fatalf("Enqueue after SCRIPT FLUSH: %v", err)
	}
	rdb.ScriptFlush(ctx)
	got, err := svc.RunNext(ctx, "")
	if err != nil || got.ID != j.ID || got.Status != queue.StatusSucceeded {
		t.Fatalf("RunNext after SCRIPT FLUSH: %v %v", got, err)
	}
	rdb.ScriptFlush(ctx)
	if _, err := svc.Stats(ctx); err != nil {
		t.Fatalf("Stats after SCRIPT FLUSH: %v", err)
	}
}

// TestConcurrentEnqueue: concurrent Enqueue calls share round trips but
// each stays atomic and sees only its own errors.
func TestConcurrentEnqueue(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	b := redisbroker.New(rdb, redisbroker.Options{})
	existing := &queue.Job{ID: queue.NewID(), Queue: "default", Type: "ping"}
	if err := b.Enqueue(ctx, queue.NewJob{Job: existing}); err != nil {
		t.Fatal(err)
	}
	const callers = 50
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := []string{"default", "other"}[i%2]
			jobs := []queue.NewJob{{Job: &queue.Job{ID: queue.NewID(), Queue: q, Type: "ping"}}, {Job: &queue.Job{ID: queue.NewID(), Queue: "third", Type: "ping"}}}
			if i == 7 {
				jobs = append(jobs, queue.NewJob{Job: &queue.Job{ID: existing.ID, Queue: "default", Type: "ping"}})
			}
			errs[i] = b.Enqueue(ctx, jobs...)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		want := ""
		if i == 7 {
			want = core.CodeConflict
		}
		if got := core.ErrorCode(err); got != want {
			t.Errorf("caller %d: %v (code %q), want code %q", i, err, got, want)
		}
	}
	total := int64(0)
	for _, q := range []string{"default", "other", "third"} {
		st, err := b.Stats(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		total += st.Pending
	}
	// 1 existing + 50 callers × 2 jobs: caller 7's "default" part (the
	// duplicate) was refused whole; its jobs in other queues (other scripts)
	// were stored: Enqueue is atomic per queue.
	if total != 1+50*2 {
		t.Errorf("pending jobs: %d, want %d", total, 1+50*2)
	}
}

// TestRemoveQueueAcrossBrokers: one broker removes a queue while another,
// which has the queue in its cache of listed queues, keeps enqueueing into
// it: no job is left in a queue missing from the index.
func TestRemoveQueueAcrossBrokers(t *testing.T) {
	_, rdb := newClient(t)
	raceRemoveAcrossBrokers(t, rdb)
}

// raceRemoveAcrossBrokers runs brokertest.RaceRemoveQueue with an enqueuer
// that knows the queue and a remover that is another broker on rdb.
func raceRemoveAcrossBrokers(t *testing.T, rdb redis.UniversalClient) {
	ctx := context.Background()
	enqueuer := redisbroker.New(rdb, redisbroker.Options{})
	remover := redisbroker.New(rdb, redisbroker.Options{})
	// A queue one broker removes leaves the other's list at its next read.
	removedWhileKnown(t, enqueuer, remover, "race")
	if qs, err := enqueuer.Queues(ctx); err != nil || len(qs) != 0 {
		t.Fatalf("the other broker lists %v (%v) after the removal, want none", qs, err)
	}
	if err := enqueuer.Enqueue(ctx, queue.NewJob{Job: &queue.Job{ID: queue.NewID(), Queue: "race", Type: "ping"}}); err != nil {
		t.Fatal(err)
	}
	brokertest.RaceRemoveQueue(t, enqueuer, remover)
}
