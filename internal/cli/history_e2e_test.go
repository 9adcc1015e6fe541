package cli

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestE2EHistoryLimitFromTheDaemons: a jobs command over Redis trims a
// queue's history to the daemons' JOB_HISTORY, not to its own shell's (here
// unset, so the default 200). A review's `jobs cancel --redis` deleted 101
// finished jobs a daemon kept with JOB_HISTORY=100000; after a chaos run,
// 1,493 of 2,262 acknowledged jobs were gone.
func TestE2EHistoryLimitFromTheDaemons(t *testing.T) {
	r := redistest.Start(t)
	startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=hist:", "JOB_HISTORY=1000"}, "--workers", "4")
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitUntil("the daemon to publish its history limit", func() bool {
		n, ok, err := redisbroker.PublishedHistoryLimit(ctx, rdb, "hist:")
		return err == nil && ok && n == 1000
	})

	const done = 250
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: "hist:", HistoryLimit: 1000})
	var jobs []queue.NewJob
	for range done {
		jobs = append(jobs, queue.NewJob{Job: &queue.Job{ID: queue.NewID(), Queue: "default", Type: "ping", Source: queue.SourceCLI}})
	}
	later := &queue.Job{ID: queue.NewID(), Queue: "default", Type: "ping", Source: queue.SourceCLI}
	jobs = append(jobs, queue.NewJob{Job: later, Delay: time.Hour})
	if err := b.Enqueue(ctx, jobs...); err != nil {
		t.Fatal(err)
	}
	const history = "hist:q:{default}:history"
	waitUntil(strconv.Itoa(done)+" jobs done", func() bool { return rdb.ZCard(ctx, history).Val() == done })

	env := map[string]string{"REFRAKT_REDIS": r.URL(), "REFRAKT_PREFIX": "hist:", "XDG_STATE_HOME": t.TempDir()}
	if out := mustCLI(t, env, "jobs", "cancel", later.ID); !strings.Contains(out, later.ID) {
		t.Errorf("jobs cancel: %q, want it to name the job", out)
	}
	if n := rdb.ZCard(ctx, history).Val(); n != done+1 {
		t.Errorf("history after the CLI's cancel: %d jobs, want %d (the daemon keeps 1000)", n, done+1)
	}
}
