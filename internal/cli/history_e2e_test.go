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

// TestE2EDeadJobOutlivesSuccesses: a dead job stays gettable, listed (with
// --status dead and without a status) and requeueable however many jobs of
// its queue succeed after it: dead jobs have their own JOB_HISTORY. A
// reviewer's `serve --job-history 5` (memory) lost a dead job to the 5
// pings that followed it; so did Redis, where history's trim dropped dead
// and succeeded jobs alike. On Redis, through the API and through Redis
// directly.
func TestE2EDeadJobOutlivesSuccesses(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var env []string
			var r *redistest.Server
			if backend == "redis" {
				r = redistest.Start(t)
				env = []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=dead:"}
			}
			d := startDaemon(t, env, "--workers", "0", "--job-history", "5")
			envs := []driverEnv{{"api", map[string]string{"REFRAKT_SERVER": d.URL, "REFRAKT_TOKEN": d.Token, "XDG_STATE_HOME": t.TempDir()}}}
			if r != nil {
				envs = drivers(t, d, r, "dead:")
			}
			for _, de := range envs {
				env, q := de.env, "dead-"+de.name
				id := strings.TrimSpace(mustCLI(t, env, "jobs", "enqueue", "fail", "--max-retries", "0", "--queue", q))
				if j := jobJSON(t, env, "jobs", "run", id); j.Status != queue.StatusDead {
					t.Fatalf("%s: the fail job is %s after its run, want dead", de.name, j.Status)
				}
				for range 6 {
					mustCLI(t, env, "jobs", "enqueue", "ping", "--queue", q)
					if j := jobJSON(t, env, "jobs", "run", "--next", "--queue", q); j.Status != queue.StatusSucceeded {
						t.Fatalf("%s: a ping is %s after its run, want succeeded", de.name, j.Status)
					}
				}
				if j := jobJSON(t, env, "jobs", "get", id); j.Status != queue.StatusDead {
					t.Errorf("%s: jobs get of the dead job after 6 successes: %s, want dead", de.name, j.Status)
				}
				if out := mustCLI(t, env, "jobs", "list", "--queue", q, "--status", "dead"); !strings.HasPrefix(out, id+"\t") {
					t.Errorf("%s: jobs list --status dead: %q, want the dead job", de.name, out)
				}
				rows := strings.Split(strings.TrimSpace(mustCLI(t, env, "jobs", "list", "--queue", q)), "\n")
				if len(rows) != 6 || !strings.HasPrefix(rows[5], id+"\t") {
					t.Errorf("%s: jobs list: %q, want the 5 latest successes, then the dead job", de.name, rows)
				}
				if j := jobJSON(t, env, "jobs", "requeue", id); j.Status != queue.StatusPending {
					t.Errorf("%s: jobs requeue of the dead job: %s, want pending", de.name, j.Status)
				}
			}
		})
	}
}
