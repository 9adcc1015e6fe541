package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// timeoutRecorder is a recorder that is a TimeoutObserver too.
type timeoutRecorder struct {
	*recorder
	tmu       sync.Mutex
	timedOut  []queue.TimedOutJob
	abandoned int
}

func newTimeoutRecorder() *timeoutRecorder { return &timeoutRecorder{recorder: newRecorder()} }

func (r *timeoutRecorder) TimedOut(j queue.TimedOutJob) {
	r.tmu.Lock()
	r.timedOut = append(r.timedOut, j)
	r.tmu.Unlock()
}

func (r *timeoutRecorder) Abandoned(delta int) {
	r.tmu.Lock()
	r.abandoned += delta
	r.tmu.Unlock()
}

func (r *timeoutRecorder) told() ([]queue.TimedOutJob, int) {
	r.tmu.Lock()
	defer r.tmu.Unlock()
	return append([]queue.TimedOutJob(nil), r.timedOut...), r.abandoned
}

// quickRetry retries at once (a few ms), so that a test sees a job's
// retries without waiting for the default backoff.
var quickRetry = queue.Backoff{Base: time.Millisecond, Cap: 5 * time.Millisecond, Jitter: 0.2}

// TestPoolTimeoutFailsTheAttempt: a handler that waits for its context
// and outlives its job's timeout is cancelled at the deadline with
// ErrTimedOut, and the attempt fails: retried, then dead, the error saying
// it timed out; each run is timed with status "timeout", and the observer
// is told of each. A job's timeout_ms beats JOB_TIMEOUT (30m by default
// here). Before timeout37 the handler held its worker for ever.
func TestPoolTimeoutFailsTheAttempt(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		reg := queue.NewRegistry()
		started, ended := blocking(reg)
		rec := newTimeoutRecorder()
		cfg := fast
		cfg.Backoff = quickRetry
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: reg, Observer: rec}, cfg)
		startPool(t, s)
		j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "block", Queue: "slow", MaxRetries: intp(1), TimeoutMS: 50})
		diff(t, "the job's timeout as stored", int64(50), mustGet(t, s, j.ID).TimeoutMS)
		for i := range 2 {
			waitFor(t, "handler start", started)
			if cause := waitFor(t, "handler cancelled", ended); !errors.Is(cause, queue.ErrTimedOut) {
				t.Errorf("run %d: the handler's context cause = %v, want ErrTimedOut", i+1, cause)
			}
		}
		got := waitDone(t, s, j)
		diff(t, "dead after its retry, both attempts timed out", [4]any{queue.StatusDead, 2, 2, "timed out after 50ms"},
			[4]any{got.Status, got.Attempts, got.Retries, got.LastError})
		eventually(t, "both runs timed as timeouts", func() bool { return rec.snapshot()["finished"]["block:timeout"] == 2 })
		told, _ := rec.told()
		want := []queue.TimedOutJob{
			{ID: j.ID, Queue: "slow", Type: "block", Attempts: 1, Timeout: 50 * time.Millisecond},
			{ID: j.ID, Queue: "slow", Type: "block", Attempts: 2, Timeout: 50 * time.Millisecond},
		}
		diff(t, "timeouts told", want, told)
		// A handler that honours its context returns just after its
		// deadline: counted abandoned until it does.
		eventually(t, "no handler left running", func() bool {
			_, n := rec.told()
			return n == 0 && s.AbandonedHandlers() == 0
		})
	})
}

// TestPoolTimeoutFreesTheWorker: a handler that ignores its context does
// not hold its worker past its timeout (JOB_TIMEOUT, the job naming
// none): with one worker, the next job runs while the hung handler still
// blocks. The hung handler is counted as abandoned until it returns; what
// it returns then is dropped (the job stays dead with the timeout's error).
// Before timeout37 the next job never ran.
func TestPoolTimeoutFreesTheWorker(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		reg := queue.NewRegistry()
		release := make(chan struct{})
		returned := make(chan struct{})
		hung := make(chan struct{}, 1)
		_ = reg.Register("hang", queue.Handler{Run: func(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
			hung <- struct{}{}
			<-release // its context ignored
			defer close(returned)
			return json.RawMessage(`"late"`), nil
		}})
		released := false
		free := func() {
			if !released {
				released = true
				close(release)
			}
		}
		t.Cleanup(free)
		rec := newTimeoutRecorder()
		cfg := fast
		cfg.Concurrency, cfg.Prefetch = 1, -1
		cfg.JobTimeout = 50 * time.Millisecond
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: reg, Observer: rec}, cfg)
		startPool(t, s)
		stuck := mustEnqueue(t, s, queue.EnqueueRequest{Type: "hang", MaxRetries: intp(0)})
		waitFor(t, "hung handler start", hung)
		next := mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping"})
		got := waitDone(t, s, next) // it runs while the hung handler blocks
		diff(t, "the next job", queue.StatusSucceeded, got.Status)
		got = mustGet(t, s, stuck.ID)
		diff(t, "the hung job", [3]any{queue.StatusDead, "timed out after 50ms", ""}, [3]any{got.Status, got.LastError, string(got.Result)})
		_, abandoned := rec.told()
		diff(t, "abandoned handlers (observer) while it blocks", 1, abandoned)
		diff(t, "abandoned handlers (service) while it blocks", int64(1), s.AbandonedHandlers())

		free()
		waitFor(t, "hung handler return", returned)
		eventually(t, "no handler abandoned once it returned", func() bool {
			_, n := rec.told()
			return n == 0 && s.AbandonedHandlers() == 0
		})
		time.Sleep(100 * time.Millisecond) // a late write would land by now
		got = mustGet(t, s, stuck.ID)
		diff(t, "the hung job after its late return", [4]any{queue.StatusDead, 1, "timed out after 50ms", ""},
			[4]any{got.Status, got.Attempts, got.LastError, string(got.Result)})
		diff(t, "one run timed as a timeout, one success", [2]int{1, 1},
			[2]int{rec.snapshot()["finished"]["hang:timeout"], rec.snapshot()["finished"]["ping:succeeded"]})
	})
}

// TestPoolJobTimeoutBeatsSetting: a job's timeout_ms beats JOB_TIMEOUT
// both ways: a job given longer than the setting runs to its end, one
// given less is cut at its own.
func TestPoolJobTimeoutBeatsSetting(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		cfg := fast
		cfg.JobTimeout = 50 * time.Millisecond
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil)}, cfg)
		startPool(t, s)
		longer := mustEnqueue(t, s, queue.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"ms":300}`), MaxRetries: intp(0), TimeoutMS: 10_000})
		shorter := mustEnqueue(t, s, queue.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"ms":10000}`), MaxRetries: intp(0), TimeoutMS: 20})
		setting := mustEnqueue(t, s, queue.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"ms":10000}`), MaxRetries: intp(0)})
		for _, tt := range []struct {
			name   string
			j      *queue.Job
			status queue.Status
			err    string
		}{
			{"timeout_ms above the setting", longer, queue.StatusSucceeded, ""},
			{"timeout_ms below the setting", shorter, queue.StatusDead, "timed out after 20ms"},
			{"no timeout_ms: the setting", setting, queue.StatusDead, "timed out after 50ms"},
		} {
			got := waitDone(t, s, tt.j)
			diff(t, tt.name, [2]any{tt.status, tt.err}, [2]any{got.Status, got.LastError})
		}
	})
}

// TestPoolShutdownBeforeTimeout: a job whose timeout is longer than
// SHUTDOWN_TIMEOUT, still running at the shutdown's deadline, is handed
// back unstarted as before timeouts (pending, no attempt counted), not
// failed; and one whose timeout comes first fails by it, shutdown or not.
func TestPoolShutdownBeforeTimeout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		reg := queue.NewRegistry()
		started, ended := blocking(reg)
		cfg := fast
		cfg.Concurrency, cfg.Prefetch, cfg.ShutdownTimeout = 2, -1, 400*time.Millisecond
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: reg}, cfg)
		p := queue.NewPool(s)
		p.Start()
		long := mustEnqueue(t, s, queue.EnqueueRequest{Type: "block", Payload: json.RawMessage(`"long"`), TimeoutMS: 60_000})
		short := mustEnqueue(t, s, queue.EnqueueRequest{Type: "block", Payload: json.RawMessage(`"short"`), MaxRetries: intp(0), TimeoutMS: 100})
		waitFor(t, "a job start", started)
		waitFor(t, "the other job start", started)
		if err := p.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		causes := []error{waitFor(t, "a handler end", ended), waitFor(t, "the other handler end", ended)}
		timedOut, cut := 0, 0
		for _, c := range causes {
			switch {
			case errors.Is(c, queue.ErrTimedOut):
				timedOut++
			case errors.Is(c, context.Canceled):
				cut++
			}
		}
		diff(t, "one handler timed out, one cut by the shutdown", [2]int{1, 1}, [2]int{timedOut, cut})
		got := mustGet(t, s, long.ID)
		diff(t, "the job cut by the shutdown, handed back", [4]any{queue.StatusPending, 0, 0, ""}, [4]any{got.Status, got.Attempts, got.Retries, got.LastError})
		got = mustGet(t, s, short.ID)
		diff(t, "the job cut by its timeout", [3]any{queue.StatusDead, 1, "timed out after 100ms"}, [3]any{got.Status, got.Attempts, got.LastError})
		diff(t, "shutdown report", []string{long.ID}, p.Report().Interrupted)
	})
}

// TestRunIDTimeout: a manual run (run ID, run-next) is bounded too: the
// run of a handler that ignores its context returns failed at its
// timeout, and the job is retried by the usual backoff.
func TestRunIDTimeout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		reg := queue.NewRegistry()
		release := make(chan struct{})
		defer close(release)
		_ = reg.Register("hang", queue.Handler{Run: func(context.Context, json.RawMessage) (json.RawMessage, error) {
			<-release
			return nil, nil
		}})
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: reg}, queue.Config{JobTimeout: 50 * time.Millisecond})
		j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "hang", MaxRetries: intp(2)})
		done := make(chan *queue.Job, 1)
		go func() {
			got, err := s.RunID(context.Background(), j.ID)
			if err != nil {
				t.Errorf("RunID: %v", err)
			}
			done <- got
		}()
		got := waitFor(t, "the manual run's answer", done)
		if got == nil {
			return
		}
		diff(t, "the run", [4]any{queue.StatusFailed, 1, 1, "timed out after 50ms"}, [4]any{got.Status, got.Attempts, got.Retries, got.LastError})
		diff(t, "abandoned handlers", int64(1), s.AbandonedHandlers())
	})
}

// TestEnqueueTimeoutBounds: timeout_ms is 1ms to 168h; 0 names none.
func TestEnqueueTimeoutBounds(t *testing.T) {
	s := queue.NewService(queue.Deps{Broker: backends(t)[0].new(t, nil)}, queue.Config{})
	for _, tt := range []struct {
		ms int64
		ok bool
	}{{-1, false}, {0, true}, {1, true}, {queue.MaxJobTimeout.Milliseconds(), true}, {queue.MaxJobTimeout.Milliseconds() + 1, false}} {
		_, err := s.Enqueue(context.Background(), queue.EnqueueRequest{Type: "ping", TimeoutMS: tt.ms}, queue.SourceAPI)
		if (err == nil) != tt.ok {
			t.Errorf("timeout_ms %d: err %v, want ok %v", tt.ms, err, tt.ok)
		}
	}
}

// TestPoolAbandonedHandlersBounded: handlers that ignore their context
// cannot make a pool run more than twice WORKER_CONCURRENCY handlers. With
// one worker, the first hung handler's timeout starts a worker in its
// place; the second's fails its attempt at once too, but its worker takes
// no job until the handler returns, so the next two jobs wait and never
// start beside them; once the handlers return, they run. Before the bound
// (review rvtimeout37 M1) a new worker replaced every timed-out one: four
// hung handlers ran at once here.
func TestPoolAbandonedHandlersBounded(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		reg := queue.NewRegistry()
		release, later := make(chan struct{}), make(chan struct{})
		var once sync.Once
		free := func() { once.Do(func() { close(release) }) }
		t.Cleanup(free)
		var mu sync.Mutex
		live, most := 0, 0
		starts := make(chan string, 8)
		_ = reg.Register("hang", queue.Handler{Run: func(_ context.Context, p json.RawMessage) (json.RawMessage, error) {
			mu.Lock()
			live++
			most = max(most, live)
			mu.Unlock()
			starts <- string(p)
			if string(p) == `"E"` {
				<-later
			} else {
				<-release // its context ignored
			}
			mu.Lock()
			live--
			mu.Unlock()
			return nil, nil
		}})
		rec := newTimeoutRecorder()
		cfg := fast
		cfg.Concurrency, cfg.Prefetch = 1, -1
		cfg.JobTimeout = 50 * time.Millisecond
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: reg, Observer: rec}, cfg)
		startPool(t, s)
		t.Cleanup(func() { close(later) }) // before the pool's shutdown (cleanups run last first)
		var jobs []*queue.Job
		for _, n := range []string{`"A"`, `"B"`, `"C"`, `"D"`} {
			jobs = append(jobs, mustEnqueue(t, s, queue.EnqueueRequest{Type: "hang", Payload: json.RawMessage(n), MaxRetries: intp(0)}))
		}
		for _, want := range []string{`"A"`, `"B"`} {
			diff(t, "the handler started", want, waitFor(t, "a handler start", starts))
		}
		for _, j := range jobs[:2] {
			got := waitDone(t, s, j)
			diff(t, "a hung job, failed at its timeout", [2]any{queue.StatusDead, "timed out after 50ms"}, [2]any{got.Status, got.LastError})
		}
		diff(t, "abandoned handlers", int64(2), s.AbandonedHandlers())
		select {
		case p := <-starts:
			t.Fatalf("job %s started while two hung handlers run with WORKER_CONCURRENCY 1", p)
		case <-time.After(500 * time.Millisecond):
		}
		// The kept worker is not free: no job was taken for it meanwhile
		// (taken, it would be running, its attempt counted, then shed).
		st, err := s.Broker().Stats(context.Background(), queue.DefaultQueue)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "jobs taken while both hung handlers run", int64(2), st.Started)
		free()
		for _, j := range jobs[2:] {
			got := waitDone(t, s, j)
			diff(t, "a job that waited for the hung handlers", queue.StatusSucceeded, got.Status)
		}
		mu.Lock()
		diff(t, "most handlers running at once", 2, most)
		mu.Unlock()
		eventually(t, "no handler abandoned once they returned", func() bool {
			_, n := rec.told()
			return n == 0 && s.AbandonedHandlers() == 0
		})
		// Their return gave the bound back: the next hung handler's worker
		// is replaced again, and a job runs beside it.
		mustEnqueue(t, s, queue.EnqueueRequest{Type: "hang", Payload: json.RawMessage(`"E"`), MaxRetries: intp(0)})
		for waitFor(t, "E's start", starts) != `"E"` { // C's and D's before
		}
		next := mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping"})
		// Run by a replacement worker.
		diff(t, "a job beside the next hung handler", queue.StatusSucceeded, waitDone(t, s, next).Status)
	})
}

// TestPoolCancelledHangingJobEndsAtItsTimeout: a running job cancelled
// while its handler ignores its context ends at its timeout as the cancel
// would have ended it (timed as cancelled, its outcome the cancel's), not
// as a timeout: no timeout is told.
func TestPoolCancelledHangingJobEndsAtItsTimeout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		reg := queue.NewRegistry()
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		started := make(chan struct{}, 1)
		_ = reg.Register("hang", queue.Handler{Run: func(context.Context, json.RawMessage) (json.RawMessage, error) {
			started <- struct{}{}
			<-release
			return nil, nil
		}})
		rec := newTimeoutRecorder()
		cfg := fast
		cfg.Concurrency, cfg.Prefetch = 1, -1
		cfg.JobTimeout = 300 * time.Millisecond
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: reg, Observer: rec}, cfg)
		startPool(t, s)
		j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "hang"})
		waitFor(t, "the handler start", started)
		if _, err := s.Cancel(context.Background(), j.ID); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the run timed as cancelled", func() bool { return rec.snapshot()["finished"]["hang:cancelled"] == 1 })
		told, _ := rec.told()
		diff(t, "timeouts told", 0, len(told))
		diff(t, "runs timed as timeouts", 0, rec.snapshot()["finished"]["hang:timeout"])
		got := mustGet(t, s, j.ID)
		diff(t, "the job", [2]any{queue.StatusCancelled, 1}, [2]any{got.Status, got.Attempts})
	})
}

// TestPoolLateReturnAfterShutdown: a handler that ignores its context and
// returns only after Shutdown gave up waiting for it (and closed the
// outcomes), and a timeout that fires after that, write nothing: the jobs
// are left to their leases, and the process goes on.
func TestPoolLateReturnAfterShutdown(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		reg := queue.NewRegistry()
		release := make(chan struct{})
		var once sync.Once
		free := func() { once.Do(func() { close(release) }) }
		t.Cleanup(free)
		started := make(chan string, 2)
		returned := make(chan struct{}, 2)
		_ = reg.Register("hang", queue.Handler{Run: func(_ context.Context, p json.RawMessage) (json.RawMessage, error) {
			started <- string(p)
			<-release // its context ignored
			returned <- struct{}{}
			return nil, nil
		}})
		cfg := fast
		cfg.Concurrency, cfg.Prefetch, cfg.ShutdownTimeout = 2, -1, 50*time.Millisecond
		cfg.JobTimeout = time.Hour
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: reg}, cfg)
		p := queue.NewPool(s)
		p.Start()
		late := mustEnqueue(t, s, queue.EnqueueRequest{Type: "hang", Payload: json.RawMessage(`"late"`)})
		timed := mustEnqueue(t, s, queue.EnqueueRequest{Type: "hang", Payload: json.RawMessage(`"timed"`), TimeoutMS: 700})
		waitFor(t, "a handler start", started)
		waitFor(t, "the other handler start", started)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_ = p.Shutdown(ctx) // gives up on both handlers
		cancel()
		time.Sleep(time.Second) // the 700ms timeout fires after the shutdown
		free()
		waitFor(t, "a late return", returned)
		waitFor(t, "the other late return", returned)
		time.Sleep(100 * time.Millisecond) // a send on the closed channel would panic by now
		for _, j := range []*queue.Job{late, timed} {
			diff(t, "a job left to its lease", queue.StatusRunning, mustGet(t, s, j.ID).Status)
		}
	})
}

// TestPoolKeptWorkerTakesNoJob: a worker kept waiting for its hung handler
// (WORKER_CONCURRENCY already replaced) is not free, prefetch or not: the
// fetcher takes no job for it, so none sits taken (running, its attempt
// counted) with no worker to start it (review simp37 LOW-5: one was taken,
// then shed back).
func TestPoolKeptWorkerTakesNoJob(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		reg := queue.NewRegistry()
		release := make(chan struct{})
		starts := make(chan string, 8)
		_ = reg.Register("hang", queue.Handler{Run: func(_ context.Context, p json.RawMessage) (json.RawMessage, error) {
			starts <- string(p)
			<-release // its context ignored
			return nil, nil
		}})
		cfg := fast
		cfg.Concurrency, cfg.Prefetch = 1, 1
		cfg.JobTimeout = 30 * time.Millisecond
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: reg}, cfg)
		startPool(t, s)
		t.Cleanup(func() { close(release) }) // before the pool's shutdown (cleanups run last first)
		for _, n := range []string{`"A"`, `"B"`} {
			j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "hang", Payload: json.RawMessage(n), MaxRetries: intp(0)})
			waitFor(t, "a hung handler's start", starts)
			waitDone(t, s, j)
		}
		c := mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping", MaxRetries: intp(0)})
		for range 50 {
			if st := mustGet(t, s, c.ID).Status; st != queue.StatusPending {
				t.Fatalf("the job beside two hung handlers is %s, want pending: taken for a worker that is not free", st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
