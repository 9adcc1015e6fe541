package redisbroker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
	"github.com/refrakt/refrakt/internal/redistest"
)

// The crash tests re-execute this test binary as a worker process: with
// crashWorkerEnv set, TestMain runs a worker pool on the given Redis and
// prefix until it is killed.
const (
	crashWorkerEnv = "REFRAKT_CRASH_WORKER" // "addr prefix"
	crashHangEnv   = "REFRAKT_CRASH_HANG"   // set: the worker's handler never returns
	crashLease     = 300 * time.Millisecond
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(crashWorkerEnv); spec != "" {
		addr, prefix, _ := strings.Cut(spec, " ")
		runCrashWorker(addr, prefix, os.Getenv(crashHangEnv) != "")
		return
	}
	os.Exit(m.Run())
}

// runsKey lists every handler start: the job's payload number and the
// process id of the worker that ran it.
func runsKey(prefix string) string { return prefix + "test:runs" }

// recordHandler records each start in Redis, then works 0-20ms (or forever).
func recordHandler(rdb *redis.Client, prefix string, hang bool) queue.Handler {
	return queue.Handler{Run: func(ctx context.Context, p json.RawMessage) (json.RawMessage, error) {
		if err := rdb.RPush(ctx, runsKey(prefix), fmt.Sprintf("%s %d", p, os.Getpid())).Err(); err != nil {
			return nil, err
		}
		d := time.Duration(rand.IntN(20)) * time.Millisecond
		if hang {
			d = time.Hour
		}
		select {
		case <-time.After(d):
			return p, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}}
}

func crashConfig() queue.Config {
	return queue.Config{Concurrency: 4, TickInterval: 50 * time.Millisecond, Lease: crashLease, ShutdownTimeout: time.Second}
}

func runCrashWorker(addr, prefix string, hang bool) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	reg := queue.NewRegistry()
	_ = reg.Register("record", recordHandler(rdb, prefix, hang))
	svc := queue.NewService(queue.Deps{Broker: redisbroker.New(rdb, redisbroker.Options{Prefix: prefix, HistoryLimit: 5000}), Registry: reg}, crashConfig())
	p := queue.NewPool(svc)
	p.Start()
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	<-ch
	_ = p.Shutdown(context.Background())
}

// worker is a re-executed worker process.
type worker struct{ cmd *exec.Cmd }

func startWorker(t *testing.T, addr, prefix string, hang bool) *worker {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashWorkerEnv+"="+addr+" "+prefix)
	if hang {
		cmd.Env = append(cmd.Env, crashHangEnv+"=1")
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &worker{cmd: cmd}
	t.Cleanup(w.kill)
	return w
}

// kill SIGKILLs the worker (by its pid) and reaps it.
func (w *worker) kill() {
	if w.cmd.ProcessState != nil {
		return
	}
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	_ = w.cmd.Wait()
}

func enqueueRecords(t *testing.T, svc *queue.Service, n int) []*queue.Job {
	t.Helper()
	reqs := make([]queue.EnqueueRequest, n)
	for i := range reqs {
		reqs[i] = queue.EnqueueRequest{Type: "record", Payload: json.RawMessage(strconv.Itoa(i)), MaxRetries: intp(100)}
	}
	jobs, err := svc.EnqueueBatch(context.Background(), reqs, queue.SourceAPI)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

func intp(n int) *int { return &n }

// TestCrashedWorkerJobRecovered: a process running a job is SIGKILLed;
// another completes the job once the lease has expired.
func TestCrashedWorkerJobRecovered(t *testing.T) {
	srv, rdb := newClient(t)
	const prefix = "crash1:"
	reg := queue.NewRegistry()
	_ = reg.Register("record", recordHandler(rdb, prefix, false))
	svc := queue.NewService(queue.Deps{Broker: redisbroker.New(rdb, redisbroker.Options{Prefix: prefix, HistoryLimit: 5000}), Registry: reg}, crashConfig())
	j := enqueueRecords(t, svc, 1)[0]
	w := startWorker(t, srv.Addr(), prefix, true)
	waitUntil(t, "the worker process runs the job", func() bool {
		n, _ := rdb.LLen(context.Background(), runsKey(prefix)).Result()
		return n == 1
	})
	w.kill()
	if got, _ := svc.Get(context.Background(), j.ID); got.Status != queue.StatusRunning {
		t.Fatalf("job is %s after its worker was killed, want running (leased)", got.Status)
	}
	p := queue.NewPool(svc)
	p.Start()
	defer p.Shutdown(context.Background())
	waitUntil(t, "another worker completes the job", func() bool {
		got, _ := svc.Get(context.Background(), j.ID)
		return got.Status == queue.StatusSucceeded
	})
	got, _ := svc.Get(context.Background(), j.ID)
	if got.Attempts != 2 || got.Retries != 1 || got.LastError != "lease expired" {
		t.Errorf("recovered job: attempts=%d retries=%d last_error=%q, want 2, 1, lease expired", got.Attempts, got.Retries, got.LastError)
	}
}

// TestRandomKills: 1,000 jobs worked by processes SIGKILLed at random: none
// is lost, and every job run more than once had a lease expire for each
// extra run.
func TestRandomKills(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns and kills worker processes for several seconds")
	}
	srv, rdb := newClient(t)
	const prefix = "crash2:"
	reg := queue.NewRegistry()
	_ = reg.Register("record", recordHandler(rdb, prefix, false))
	svc := queue.NewService(queue.Deps{Broker: redisbroker.New(rdb, redisbroker.Options{Prefix: prefix, HistoryLimit: 5000}), Registry: reg}, crashConfig())
	const total = 1000
	jobs := enqueueRecords(t, svc, total)
	workers := []*worker{startWorker(t, srv.Addr(), prefix, false), startWorker(t, srv.Addr(), prefix, false)}
	kills := 0
	deadline := time.Now().Add(90 * time.Second)
	for {
		st, err := svc.Broker().Stats(context.Background(), queue.DefaultQueue)
		if err != nil {
			t.Fatal(err)
		}
		if st.Succeeded == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not done within 90s: %+v", st)
		}
		time.Sleep(time.Duration(50+rand.IntN(250)) * time.Millisecond)
		if kills < 25 {
			i := rand.IntN(len(workers))
			workers[i].kill()
			kills++
			workers[i] = startWorker(t, srv.Addr(), prefix, false)
		}
	}
	for _, w := range workers {
		w.kill()
	}
	runs, err := rdb.LRange(context.Background(), runsKey(prefix), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	started := map[string]int{}
	for _, r := range runs {
		n, _, _ := strings.Cut(r, " ")
		started[n]++
	}
	dups := 0
	for i, j := range jobs {
		got, err := svc.Get(context.Background(), j.ID)
		if err != nil {
			t.Fatalf("job %d lost: %v", i, err)
		}
		n := started[strconv.Itoa(i)]
		switch {
		case got.Status != queue.StatusSucceeded:
			t.Errorf("job %d is %s, want succeeded", i, got.Status)
		case n < 1:
			t.Errorf("job %d succeeded without a recorded run", i)
		case n-1 > got.Retries || got.Attempts-1 != got.Retries:
			t.Errorf("job %d: %d runs, attempts=%d, lease expiries=%d: a duplicate run is not explained by a lease expiry", i, n, got.Attempts, got.Retries)
		}
		if n > 1 {
			dups++
		}
	}
	t.Logf("%d jobs, %d kills, %d runs recorded, %d jobs ran more than once (each after a lease expiry)", total, kills, len(runs), dups)
}

// TestRedisOutageUnderLoad: Redis paused (SIGSTOP) and restarted (with an
// append-only file) while jobs are enqueued and worked: the workers back off
// and resume, and every job whose enqueue was acknowledged succeeds.
func TestRedisOutageUnderLoad(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: time.Second, WriteTimeout: time.Second, DialTimeout: time.Second})
	defer rdb.Close()
	obs := &backendErrors{}
	cfg := crashConfig()
	cfg.Lease = 2 * time.Second // longer than the pause: running jobs keep their leases
	svc := queue.NewService(queue.Deps{Broker: redisbroker.New(rdb, redisbroker.Options{HistoryLimit: 100000}), Observer: obs}, cfg)
	p := queue.NewPool(svc)
	p.Start()
	defer p.Shutdown(context.Background())

	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			j, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", MaxRetries: intp(100)}, queue.SourceAPI)
			cancel()
			if err == nil {
				mu.Lock()
				acked = append(acked, j.ID)
				mu.Unlock()
			} else {
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	srv.Pause()
	time.Sleep(time.Second)
	srv.Resume()
	time.Sleep(300 * time.Millisecond)
	before := obs.count()
	srv.Restart()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if errs := obs.count() - before; errs > 200 {
		t.Errorf("%d backend errors around a restart: the pool does not back off", errs)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acked) < 10 {
		t.Fatalf("only %d jobs enqueued: the load did not run", len(acked))
	}
	for _, id := range acked {
		var last *queue.Job
		var lastErr error
		deadline := time.Now().Add(15 * time.Second)
		for {
			last, lastErr = svc.Get(context.Background(), id)
			if lastErr == nil && last.Status == queue.StatusSucceeded {
				break
			}
			if time.Now().After(deadline) {
				st, _ := svc.Stats(context.Background())
				t.Fatalf("job %s not done within 15s: %+v %v; stats %+v", id, last, lastErr, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("%d acknowledged jobs, all succeeded; %d backend errors counted", len(acked), obs.count())
}

type backendErrors struct {
	queue.NopObserver
	mu sync.Mutex
	n  int
}

func (b *backendErrors) BackendError(string, error) { b.mu.Lock(); b.n++; b.mu.Unlock() }
func (b *backendErrors) count() int                 { b.mu.Lock(); defer b.mu.Unlock(); return b.n }

// TestIdleCallRate: an idle pool makes only a few Redis calls per second.
func TestIdleCallRate(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	calls := &cmdHook{}
	rdb.AddHook(calls)
	svc := queue.NewService(queue.Deps{Broker: redisbroker.New(rdb, redisbroker.Options{})}, queue.Config{Concurrency: 4})
	if _, err := svc.Enqueue(context.Background(), queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI); err != nil {
		t.Fatal(err)
	}
	p := queue.NewPool(svc)
	p.Start()
	defer p.Shutdown(context.Background())
	time.Sleep(500 * time.Millisecond) // run the job, settle
	before := calls.trips.Load()
	time.Sleep(3 * time.Second)
	n := calls.trips.Load() - before
	if n > 3*5 {
		t.Errorf("%d Redis round trips in 3s from an idle pool, want at most 5/s", n)
	}
	t.Logf("idle pool: %d Redis round trips in 3s", n)
	// A job enqueued on the idle queue starts at once, not at the next poll.
	start := time.Now()
	j, err := svc.Enqueue(context.Background(), queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "job on an idle queue runs", func() bool {
		got, _ := svc.Get(context.Background(), j.ID)
		return got.Status == queue.StatusSucceeded
	})
	t.Logf("pickup and completion on an idle queue took %v", time.Since(start))
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 15s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
