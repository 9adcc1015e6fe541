package queue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// runLog records every run of the "slow" jobs: which pool ran each one, by
// payload, so that a test can tell a job run twice from one run once.
type runLog struct {
	mu   sync.Mutex
	runs map[string][]string
}

func newRunLog() *runLog { return &runLog{runs: map[string][]string{}} }

// registry returns a registry whose "slow" handler records its run as
// pool's, then waits for block to close (nil: returns at once) or for its
// context, and whose "work" handler records its run and sleeps for the
// payload's ms.
func (l *runLog) registry(t *testing.T, pool string, block <-chan struct{}) *queue.Registry {
	t.Helper()
	reg := queue.NewRegistry()
	record := func(p json.RawMessage) {
		l.mu.Lock()
		l.runs[string(p)] = append(l.runs[string(p)], pool)
		l.mu.Unlock()
	}
	if err := reg.Register("slow", queue.Handler{Run: func(ctx context.Context, p json.RawMessage) (json.RawMessage, error) {
		record(p)
		if block == nil {
			return nil, nil
		}
		select {
		case <-block:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register("work", queue.Handler{Run: func(ctx context.Context, p json.RawMessage) (json.RawMessage, error) {
		record(p)
		var w struct{ MS int }
		_ = json.Unmarshal(p, &w)
		select {
		case <-time.After(time.Duration(w.MS) * time.Millisecond):
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}}); err != nil {
		t.Fatal(err)
	}
	return reg
}

func (l *runLog) of(j *queue.Job) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.runs[string(j.Payload)])
}

// warmUp runs fast jobs on s until its pool has learnt that jobs are fast
// (and so prefetches).
func warmUp(t *testing.T, s *queue.Service) {
	t.Helper()
	for range 20 {
		waitDone(t, s, mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping"}))
	}
}

// waitDone waits up to 10s for job j to finish and returns it.
func waitDone(t *testing.T, s *queue.Service, j *queue.Job) *queue.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := s.Wait(ctx, j.ID)
	if err != nil {
		t.Fatalf("job %s (%s) not done: %v", j.ID, j.Payload, err)
	}
	return got
}

// enqueueSlow enqueues n "slow" jobs at once, payloads "0" to "n-1".
func enqueueSlow(t *testing.T, s *queue.Service, n int, maxRetries *int) []*queue.Job {
	t.Helper()
	reqs := make([]queue.EnqueueRequest, n)
	for i := range reqs {
		reqs[i] = queue.EnqueueRequest{Type: "slow", Payload: json.RawMessage(fmt.Sprintf(`"%d"`, i)), MaxRetries: maxRetries}
	}
	jobs, err := s.EnqueueBatch(context.Background(), reqs, queue.SourceAPI)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// startBlocked starts, on broker b, a service "a" with a one-worker pool
// whose slow jobs wait for unblock (called at cleanup too, before the
// pool's shutdown), warmed up on fast jobs so that it prefetches; cfg is
// its config.
func startBlocked(t *testing.T, b queue.Broker, log *runLog, obs queue.Observer) (a *queue.Service, cfg queue.Config, unblock func()) {
	t.Helper()
	block := make(chan struct{})
	var once sync.Once
	unblock = func() { once.Do(func() { close(block) }) }
	cfg = fast
	cfg.Concurrency = 1
	a = queue.NewService(queue.Deps{Broker: b, Registry: log.registry(t, "a", block), Observer: obs}, cfg)
	startPool(t, a)
	t.Cleanup(unblock)
	warmUp(t, a)
	return a, cfg, unblock
}

// wantRanOnce checks that each of jobs succeeded at its first attempt, run
// once: first by pool "a", the others by pool "b".
func wantRanOnce(t *testing.T, s *queue.Service, log *runLog, jobs []*queue.Job, first *queue.Job) {
	t.Helper()
	for _, j := range jobs {
		want := []string{"b"}
		if j.ID == first.ID {
			want = []string{"a"}
		}
		got := mustGet(t, s, j.ID)
		diff(t, "job "+string(j.Payload)+": runs by pool, status, attempts, retries, error", [5]any{want, queue.StatusSucceeded, 1, 0, ""},
			[5]any{log.of(j), got.Status, got.Attempts, got.Retries, got.LastError})
	}
}

// oneStarted waits until exactly one of jobs is running and the others
// are pending and returns the running one and the others. With handedBack
// (jobs with a retry left), a pool with one worker took them all at first,
// then handed back those no worker started: a job handed back keeps the
// start time of its fetch, and one that is pending with none was not
// fetched yet (the pool may take the first alone and the rest a moment
// later), and does not count. Without it (jobs on their last try, which a
// pool never holds ahead of a busy worker) any pending job counts.
func oneStarted(t *testing.T, s *queue.Service, jobs []*queue.Job, handedBack bool) (started *queue.Job, rest []*queue.Job) {
	t.Helper()
	eventually(t, "one job running, the others pending", func() bool {
		started, rest = nil, nil
		for _, j := range jobs {
			switch got := mustGet(t, s, j.ID); got.Status {
			case queue.StatusRunning:
				if started != nil {
					return false
				}
				started = got
			case queue.StatusPending:
				if handedBack && got.StartedAt.IsZero() {
					return false
				}
				rest = append(rest, got)
			default:
				return false
			}
		}
		return started != nil
	})
	return started, rest
}

// TestPoolHandsBackJobsNoWorkerStarts: a pool that learnt jobs are fast
// prefetches a burst of slow ones; those its one busy worker cannot start
// go back to pending, not counted as attempts, and another daemon runs
// them while the first job still runs. Each job runs once.
func TestPoolHandsBackJobsNoWorkerStarts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		shared := be.new(t, nil)
		log := newRunLog()
		a, cfg, unblock := startBlocked(t, shared, log, nil)

		jobs := enqueueSlow(t, a, 5, nil)
		first, rest := oneStarted(t, a, jobs, true)
		for _, j := range rest {
			diff(t, "job "+string(j.Payload)+" handed back", [3]any{queue.StatusPending, 0, 0}, [3]any{j.Status, j.Attempts, j.Retries})
		}

		cfg.Concurrency = 2
		b := queue.NewService(queue.Deps{Broker: shared, Registry: log.registry(t, "b", nil)}, cfg)
		startPool(t, b)
		for _, j := range rest {
			waitDone(t, b, j)
		}
		diff(t, "the first job, meanwhile", queue.StatusRunning, mustGet(t, a, first.ID).Status)
		unblock()
		waitDone(t, a, first)
		wantRanOnce(t, a, log, jobs, first)
	})
}

// TestPoolCrashCostsOnlyTheStartedJob: a daemon that dies while its one
// worker runs the first of a burst of slow jobs with no retry costs an
// attempt only to that one; the others, which it never takes ahead of a
// busy worker (they have no retry to spare), are still pending with no
// attempt spent and were never started.
func TestPoolCrashCostsOnlyTheStartedJob(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		shared := be.new(t, nil)
		cut := &flaky{Broker: shared}
		block := make(chan struct{})
		cfg := fast
		cfg.Concurrency, cfg.ShutdownTimeout = 1, 50*time.Millisecond
		a := queue.NewService(queue.Deps{Broker: cut, Registry: newRunLog().registry(t, "a", block)}, cfg)
		p := queue.NewPool(a)
		p.Start()
		t.Cleanup(func() {
			close(block)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			_ = p.Shutdown(ctx)
		})
		warmUp(t, a)

		jobs := enqueueSlow(t, a, 5, intp(0))
		first, rest := oneStarted(t, a, jobs, false)
		cut.set("*", true) // the daemon is gone: no heartbeat, fetch or write reaches the backend

		other := queue.NewService(queue.Deps{Broker: shared}, queue.Config{Concurrency: queue.ManualMode})
		eventually(t, "the started job's lease expired", func() bool {
			_, _ = other.Tick(context.Background())
			return mustGet(t, other, first.ID).Status != queue.StatusRunning
		})
		got := mustGet(t, other, first.ID)
		diff(t, "the started job", [3]any{queue.StatusDead, 1, "lease expired"}, [3]any{got.Status, got.Attempts, got.LastError})
		for _, j := range rest {
			got := mustGet(t, other, j.ID)
			diff(t, "job "+string(j.Payload)+", never started", [5]any{queue.StatusPending, 0, 0, "", true},
				[5]any{got.Status, got.Attempts, got.Retries, got.LastError, got.StartedAt.IsZero()})
		}
	})
}

// TestPoolShedRunsEachJobOnce: two daemons with prefetching pools take a
// stream of fast jobs followed by slow ones; jobs are handed back and taken
// again, and every job runs exactly once, counted as one attempt.
func TestPoolShedRunsEachJobOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		shared := be.new(t, nil)
		log := newRunLog()
		rec := newRecorder()
		cfg := fast
		cfg.Concurrency = 2
		a := queue.NewService(queue.Deps{Broker: shared, Registry: log.registry(t, "a", nil), Observer: rec}, cfg)
		b := queue.NewService(queue.Deps{Broker: shared, Registry: log.registry(t, "b", nil), Observer: rec}, cfg)
		startPool(t, a)
		startPool(t, b)
		var reqs []queue.EnqueueRequest
		for i := range 70 {
			ms := 0
			if i >= 60 {
				ms = 300
			}
			reqs = append(reqs, queue.EnqueueRequest{Type: "work", Payload: json.RawMessage(fmt.Sprintf(`{"n":%d,"ms":%d}`, i, ms))})
		}
		jobs, err := a.EnqueueBatch(context.Background(), reqs, queue.SourceAPI)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			got := waitDone(t, a, j)
			if runs := log.of(j); len(runs) != 1 || got.Status != queue.StatusSucceeded || got.Attempts != 1 {
				t.Errorf("job %s: runs %v, %s, attempts %d; want one run, succeeded, one attempt", j.Payload, runs, got.Status, got.Attempts)
			}
		}
		if n := rec.snapshot()["transitions"]["running→pending"]; n == 0 {
			t.Error("no job was handed back: slow jobs were prefetched and held until a worker was free")
		}
	})
}

// releaseFault is a broker whose Release fails while on: refusing (nothing
// released) or, with lose set, after releasing (the answer lost).
type releaseFault struct {
	queue.Broker
	on, lose atomic.Bool
}

func (b *releaseFault) Release(ctx context.Context, refs []queue.Ref) ([]bool, error) {
	if !b.on.Load() {
		return b.Broker.Release(ctx, refs)
	}
	if b.lose.Load() {
		_, _ = b.Broker.Release(ctx, refs)
	}
	return nil, errDown
}

// TestPoolShedReleaseFails: when handing jobs back fails, the pool that
// fetched them never runs them; they are handed back once the backend
// answers (refused: they stay under its lease meanwhile, so no attempt is
// lost), or were handed back already (answer lost: the retry finds them
// gone and forgets them). Each runs once, on the other daemon.
func TestPoolShedReleaseFails(t *testing.T) {
	for _, lose := range []bool{false, true} {
		name := "refused"
		if lose {
			name = "answer lost"
		}
		t.Run(name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, be backend) {
				shared := be.new(t, nil)
				fault := &releaseFault{Broker: shared}
				fault.on.Store(true)
				fault.lose.Store(lose)
				log := newRunLog()
				rec := newRecorder()
				a, cfg, unblock := startBlocked(t, fault, log, rec)

				jobs := enqueueSlow(t, a, 5, nil)
				// Five failed releases are tried over more than a lease
				// (the retries back off from 25-50ms, doubling).
				eventually(t, "the hand-back failed and was tried again", func() bool { return rec.backendErrors("release") >= 5 })
				var first *queue.Job
				for _, j := range jobs {
					if len(log.of(j)) > 0 {
						first = j
					}
				}
				if first == nil {
					t.Fatal("no job started")
				}
				if !lose {
					for _, j := range jobs {
						got := mustGet(t, a, j.ID)
						diff(t, "job "+string(j.Payload)+" held while the hand-back fails", [2]any{queue.StatusRunning, 1}, [2]any{got.Status, got.Attempts})
					}
				}

				bcfg := cfg
				bcfg.Concurrency = 2
				b := queue.NewService(queue.Deps{Broker: shared, Registry: log.registry(t, "b", nil)}, bcfg)
				bp := queue.NewPool(b)
				bp.Start()
				fault.on.Store(false)
				for _, j := range jobs {
					if j.ID != first.ID {
						waitDone(t, b, j)
					}
				}
				if err := bp.Shutdown(context.Background()); err != nil {
					t.Fatal(err)
				}
				unblock()
				waitDone(t, a, first)
				// Only a runs jobs now, in the order it holds them: a job
				// it had kept to run would run before this one.
				waitDone(t, a, mustEnqueue(t, a, queue.EnqueueRequest{Type: "ping"}))
				wantRanOnce(t, a, log, jobs, first)
			})
		})
	}
}
