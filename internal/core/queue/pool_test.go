package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/brokertest"
	"github.com/refrakt/refrakt/internal/core/queue/membroker"
)

// fast are settings for pool tests: short leases and ticks.
var fast = queue.Config{Concurrency: 4, TickInterval: 20 * time.Millisecond, Lease: 300 * time.Millisecond, ShutdownTimeout: 2 * time.Second}

// startPool starts a pool on svc, shut down when the test ends.
func startPool(t *testing.T, svc *queue.Service) *queue.Pool {
	t.Helper()
	p := queue.NewPool(svc)
	p.Start()
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p
}

func TestPoolRunsJobs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		rec := newRecorder()
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Observer: rec}, fast)
		startPool(t, s)
		ctx := context.Background()
		var jobs []*queue.Job
		for i := range 40 {
			typ, payload := "ping", json.RawMessage(nil)
			if i%2 == 1 {
				typ, payload = "echo", json.RawMessage(`{"i":1}`)
			}
			jobs = append(jobs, mustEnqueue(t, s, queue.EnqueueRequest{Type: typ, Payload: payload, Queue: []string{"a", "b"}[i%2]}))
		}
		for _, j := range jobs {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			got, err := s.Wait(wctx, j.ID)
			cancel()
			if err != nil {
				t.Fatalf("Wait(%s): %v", j.ID, err)
			}
			want := `"pong"`
			if j.Type == "echo" {
				want = `{"i":1}`
			}
			diff(t, "finished job", [3]any{queue.StatusSucceeded, want, 1}, [3]any{got.Status, string(got.Result), got.Attempts})
		}
		eventually(t, "transitions counted", func() bool {
			tr := rec.snapshot()["transitions"]
			return tr["pending→running"] == 40 && tr["running→succeeded"] == 40
		})
	})
}

// TestPoolRetriesAndDead: a failing job is retried by the tick loop with
// backoff until it is dead.
func TestPoolRetriesAndDead(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil)}, fast)
		startPool(t, s)
		j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "fail", MaxRetries: intp(2)})
		wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := s.Wait(wctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "dead after its retries", [3]any{queue.StatusDead, 3, 3}, [3]any{got.Status, got.Attempts, got.Retries})
	})
}

// TestPoolRecurring: a recurring job runs again after its interval, keeping its id.
func TestPoolRecurring(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil)}, fast)
		startPool(t, s)
		j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping", IntervalSeconds: 1})
		eventually(t, "two runs of a recurring job", func() bool { return mustGet(t, s, j.ID).Attempts >= 2 })
		got := mustGet(t, s, j.ID)
		if got.Status != queue.StatusScheduled && got.Status != queue.StatusPending && got.Status != queue.StatusRunning {
			t.Errorf("recurring job is %s, want it scheduled again", got.Status)
		}
	})
}

// blocking registers a handler type "block" that waits for its context and
// reports each start and each end.
func blocking(reg *queue.Registry) (started chan string, ended chan error) {
	started, ended = make(chan string, 16), make(chan error, 16)
	_ = reg.Register("block", queue.Handler{Run: func(ctx context.Context, p json.RawMessage) (json.RawMessage, error) {
		started <- string(p)
		<-ctx.Done()
		ended <- context.Cause(ctx)
		return nil, ctx.Err()
	}})
	return started, ended
}

func waitFor[T any](t *testing.T, what string, c chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("not within 5s: %s", what)
	}
	var zero T
	return zero
}

// TestPoolCancelRunning: cancelling a running job cancels its handler's
// context at the next heartbeat, and its outcome is not written.
func TestPoolCancelRunning(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		reg := queue.NewRegistry()
		started, ended := blocking(reg)
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: reg}, fast)
		startPool(t, s)
		j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "block"})
		waitFor(t, "handler start", started)
		if _, err := s.Cancel(context.Background(), j.ID); err != nil {
			t.Fatal(err)
		}
		cause := waitFor(t, "handler cancelled", ended)
		if !errors.Is(cause, queue.ErrLeaseLost) {
			t.Errorf("handler context cause = %v, want ErrLeaseLost", cause)
		}
		time.Sleep(50 * time.Millisecond)
		got := mustGet(t, s, j.ID)
		diff(t, "stays cancelled", [2]any{queue.StatusCancelled, ""}, [2]any{got.Status, got.LastError})
	})
}

// TestPoolZombie: a worker whose lease expired (its heartbeats failed) while
// another daemon recovered and re-ran the job cannot overwrite the newer run.
func TestPoolZombie(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		shared := be.new(t, nil)
		reg := queue.NewRegistry()
		release := make(chan struct{})
		var runs atomic.Int32
		_ = reg.Register("slow", queue.Handler{Run: func(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
			if runs.Add(1) == 1 {
				<-release // the first run outlives its lease, ignoring ctx
				return json.RawMessage(`"zombie"`), nil
			}
			return json.RawMessage(`"fresh"`), nil
		}})
		zb := &flaky{Broker: shared}
		zb.set("extend", true) // the first daemon cannot extend its leases
		cfg := fast
		cfg.Concurrency = 1
		zombie := queue.NewService(queue.Deps{Broker: zb, Registry: reg}, cfg)
		zp := queue.NewPool(zombie)
		zp.Start()
		j := mustEnqueue(t, zombie, queue.EnqueueRequest{Type: "slow"})
		eventually(t, "first run starts", func() bool { return runs.Load() == 1 })
		// The job must only be fetched by the second daemon from now on.
		stopCtx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_ = zp.Shutdown(stopCtx) // stops fetching; the stuck handler keeps running
		cancel()
		healthy := queue.NewService(queue.Deps{Broker: shared, Registry: reg}, fast)
		startPool(t, healthy)
		eventually(t, "the job recovered and re-run", func() bool { return mustGet(t, healthy, j.ID).Status == queue.StatusSucceeded })
		close(release)
		time.Sleep(100 * time.Millisecond)
		got := mustGet(t, healthy, j.ID)
		diff(t, "the newer run's result stands", [3]any{`"fresh"`, 2, "lease expired"}, [3]any{string(got.Result), got.Attempts, got.LastError})
	})
}

// TestPoolGracefulShutdown: running jobs finish within the shutdown
// timeout; jobs fetched but not started are handed back; a job still
// running at the deadline is cancelled and handed back, not failed.
func TestPoolGracefulShutdown(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		reg := queue.NewRegistry()
		started, ended := blocking(reg)
		cfg := fast
		cfg.Concurrency, cfg.Prefetch, cfg.ShutdownTimeout = 2, 2, 300*time.Millisecond
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: reg}, cfg)
		p := queue.NewPool(s)
		p.Start()
		short := mustEnqueue(t, s, queue.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"ms":100}`)})
		long := mustEnqueue(t, s, queue.EnqueueRequest{Type: "block", Payload: json.RawMessage(`"long"`)})
		waitFor(t, "long job start", started)
		var rest []*queue.Job
		for range 4 {
			rest = append(rest, mustEnqueue(t, s, queue.EnqueueRequest{Type: "block"}))
		}
		time.Sleep(50 * time.Millisecond) // let the pool prefetch some
		if err := p.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "long job cancelled", ended)
		diff(t, "short job finished", queue.StatusSucceeded, mustGet(t, s, short.ID).Status)
		got := mustGet(t, s, long.ID)
		diff(t, "interrupted job handed back", [3]any{queue.StatusPending, 0, 0}, [3]any{got.Status, got.Attempts, got.Retries})
		for _, j := range rest {
			got := mustGet(t, s, j.ID)
			diff(t, "unstarted job", [2]any{queue.StatusPending, 0}, [2]any{got.Status, got.Attempts})
		}
		st, err := s.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "nothing left running", int64(0), st[0].Running)
	})
}

// TestPoolBacksOff: while the backend fails, the pool retries with backoff
// instead of spinning, and resumes when it is back.
func TestPoolBacksOff(t *testing.T) {
	b := backends(t)[0].new(t, nil)
	counting := &countingBroker{Broker: b}
	rec := newRecorder()
	s := queue.NewService(queue.Deps{Broker: counting, Observer: rec}, fast)
	counting.fail.Store(true)
	startPool(t, s)
	time.Sleep(time.Second)
	if n := counting.fetches.Load(); n > 30 {
		t.Errorf("%d fetches in 1s while the backend was down: the pool spins", n)
	}
	counting.fail.Store(false)
	j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping"})
	eventually(t, "job runs once the backend is back", func() bool { return mustGet(t, s, j.ID).Status == queue.StatusSucceeded })
}

// TestPoolGoesOnAfterAPartialFetch: a fetch that answers jobs with an
// error (some queues failed, the others answered: a broken queue, a
// Cluster master failing) is not followed by a backoff. 30 jobs fetched
// one at a time, each fetch with an error, took the backoff's growth to
// 5 s between them.
func TestPoolGoesOnAfterAPartialFetch(t *testing.T) {
	b := backends(t)[0].new(t, nil)
	partial := &partialBroker{Broker: b}
	s := queue.NewService(queue.Deps{Broker: partial}, fast)
	var ids []string
	for range 30 {
		ids = append(ids, mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping"}).ID)
	}
	startPool(t, s)
	eventually(t, "every job runs, fetched one at a time with an error", func() bool {
		for _, id := range ids {
			if mustGet(t, s, id).Status != queue.StatusSucceeded {
				return false
			}
		}
		return true
	})
}

// partialBroker fetches one job at a time, answered with an error.
type partialBroker struct{ queue.Broker }

func (p *partialBroker) Fetch(ctx context.Context, req queue.FetchRequest) ([]queue.Lease, error) {
	req.N = 1
	ls, err := p.Broker.Fetch(ctx, req)
	if err == nil && len(ls) > 0 {
		err = errDown
	}
	return ls, err
}

type countingBroker struct {
	queue.Broker
	fail    atomic.Bool
	fetches atomic.Int64
}

func (c *countingBroker) Fetch(ctx context.Context, req queue.FetchRequest) ([]queue.Lease, error) {
	c.fetches.Add(1)
	if c.fail.Load() {
		return nil, errDown
	}
	return c.Broker.Fetch(ctx, req)
}

// TestWaitConcurrent: many callers waiting for the same job all see it done.
func TestWaitConcurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		cfg := fast
		cfg.ShutdownTimeout = 50 * time.Millisecond
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil)}, cfg)
		j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping"})
		var wg sync.WaitGroup
		errs := make(chan error, 5)
		for range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				got, err := s.Wait(ctx, j.ID)
				if err == nil && got.Status != queue.StatusSucceeded {
					err = errors.New("not succeeded: " + string(got.Status))
				}
				errs <- err
			}()
		}
		time.Sleep(20 * time.Millisecond)
		startPool(t, s)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		long := mustEnqueue(t, s, queue.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"ms":5000}`)})
		if _, err := s.Wait(ctx, long.ID); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait past its deadline: %v, want DeadlineExceeded", err)
		}
	})
}

// TestPoolNoPrefetchOfSlowJobs: while jobs are slow, a pool holds no more
// jobs than it has idle workers, so the rest stay pending for other daemons.
func TestPoolNoPrefetchOfSlowJobs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		reg := queue.NewRegistry()
		started, _ := blocking(reg)
		cfg := fast
		cfg.Concurrency, cfg.ShutdownTimeout = 2, 50*time.Millisecond
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: reg}, cfg)
		startPool(t, s)
		for range 5 {
			mustEnqueue(t, s, queue.EnqueueRequest{Type: "block"})
		}
		waitFor(t, "first start", started)
		waitFor(t, "second start", started)
		time.Sleep(100 * time.Millisecond)
		st, err := s.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "running and pending", [2]int64{2, 3}, [2]int64{st[0].Running, st[0].Pending})
	})
}

// TestShutdownHandBackBounded: with a backend that does not answer the
// hand-back, Shutdown returns shortly after its context's deadline (the
// hand-back gets at least half a second past it), not 5s later. A stalled
// Redis once made a daemon with SHUTDOWN_TIMEOUT=2s exit after 5.1s.
func TestShutdownHandBackBounded(t *testing.T) {
	reg := queue.NewRegistry()
	started, _ := blocking(reg)
	cfg := fast
	cfg.ShutdownTimeout = 200 * time.Millisecond
	b := &stalledRelease{Broker: backends(t)[0].new(t, nil)}
	s := queue.NewService(queue.Deps{Broker: b, Registry: reg}, cfg)
	p := queue.NewPool(s)
	p.Start()
	mustEnqueue(t, s, queue.EnqueueRequest{Type: "block"})
	waitFor(t, "job start", started)
	shutdownBounded(t, p, "a stalled release")
	if !b.called.Load() {
		t.Error("the running job was not handed back at all")
	}
}

// stalledRelease is a broker whose hand-back never answers: it waits for
// its context, as a call to a stalled Redis does.
type stalledRelease struct {
	queue.Broker
	called atomic.Bool
}

func (b *stalledRelease) Release(ctx context.Context, refs []queue.Ref) ([]bool, error) {
	b.called.Store(true)
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestShutdownDoesNotWaitForStalledLoops: a background loop inside a call
// to a stalled backend (which, like a socket read, ends only at its own
// deadline, seconds later) does not hold Shutdown past its context's
// deadline and the release grace. A tick stalled on a SIGSTOPped Redis once
// kept a daemon with SHUTDOWN_TIMEOUT=2s until 3.5s.
func TestShutdownDoesNotWaitForStalledLoops(t *testing.T) {
	cfg := fast
	cfg.ShutdownTimeout = 200 * time.Millisecond
	b := &stalledTick{Broker: backends(t)[0].new(t, nil), release: make(chan struct{})}
	defer close(b.release)
	s := queue.NewService(queue.Deps{Broker: b}, cfg)
	p := queue.NewPool(s)
	p.Start()
	eventually(t, "a tick is stalled", b.stalled.Load)
	shutdownBounded(t, p, "a stalled tick")
}

// shutdownBounded shuts p down with a 200ms deadline and fails unless it
// returns within 2s: the deadline and the release grace (0.5s), with room
// for a slow machine, where the stalled call alone would take 5s.
func shutdownBounded(t *testing.T, p *queue.Pool, with string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	begin := time.Now()
	_ = p.Shutdown(ctx)
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("Shutdown took %s with a 200ms deadline and %s, want it bounded by the deadline and the release grace (0.5s)", took, with)
	}
}

// stalledTick is a broker whose Tick does not return until released (or 5s
// pass), whatever its context says: a call blocked on a stalled server.
type stalledTick struct {
	queue.Broker
	stalled atomic.Bool
	release chan struct{}
}

func (b *stalledTick) Tick(ctx context.Context) (queue.TickResult, error) {
	b.stalled.Store(true)
	select {
	case <-b.release:
	case <-time.After(5 * time.Second):
	}
	return queue.TickResult{}, errDown
}

// TestCancelStopsRunningJobAtOnce: cancelling a job that a worker or a
// manual run of this process is running stops its handler at once (it went
// on until the next heartbeat, a third of the 30 s lease), and its run is
// recorded as cancelled.
func TestCancelStopsRunningJobAtOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		rec := newRecorder()
		cfg := fast
		cfg.Lease = 30 * time.Second
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Observer: rec}, cfg)
		startPool(t, s)
		ctx := context.Background()
		j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"ms":20000}`)})
		eventuallyRunning(t, s, j.ID)
		if _, err := s.Cancel(ctx, j.ID); err != nil {
			t.Fatal(err)
		}
		// Within eventually's 5 s: the heartbeat, the old way, comes at 10 s.
		eventually(t, "the handler stopped", func() bool { return rec.snapshot()["finished"]["sleep:cancelled"] == 1 })

		// A manual run, in its caller's goroutine.
		m := queue.NewService(queue.Deps{Broker: be.new(t, nil), Observer: rec}, queue.Config{Concurrency: queue.ManualMode, Lease: 30 * time.Second})
		j = mustEnqueue(t, m, queue.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"ms":20000}`)})
		ran := make(chan *queue.Job, 1)
		go func() { got, _ := m.RunID(ctx, j.ID); ran <- got }()
		eventuallyRunning(t, m, j.ID)
		if _, err := m.Cancel(ctx, j.ID); err != nil {
			t.Fatal(err)
		}
		wantCancelledRun(t, ran, "the manual run went on after the cancel")
	})
}

// TestCancelFromElsewhereTimedAsCancelled: a job cancelled through another
// process stops at its runner's next renewal, and the run is timed as
// cancelled (it was timed as failed, though nothing failed).
func TestCancelFromElsewhereTimedAsCancelled(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		rec := newRecorder()
		b := be.new(t, nil)
		runner := queue.NewService(queue.Deps{Broker: b, Observer: rec}, fast)
		startPool(t, runner)
		other := queue.NewService(queue.Deps{Broker: b}, queue.Config{Concurrency: queue.ManualMode})
		ctx := context.Background()
		j := mustEnqueue(t, other, queue.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"ms":20000}`)})
		eventuallyRunning(t, other, j.ID)
		if _, err := other.Cancel(ctx, j.ID); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the run timed as cancelled", func() bool { return rec.snapshot()["finished"]["sleep:cancelled"] == 1 })
		if n := rec.snapshot()["finished"]["sleep:failed"]; n != 0 {
			t.Errorf("%d runs timed as failed", n)
		}
	})
}

// TestCancelReachesALaterRunOfTheSameJob: a run whose lease lapsed may end
// after a later run of the same job started in this process; its ending
// must not unregister the later run, which a cancel then stops at once.
func TestCancelReachesALaterRunOfTheSameJob(t *testing.T) {
	clock := brokertest.NewClock()
	reg := queue.NewRegistry()
	first := make(chan struct{})
	var calls atomic.Int32
	if err := reg.Register("block", queue.Handler{Run: func(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
		if calls.Add(1) == 1 {
			select {
			case <-first: // the first run ends when the test says
				return nil, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		select { // later runs end when cancelled, or after a minute
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Minute):
			return nil, nil
		}
	}}); err != nil {
		t.Fatal(err)
	}
	b := membroker.New(membroker.Options{Clock: clock})
	s := queue.NewService(queue.Deps{Broker: b, Clock: clock, Registry: reg}, queue.Config{Concurrency: queue.ManualMode, Lease: 30 * time.Second})
	ctx := context.Background()
	j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "block"})
	run1 := make(chan struct{})
	go func() { _, _ = s.RunID(ctx, j.ID); close(run1) }()
	eventually(t, "the first run started", func() bool { return calls.Load() == 1 })
	// The first run's lease lapses; a tick puts the job back; a second run
	// takes it.
	clock.Advance(31 * time.Second)
	if _, err := s.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	run2 := make(chan *queue.Job, 1)
	go func() { got, _ := s.RunID(ctx, j.ID); run2 <- got }()
	eventually(t, "the second run started", func() bool { return calls.Load() == 2 })
	close(first)
	<-run1
	if _, err := s.Cancel(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	wantCancelledRun(t, run2, "the second run went on after the cancel: the first run's end unregistered it")
}

// eventuallyRunning waits until job id is running.
func eventuallyRunning(t *testing.T, s *queue.Service, id string) {
	t.Helper()
	eventually(t, "job "+id+" running", func() bool {
		got, err := s.Get(context.Background(), id)
		return err == nil && got.Status == queue.StatusRunning
	})
}

// wantCancelledRun checks that the manual run answering on ran, whose job
// was just cancelled, ends within 5s with the job cancelled; late says
// what it means if it does not.
func wantCancelledRun(t *testing.T, ran <-chan *queue.Job, late string) {
	t.Helper()
	select {
	case got := <-ran:
		if got == nil || got.Status != queue.StatusCancelled {
			t.Errorf("run after the cancel: %+v, want the job cancelled", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal(late)
	}
}
