package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/brokertest"
	"github.com/refrakt/refrakt/internal/core/queue/membroker"
)

func intp(n int) *int { return &n }

func TestEnqueueValidation(t *testing.T) {
	tests := []struct {
		name string
		req  queue.EnqueueRequest
	}{
		{"unknown type", queue.EnqueueRequest{Type: "nope"}},
		{"empty type", queue.EnqueueRequest{}},
		{"ping with a payload", queue.EnqueueRequest{Type: "ping", Payload: json.RawMessage(`{"x":1}`)}},
		{"fail with a payload", queue.EnqueueRequest{Type: "fail", Payload: json.RawMessage(`[1]`)}},
		{"fail with retry true", queue.EnqueueRequest{Type: "fail", Payload: json.RawMessage(`{"retry":true}`)}},
		{"fail with retry a string", queue.EnqueueRequest{Type: "fail", Payload: json.RawMessage(`{"retry":"false"}`)}},
		{"fail with another field", queue.EnqueueRequest{Type: "fail", Payload: json.RawMessage(`{"retry":false,"x":1}`)}},
		{"fail with two objects", queue.EnqueueRequest{Type: "fail", Payload: json.RawMessage(`{} {}`)}},
		{"sleep without payload", queue.EnqueueRequest{Type: "sleep"}},
		{"sleep without ms", queue.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{}`)}},
		{"sleep with a string", queue.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"ms":"5"}`)}},
		{"sleep with an unknown field", queue.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"ms":5,"x":1}`)}},
		{"sleep negative", queue.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"ms":-1}`)}},
		{"sleep too long", queue.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"ms":3600001}`)}},
		{"payload not JSON", queue.EnqueueRequest{Type: "echo", Payload: json.RawMessage(`{`)}},
		{"negative max_retries", queue.EnqueueRequest{Type: "ping", MaxRetries: intp(-1)}},
		{"huge max_retries", queue.EnqueueRequest{Type: "ping", MaxRetries: intp(101)}},
		{"negative interval", queue.EnqueueRequest{Type: "ping", IntervalSeconds: -1}},
		{"negative delay", queue.EnqueueRequest{Type: "ping", DelayMS: -1}},
		{"delay past a year", queue.EnqueueRequest{Type: "ping", DelayMS: queue.MaxDelay.Milliseconds() + 1}},
		// delay_ms that overflow a time.Duration: to a negative one (was
		// "pending") and to under a millisecond (was "scheduled" for now).
		{"delay wrapping negative", queue.EnqueueRequest{Type: "ping", DelayMS: 9223372036855}},
		{"delay wrapping to nothing", queue.EnqueueRequest{Type: "ping", DelayMS: 18446744073710}},
		{"sleep wrapping negative", queue.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"ms":9223372036854775807}`)}},
		{"sleep wrapping to nothing", queue.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"ms":18446744073710}`)}},
		{"queue with a brace", queue.EnqueueRequest{Type: "ping", Queue: "a{b}"}},
		{"queue too long", queue.EnqueueRequest{Type: "ping", Queue: string(make([]byte, 65))}},
	}
	forEachBackend(t, func(t *testing.T, be backend) {
		b := be.new(t, nil)
		s := queue.NewService(queue.Deps{Broker: b}, queue.Config{})
		ctx := context.Background()
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.Enqueue(ctx, tt.req, queue.SourceAPI)
				if got := core.ErrorCode(err); got != core.CodeInvalid {
					t.Errorf("Enqueue: %v (code %q), want code invalid", err, got)
				}
				_, err = s.Submit(ctx, tt.req, queue.SourceAPI)
				if got := core.ErrorCode(err); got != core.CodeInvalid {
					t.Errorf("Submit: %v (code %q), want code invalid", err, got)
				}
			})
		}
		// A batch with one bad job stores nothing.
		_, err := s.EnqueueBatch(ctx, []queue.EnqueueRequest{{Type: "ping"}, {Type: "nope"}}, queue.SourceAPI)
		if core.ErrorCode(err) != core.CodeInvalid {
			t.Errorf("EnqueueBatch with a bad job: %v, want invalid", err)
		}
		jobs, err := s.List(ctx, queue.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "jobs stored after refused enqueues", 0, len(jobs))
	})
}

func TestEnqueueDefaults(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil)}, queue.Config{})
		j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping"})
		diff(t, "defaults", [4]any{"default", 3, queue.StatusPending, "api"}, [4]any{j.Queue, j.MaxRetries, j.Status, j.Source})
		if len(j.ID) != 22 {
			t.Errorf("id %q: want 22 URL-safe characters (128 bits)", j.ID)
		}
		j = mustEnqueue(t, s, queue.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"ms":1}`), Queue: "q.1", MaxRetries: intp(0), DelayMS: 5000, IntervalSeconds: 10})
		diff(t, "options", [4]any{"q.1", 0, queue.StatusScheduled, 10}, [4]any{j.Queue, j.MaxRetries, j.Status, j.IntervalSeconds})
		jobs, err := s.EnqueueBatch(context.Background(), []queue.EnqueueRequest{{Type: "ping"}, {Type: "echo", Queue: "other"}}, queue.SourceCLI)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			diff(t, "batch job stored", queue.StatusPending, mustGet(t, s, j.ID).Status)
		}
	})
}

func TestBuiltins(t *testing.T) {
	reg := queue.NewRegistry()
	diff(t, "built-in types", []string{"echo", "fail", "ping", "sleep"}, reg.Types())
	run := func(ctx context.Context, typ, payload string) (string, error) {
		h, _ := reg.Lookup(typ)
		var p json.RawMessage
		if payload != "" {
			p = json.RawMessage(payload)
		}
		res, err := h.Run(ctx, p)
		return string(res), err
	}
	tests := []struct {
		name, typ, payload, want string
		wantErr                  bool
	}{
		{"ping", "ping", "", `"pong"`, false},
		{"echo object", "echo", `{"a":[1,2]}`, `{"a":[1,2]}`, false},
		{"echo nothing", "echo", "", `null`, false},
		{"sleep", "sleep", `{"ms":1}`, `{"slept_ms":1}`, false},
		{"fail", "fail", "", ``, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := run(context.Background(), tt.typ, tt.payload)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			diff(t, "result", tt.want, got)
		})
	}
	t.Run("sleep honours cancellation", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, err := run(ctx, "sleep", `{"ms":60000}`); done <- err }()
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("sleep did not stop within 5s of its context's cancellation")
		}
	})
	t.Run("register", func(t *testing.T) {
		if err := reg.Register("bad name!", queue.Handler{Run: func(context.Context, json.RawMessage) (json.RawMessage, error) { return nil, nil }}); core.ErrorCode(err) != core.CodeInvalid {
			t.Errorf("Register of a bad name: %v", err)
		}
		if err := reg.Register("x", queue.Handler{}); core.ErrorCode(err) != core.CodeInvalid {
			t.Errorf("Register without Run: %v", err)
		}
	})
}

func TestBackoffBounds(t *testing.T) {
	b := queue.DefaultBackoff
	for retry, nominal := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 40: time.Hour} {
		for range 200 {
			d := b.Delay(retry)
			if lo, hi := time.Duration(float64(nominal)*0.8), time.Duration(float64(nominal)*1.2); d < lo || d > hi {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", retry, d, lo, hi)
			}
		}
	}
}

// TestBackoffNeverPastCap: the jitter spreads a delay at the cap below it
// (it reached 72 minutes under a 1 h cap).
func TestBackoffNeverPastCap(t *testing.T) {
	b := queue.DefaultBackoff
	var lowest time.Duration = b.Cap
	for retry := 15; retry < 60; retry++ {
		for range 200 {
			d := b.Delay(retry)
			if d > b.Cap {
				t.Fatalf("Delay(%d) = %v, past the cap %v", retry, d, b.Cap)
			}
			lowest = min(lowest, d)
		}
	}
	if lowest > time.Duration(float64(b.Cap)*0.95) {
		t.Errorf("delays at the cap are not spread: the lowest of 9000 is %v", lowest)
	}
}

// TestBackoffHugeCapNoOverflow (rvbackoff36 M1): with a cap far above any
// setting (a value in Redis is another process's word), the doubling stops
// before it overflows: every delay is positive and never past the cap,
// where retry 23 of a 1h base once came out negative.
func TestBackoffHugeCapNoOverflow(t *testing.T) {
	b := queue.Backoff{Base: time.Hour, Cap: math.MaxInt64, Jitter: 0.2}
	for retry := 1; retry <= 100; retry++ {
		if d := b.Delay(retry); d <= 0 || d > b.Cap {
			t.Fatalf("Delay(%d) = %v with a cap of %v", retry, d, b.Cap)
		}
	}
}

// TestRetryTiming runs a failing job in manual mode under a fake clock: its
// retries come 100, 200, 400ms (±20%) after each failure, then it is dead.
func TestRetryTiming(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		clock := brokertest.NewClock()
		rec := newRecorder()
		s := queue.NewService(queue.Deps{Broker: be.new(t, clock), Clock: clock, Observer: rec}, queue.Config{})
		ctx := context.Background()
		j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "fail", MaxRetries: intp(3)})
		for retry := 1; retry <= 4; retry++ {
			got, err := s.RunNext(ctx, "")
			if err != nil {
				t.Fatalf("RunNext: %v", err)
			}
			if retry == 4 {
				diff(t, "after max_retries", [2]any{queue.StatusDead, 4}, [2]any{got.Status, got.Attempts})
				break
			}
			nominal := time.Duration(100<<(retry-1)) * time.Millisecond
			wait := got.RunAt.Sub(clock.Now())
			if lo, hi := time.Duration(float64(nominal)*0.8), time.Duration(float64(nominal)*1.2); wait < lo || wait > hi {
				t.Errorf("retry %d due in %v, want within [%v, %v]", retry, wait, lo, hi)
			}
			diff(t, "status", queue.StatusFailed, got.Status)
			if _, err := s.RunNext(ctx, ""); core.ErrorCode(err) != core.CodeNotFound {
				t.Fatalf("RunNext before the retry is due: %v, want not_found", err)
			}
			clock.Advance(wait)
			if _, err := s.Tick(ctx); err != nil {
				t.Fatal(err)
			}
		}
		snap := rec.snapshot()
		diff(t, "transitions", map[string]int{"pending→running": 4, "running→failed": 3, "failed→pending": 3, "running→dead": 1}, snap["transitions"])
		diff(t, "enqueued", map[string]int{"api": 1, "retry": 3}, snap["enqueued"])
		diff(t, "finished", map[string]int{"fail:failed": 3, "fail:dead": 1}, snap["finished"])
		_ = j
	})
}

// TestManualMode: with no workers only run-next, run ID and tick move jobs.
func TestManualMode(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		clock := brokertest.NewClock()
		s := queue.NewService(queue.Deps{Broker: be.new(t, clock), Clock: clock}, queue.Config{Concurrency: queue.ManualMode, TickInterval: 10 * time.Millisecond})
		p := queue.NewPool(s)
		p.Start()
		defer p.Shutdown(context.Background())
		ctx := context.Background()
		a := mustEnqueue(t, s, queue.EnqueueRequest{Type: "echo", Payload: json.RawMessage(`"a"`)})
		b := mustEnqueue(t, s, queue.EnqueueRequest{Type: "echo", Payload: json.RawMessage(`"b"`)})
		later := mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping", DelayMS: 60_000})
		soon := mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping", DelayMS: 1000})
		time.Sleep(50 * time.Millisecond)
		clock.Advance(2 * time.Second)
		time.Sleep(50 * time.Millisecond)
		diff(t, "nothing moves by itself", []queue.Status{queue.StatusPending, queue.StatusScheduled}, []queue.Status{mustGet(t, s, a.ID).Status, mustGet(t, s, soon.ID).Status})

		got, err := s.RunNext(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "run-next runs the oldest", [3]any{a.ID, queue.StatusSucceeded, `"a"`}, [3]any{got.ID, got.Status, string(got.Result)})
		got, err = s.RunID(ctx, later.ID)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "run ID runs a scheduled job now", [2]any{later.ID, queue.StatusSucceeded}, [2]any{got.ID, got.Status})
		if _, err := s.RunID(ctx, later.ID); core.ErrorCode(err) != core.CodeConflict {
			t.Errorf("run ID of a succeeded job: %v, want conflict", err)
		}
		if _, err := s.RunID(ctx, "nope"); core.ErrorCode(err) != core.CodeNotFound {
			t.Errorf("run ID of an unknown job: %v, want not_found", err)
		}
		r, err := s.Tick(ctx)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "tick", queue.TickResult{Scheduled: 1}, r)
		for _, want := range []string{b.ID, soon.ID} {
			got, err := s.RunNext(ctx, "default")
			if err != nil {
				t.Fatal(err)
			}
			diff(t, "run-next order", want, got.ID)
		}
		if _, err := s.RunNext(ctx, ""); core.ErrorCode(err) != core.CodeNotFound {
			t.Errorf("run-next on an empty queue: %v, want not_found", err)
		}
	})
}

func TestCancelAndRequeue(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		rec := newRecorder()
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Observer: rec}, queue.Config{})
		ctx := context.Background()
		j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping"})
		if _, err := s.Cancel(ctx, j.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Cancel(ctx, j.ID); core.ErrorCode(err) != core.CodeConflict {
			t.Errorf("second cancel: %v, want conflict", err)
		}
		got, err := s.Requeue(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "requeued", queue.StatusPending, got.Status)
		if _, err := s.Requeue(ctx, j.ID); core.ErrorCode(err) != core.CodeConflict {
			t.Errorf("requeue of a pending job: %v, want conflict", err)
		}
		got, err = s.RunNext(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "runs after requeue", queue.StatusSucceeded, got.Status)
		diff(t, "transitions", map[string]int{"pending→cancelled": 1, "cancelled→pending": 1, "pending→running": 1, "running→succeeded": 1}, rec.snapshot()["transitions"])
	})
}

func TestAdmission(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		t.Run("max pending", func(t *testing.T) {
			rec := newRecorder()
			b := be.new(t, nil)
			s := queue.NewService(queue.Deps{Broker: b, Observer: rec}, queue.Config{Admission: queue.AdmissionConfig{MaxPending: 5}})
			accepted := 0
			var rej *queue.Rejection
			for range 10 {
				_, err := s.Submit(ctx, queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI)
				if err != nil {
					if !errors.As(err, &rej) {
						t.Fatalf("Submit: %v, want a *Rejection", err)
					}
					break
				}
				accepted++
			}
			diff(t, "accepted before refusal", 5, accepted)
			if rej == nil {
				t.Fatal("never refused")
			}
			diff(t, "reason", queue.ReasonMaxPending, rej.Reason)
			diff(t, "code", core.CodeUnavailable, core.ErrorCode(rej))
			if rej.RetryAfter < time.Second {
				t.Errorf("Retry-After %v, want at least 1s", rej.RetryAfter)
			}
			st, _ := b.Stats(ctx, "default")
			diff(t, "stored", [2]int64{5, 5}, [2]int64{st.Pending, st.Enqueued})
			diff(t, "rejections counted", map[string]int{"default:max_pending": 1}, rec.snapshot()["rejected"])
			// Another queue has its own bound; the developer Enqueue bypasses it.
			if _, err := s.Submit(ctx, queue.EnqueueRequest{Type: "ping", Queue: "other"}, queue.SourceAPI); err != nil {
				t.Errorf("Submit to another queue: %v", err)
			}
			if _, err := s.Enqueue(ctx, queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI); err != nil {
				t.Errorf("Enqueue without admission: %v", err)
			}
		})
		t.Run("max age", func(t *testing.T) {
			clock := brokertest.NewClock()
			s := queue.NewService(queue.Deps{Broker: be.new(t, clock), Clock: clock}, queue.Config{Admission: queue.AdmissionConfig{MaxAge: 10 * time.Second}})
			for range 3 {
				if _, err := s.Submit(ctx, queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI); err != nil {
					t.Fatalf("Submit to a fresh queue: %v", err)
				}
			}
			clock.Advance(10 * time.Second)
			if _, err := s.Submit(ctx, queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI); err != nil {
				t.Fatalf("Submit at exactly the age bound: %v", err)
			}
			clock.Advance(time.Second)
			_, err := s.Submit(ctx, queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI)
			var rej *queue.Rejection
			if !errors.As(err, &rej) || rej.Reason != queue.ReasonMaxAge {
				t.Fatalf("Submit past the age bound: %v, want a max_age rejection", err)
			}
			st, _ := s.Stats(ctx)
			diff(t, "refused job not stored", int64(4), st[0].Enqueued)
			// Draining the old jobs reopens the queue.
			for range 4 {
				if _, err := s.RunNext(ctx, ""); err != nil {
					t.Fatal(err)
				}
			}
			clock.Advance(time.Second)
			if _, err := s.Submit(ctx, queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI); err != nil {
				t.Errorf("Submit after draining: %v", err)
			}
		})
		t.Run("backend error", func(t *testing.T) {
			f := &flaky{Broker: be.new(t, nil)}
			s := queue.NewService(queue.Deps{Broker: f}, queue.Config{Admission: queue.AdmissionConfig{MaxPending: 5}})
			f.set("stats", true)
			_, err := s.Submit(ctx, queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI)
			var rej *queue.Rejection
			if !errors.As(err, &rej) || rej.Reason != queue.ReasonBackend || rej.RetryAfter < time.Second {
				t.Fatalf("Submit with the backend down: %v, want a backend rejection", err)
			}
			f.set("stats", false)
			jobs, _ := s.List(ctx, queue.Filter{})
			diff(t, "nothing stored", 0, len(jobs))
		})
	})
}

// TestAdmissionDrainedQueueNotRefused: jobs admitted since the last reading
// of a queue's gauges, or the time since it, may put the queue over a bound
// by this process's count while workers have in fact drained it: the queue
// is read again before such a refusal. A queue that drains as fast as it
// fills is never refused, however many jobs it takes within one reading's
// lifetime; one over its bound in fact still is.
func TestAdmissionDrainedQueueNotRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		t.Run("max pending", func(t *testing.T) {
			clock := brokertest.NewClock() // still: every check inside one reading's lifetime
			rec := newRecorder()
			s := queue.NewService(queue.Deps{Broker: be.new(t, clock), Clock: clock, Observer: rec},
				queue.Config{Admission: queue.AdmissionConfig{MaxPending: 2}})
			for i := range 10 {
				if _, err := s.Submit(ctx, queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI); err != nil {
					t.Fatalf("Submit %d to a queue drained after each job: %v", i+1, err)
				}
				if _, err := s.RunNext(ctx, ""); err != nil {
					t.Fatal(err)
				}
			}
			diff(t, "rejections counted", 0, len(rec.snapshot()["rejected"]))
			for range 2 {
				mustSubmit(t, s)
			}
			_, err := s.Submit(ctx, queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI)
			var rej *queue.Rejection
			if !errors.As(err, &rej) || rej.Reason != queue.ReasonMaxPending {
				t.Fatalf("Submit to a queue holding 2 of 2: %v, want a max_pending rejection", err)
			}
			diff(t, "rejections counted", map[string]int{"default:max_pending": 1}, rec.snapshot()["rejected"])
		})
		t.Run("max age", func(t *testing.T) {
			clock := brokertest.NewClock()
			s := queue.NewService(queue.Deps{Broker: be.new(t, clock), Clock: clock},
				queue.Config{Admission: queue.AdmissionConfig{MaxAge: 10 * time.Second}})
			mustSubmit(t, s)
			clock.Advance(9900 * time.Millisecond)
			mustSubmit(t, s) // read now: the oldest job has waited 9.9s
			if _, err := s.RunNext(ctx, ""); err != nil {
				t.Fatal(err)
			}
			clock.Advance(200 * time.Millisecond) // within the reading's lifetime
			if _, err := s.Submit(ctx, queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI); err != nil {
				t.Fatalf("Submit after the old job was started: %v", err)
			}
			// A queue whose oldest job is past the bound at the reading is
			// still refused.
			clock.Advance(10500 * time.Millisecond)
			_, err := s.Submit(ctx, queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI)
			var rej *queue.Rejection
			if !errors.As(err, &rej) || rej.Reason != queue.ReasonMaxAge {
				t.Fatalf("Submit behind an old job: %v, want a max_age rejection", err)
			}
		})
	})
}

// slowEnqueue stores a job a while after it is asked to: the write lands a
// round trip after admission let the job in, as on a loaded Redis.
type slowEnqueue struct{ queue.Broker }

func (s slowEnqueue) Enqueue(ctx context.Context, jobs ...queue.NewJob) error {
	time.Sleep(20 * time.Millisecond)
	return s.Broker.Enqueue(ctx, jobs...)
}

// TestAdmissionConcurrentBound: concurrent requests never take a queue past
// QUEUE_MAX_PENDING, though each reading of the gauges misses the jobs
// still being written (a code review found 51 of 10 let in when a new
// reading forgot them).
func TestAdmissionConcurrentBound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		clock := brokertest.NewClock()
		b := slowEnqueue{be.new(t, clock)}
		s := queue.NewService(queue.Deps{Broker: b, Clock: clock}, queue.Config{Admission: queue.AdmissionConfig{MaxPending: 10}})
		mustSubmit(t, s)
		var accepted atomic.Int64
		accepted.Add(1)
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Submit(context.Background(), queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI); err == nil {
					accepted.Add(1)
				}
			}()
		}
		wg.Wait()
		st, err := b.Stats(context.Background(), "default")
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "accepted and stored into a queue of QUEUE_MAX_PENDING 10", [2]int64{10, 10}, [2]int64{accepted.Load(), st.Pending})
	})
}

// TestAdmissionBackendErrorOnNewQueue: with the backend down, a job for a
// queue this process has not seen (whose admission needs the queue list) is
// refused like one for a known queue: a backend rejection, counted.
func TestAdmissionBackendErrorOnNewQueue(t *testing.T) {
	ctx := context.Background()
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			f := &flaky{Broker: be.new(t, nil)}
			obs := newRecorder()
			s := queue.NewService(queue.Deps{Broker: f, Observer: obs}, queue.Config{MaxQueues: 10, Admission: queue.AdmissionConfig{MaxPending: 5}})
			f.set("*", true) // every operation fails, the queue list's read included
			_, err := s.Submit(ctx, queue.EnqueueRequest{Type: "ping", Queue: "other"}, queue.SourceAPI)
			var rej *queue.Rejection
			if !errors.As(err, &rej) || rej.Reason != queue.ReasonBackend || rej.Queue != "other" || rej.RetryAfter < time.Second {
				t.Fatalf("Submit to a new queue with the backend down: %v, want a backend rejection for queue other", err)
			}
			diff(t, "rejections counted", map[string]int{"other:backend": 1}, obs.snapshot()["rejected"])
			f.set("*", false)
			jobs, err := s.List(ctx, queue.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			diff(t, "nothing stored", 0, len(jobs))
		})
	}
}

// TestAdmissionForgetsIdleQueues: admission control keeps a reading per
// queue it admitted jobs to; queues not admitted to for a while are
// forgotten, so removed queues (or any number of them, with
// QUEUE_MAX_QUEUES=0) do not grow the daemon's memory for good.
func TestAdmissionForgetsIdleQueues(t *testing.T) {
	clock := brokertest.NewClock()
	b := backends(t)[0].new(t, clock)
	s := queue.NewService(queue.Deps{Broker: b, Clock: clock}, queue.Config{Admission: queue.AdmissionConfig{MaxPending: 5}})
	ctx := context.Background()
	for i := range 300 {
		if _, err := s.Submit(ctx, queue.EnqueueRequest{Type: "ping", Queue: fmt.Sprintf("q%d", i)}, queue.SourceAPI); err != nil {
			t.Fatal(err)
		}
	}
	diff(t, "queues tracked after 300 admitted", 300, s.Admission().Tracked())
	clock.Advance(2 * time.Minute)
	if _, err := s.Submit(ctx, queue.EnqueueRequest{Type: "ping", Queue: "q0"}, queue.SourceAPI); err != nil {
		t.Fatal(err)
	}
	diff(t, "queues tracked after two idle minutes and one job", 1, s.Admission().Tracked())
}

func TestRetryAfterFromDrainRate(t *testing.T) {
	clock := brokertest.NewClock()
	b := backends(t)[0].new(t, clock)
	s := queue.NewService(queue.Deps{Broker: b, Clock: clock}, queue.Config{Admission: queue.AdmissionConfig{MaxPending: 20}})
	ctx := context.Background()
	for range 20 {
		mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping"})
	}
	if _, err := s.Submit(ctx, queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI); err == nil {
		t.Fatal("Submit to a full queue succeeded")
	}
	// Drain 2 jobs a second for 2 seconds, refilling: the rate is 2/s.
	for range 2 {
		clock.Advance(time.Second)
		for range 2 {
			if _, err := s.RunNext(ctx, ""); err != nil {
				t.Fatal(err)
			}
			mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping"})
		}
		_, _ = s.Submit(ctx, queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI)
	}
	mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping"}) // 21 pending: 2 over the bound
	clock.Advance(time.Second)
	_, err := s.Submit(ctx, queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI)
	var rej *queue.Rejection
	if !errors.As(err, &rej) {
		t.Fatalf("Submit: %v, want a rejection", err)
	}
	// 2 jobs over the bound at ~1-2 jobs/s: 1 or 2 seconds.
	if rej.RetryAfter < time.Second || rej.RetryAfter > 2*time.Second {
		t.Errorf("Retry-After %v, want 1-2s from a drain rate of about 1-2 jobs/s", rej.RetryAfter)
	}
}

// TestMaxQueues: a public job (Submit) for a new queue beyond MaxQueues is
// refused as invalid and stores nothing; jobs for existing queues pass, even
// when the count is over the bound; an operator's Enqueue is not bound; the
// count is the broker's, so a second service on the same backend (another
// daemon) sees the first one's queues; concurrent first jobs of new queues
// cannot slip past the bound together; a job admission control refuses
// leaves no reservation behind; a queue another service made is seen at
// once, even right after a refusal.
func TestMaxQueues(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		ping := func(q string) queue.EnqueueRequest { return queue.EnqueueRequest{Type: "ping", Queue: q} }
		b := be.new(t, nil)
		a := queue.NewService(queue.Deps{Broker: b}, queue.Config{MaxQueues: 3})
		for _, q := range []string{"q1", "q2"} {
			if _, err := a.Submit(ctx, ping(q), queue.SourceAPI); err != nil {
				t.Fatalf("submit in %s: %v", q, err)
			}
		}
		// Another service on the same backend: q1 and q2 count for it too.
		other := queue.NewService(queue.Deps{Broker: b}, queue.Config{MaxQueues: 3})
		if _, err := other.Submit(ctx, ping("q3"), queue.SourceAPI); err != nil {
			t.Fatalf("third queue: %v", err)
		}
		refused := func(what string, err error) {
			t.Helper()
			if core.ErrorCode(err) != core.CodeInvalid || !strings.Contains(err.Error(), "at most 3 queues") {
				t.Errorf("%s: %v (code %q), want invalid naming the bound", what, err, core.ErrorCode(err))
			}
		}
		for _, s := range []*queue.Service{a, other} {
			_, err := s.Submit(ctx, ping("q4"), queue.SourceAPI)
			refused("Submit in a fourth queue", err)
			if _, err := s.Submit(ctx, ping("q1"), queue.SourceAPI); err != nil {
				t.Errorf("submit in an existing queue: %v", err)
			}
		}
		// An operator may make more queues; the public still may not, and
		// the existing ones (all five, over the bound) still take jobs.
		if _, err := a.Enqueue(ctx, ping("ops"), queue.SourceCLI); err != nil {
			t.Fatalf("operator's queue: %v", err)
		}
		if _, err := a.EnqueueBatch(ctx, []queue.EnqueueRequest{ping("ops2"), ping("q1")}, queue.SourceCLI); err != nil {
			t.Fatalf("operator's batch: %v", err)
		}
		// other has just refused q4; a queue made by a then is taken at once.
		if _, err := a.Enqueue(ctx, ping("ops3"), queue.SourceCLI); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Submit(ctx, ping("ops3"), queue.SourceAPI); err != nil {
			t.Errorf("submit in a queue another service made just now: %v", err)
		}
		fresh := queue.NewService(queue.Deps{Broker: b}, queue.Config{MaxQueues: 3})
		for _, s := range []*queue.Service{a, fresh} {
			for _, q := range []string{"q2", "ops", "ops2"} {
				if _, err := s.Submit(ctx, ping(q), queue.SourceAPI); err != nil {
					t.Errorf("submit in existing %s over the bound: %v", q, err)
				}
			}
			_, err := s.Submit(ctx, ping("q5"), queue.SourceAPI)
			refused("Submit in a new queue over the bound", err)
		}
		names, err := b.Queues(ctx)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "queues", []string{"ops", "ops2", "ops3", "q1", "q2", "q3"}, names)
		jobs, err := a.List(ctx, queue.Filter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "jobs stored", 3+2+3+2+2*3, len(jobs))

		// Concurrent first jobs of new queues on a fresh backend: never more
		// queues than the bound.
		b2 := be.new(t, nil)
		s := queue.NewService(queue.Deps{Broker: b2}, queue.Config{MaxQueues: 4})
		var wg sync.WaitGroup
		var ok atomic.Int64
		for i := range 16 {
			wg.Go(func() {
				if _, err := s.Submit(ctx, ping(fmt.Sprintf("c%d", i)), queue.SourceAPI); err == nil {
					ok.Add(1)
				} else if core.ErrorCode(err) != core.CodeInvalid {
					t.Errorf("concurrent submit: %v", err)
				}
			})
		}
		wg.Wait()
		names, err = b2.Queues(ctx)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "admitted", int64(4), ok.Load())
		diff(t, "queues after concurrent first jobs", 4, len(names))

		// A new queue that admission control refuses (here: its gauges
		// cannot be read) is not counted: with a bound of 1, another new
		// queue still fits afterwards.
		sick := &statsFailBroker{Broker: be.new(t, nil)}
		adm := queue.NewService(queue.Deps{Broker: sick}, queue.Config{MaxQueues: 1, Admission: queue.AdmissionConfig{MaxPending: 10}})
		sick.fail.Store(true)
		var rej *queue.Rejection
		if _, err := adm.Submit(ctx, ping("refused"), queue.SourceAPI); !errors.As(err, &rej) {
			t.Fatalf("submit while the gauges fail: %v, want a rejection", err)
		}
		sick.fail.Store(false)
		if _, err := adm.Submit(ctx, ping("after"), queue.SourceAPI); err != nil {
			t.Errorf("a new queue after a refused one, bound 1: %v", err)
		}
	})
}

// TestRemoveQueueFreesTheBound: a removed queue no longer counts against
// QUEUE_MAX_QUEUES, on the service that removed it at once; a busy queue
// is refused and keeps its place; a bad name is invalid.
func TestRemoveQueueFreesTheBound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		ping := func(q string) queue.EnqueueRequest { return queue.EnqueueRequest{Type: "ping", Queue: q} }
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil)}, queue.Config{MaxQueues: 2})
		var junk *queue.Job
		for _, q := range []string{"work", "junk"} {
			j, err := s.Submit(ctx, ping(q), queue.SourceAPI)
			if err != nil {
				t.Fatal(err)
			}
			junk = j
		}
		if _, err := s.Submit(ctx, ping("mail"), queue.SourceAPI); core.ErrorCode(err) != core.CodeInvalid {
			t.Fatalf("a third queue: %v, want refused", err)
		}
		_, err := s.RemoveQueue(ctx, "junk")
		if core.ErrorCode(err) != core.CodeConflict || !strings.Contains(err.Error(), "1 pending") {
			t.Fatalf("RemoveQueue with a pending job: %v, want a conflict naming it", err)
		}
		if _, err := s.Cancel(ctx, junk.ID); err != nil {
			t.Fatal(err)
		}
		n, err := s.RemoveQueue(ctx, "junk")
		if err != nil || n != 1 {
			t.Fatalf("RemoveQueue: %d, %v; want 1 job removed", n, err)
		}
		// The removed name is new again: with an operator's queue in its
		// place, the bound is reached.
		mail, err := s.Enqueue(ctx, ping("mail"), queue.SourceCLI)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Submit(ctx, ping("junk"), queue.SourceAPI); core.ErrorCode(err) != core.CodeInvalid {
			t.Errorf("the removed queue's name, at the bound: %v, want refused", err)
		}
		// Without it, the place is free.
		if _, err := s.Cancel(ctx, mail.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RemoveQueue(ctx, "mail"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Submit(ctx, ping("news"), queue.SourceAPI); err != nil {
			t.Errorf("a new queue in a removed one's place: %v", err)
		}
		for _, bad := range []string{"", "a b", strings.Repeat("q", 65)} {
			if _, err := s.RemoveQueue(ctx, bad); core.ErrorCode(err) != core.CodeInvalid {
				t.Errorf("RemoveQueue(%q): %v, want invalid", bad, err)
			}
		}
		if _, err := s.RemoveQueue(ctx, "never"); core.ErrorCode(err) != core.CodeNotFound {
			t.Errorf("RemoveQueue of an unknown queue: %v, want not found", err)
		}
	})
}

// TestMaxQueuesReadsInParallel: the broker reads for new queues are not
// serialized behind one lock, so a slow backend delays each request by one
// read, not by the reads of every request ahead of it. Each read here waits
// until all four are in flight: a lock held across the read would leave the
// first waiting alone until its timeout.
func TestMaxQueuesReadsInParallel(t *testing.T) {
	const n = 4
	bb := &barrierBroker{Broker: membroker.New(membroker.Options{}), n: n, all: make(chan struct{})}
	s := queue.NewService(queue.Deps{Broker: bb}, queue.Config{MaxQueues: 10})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := s.Submit(context.Background(), queue.EnqueueRequest{Type: "ping", Queue: fmt.Sprintf("p%d", i)}, queue.SourceAPI); err != nil {
				t.Errorf("submit %d: %v", i, err)
			}
		})
	}
	wg.Wait()
}

// barrierBroker's Queues returns once n calls are in it (or fails after 10s).
type barrierBroker struct {
	queue.Broker
	n       int
	entered atomic.Int64
	all     chan struct{}
}

func (b *barrierBroker) Queues(ctx context.Context) ([]string, error) {
	if b.entered.Add(1) == int64(b.n) {
		close(b.all)
	}
	select {
	case <-b.all:
		return b.Broker.Queues(ctx)
	case <-time.After(10 * time.Second):
		return nil, errors.New("the other reads never came: reads are serialized")
	}
}

// statsFailBroker fails Stats while fail is set.
type statsFailBroker struct {
	queue.Broker
	fail atomic.Bool
}

func (b *statsFailBroker) Stats(ctx context.Context, q string) (queue.Stats, error) {
	if b.fail.Load() {
		return queue.Stats{}, errors.New("gauges unavailable")
	}
	return b.Broker.Stats(ctx, q)
}

// TestLongIDNotFound: an id longer than any job's is not found, on every
// path that takes an id, and the answer does not repeat it.
func TestLongIDNotFound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil)}, queue.Config{})
		ctx := context.Background()
		long := strings.Repeat("x", 5000)
		for name, call := range map[string]func() error{
			"Get":     func() error { _, err := s.Get(ctx, long); return err },
			"Cancel":  func() error { _, err := s.Cancel(ctx, long); return err },
			"Requeue": func() error { _, err := s.Requeue(ctx, long); return err },
			"RunID":   func() error { _, err := s.RunID(ctx, long); return err },
		} {
			err := call()
			if core.ErrorCode(err) != core.CodeNotFound || len(core.ErrorMessage(err)) > 200 {
				t.Errorf("%s of a 5000-byte id: %v, want not found, in a short message", name, err)
			}
		}
	})
}

// TestManualRunInterruptedHandsBack: a manual run whose caller stops
// waiting (the CLI's Ctrl-C, the daemon's shutdown) is not the job's
// failure: the job goes back to pending, its attempt not counted, and the
// error says so. A job with no retries left went dead.
func TestManualRunInterruptedHandsBack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		obs := newRecorder()
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Observer: obs}, queue.Config{Concurrency: queue.ManualMode})
		zero := 0
		j, err := s.Enqueue(context.Background(), queue.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"ms":5000}`), MaxRetries: &zero}, queue.SourceAPI)
		if err != nil {
			t.Fatal(err)
		}
		for _, run := range []func(context.Context) (*queue.Job, error){
			func(ctx context.Context) (*queue.Job, error) { return s.RunID(ctx, j.ID) },
			func(ctx context.Context) (*queue.Job, error) { return s.RunNext(ctx, "") },
		} {
			// Long enough for run-next's reads on a loaded machine; the
			// handler sleeps 5 s.
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			_, err := run(ctx)
			cancel()
			if core.ErrorCode(err) != core.CodeUnavailable || !errors.Is(err, queue.ErrInterrupted) || !strings.Contains(core.ErrorMessage(err), "handed back to pending") {
				t.Fatalf("interrupted run: %v, want unavailable, handed back", err)
			}
			got, err := s.Get(context.Background(), j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != queue.StatusPending || got.Attempts != 0 {
				t.Fatalf("after the interrupted run: status %s, attempts %d; want pending, 0", got.Status, got.Attempts)
			}
		}
		if n := obs.snapshot()["transitions"]["running→pending"]; n != 2 {
			t.Errorf("hand-backs counted: %d, want 2 (%v)", n, obs.snapshot()["transitions"])
		}
	})
}

// TestRunNextOldestOfAllQueues: run-next without a queue runs the pending
// job that has waited longest, whatever its queue (it took the queues in a
// per-process turn, so a daemon and the CLI ran different jobs).
func TestRunNextOldestOfAllQueues(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		clock := brokertest.NewClock()
		s := queue.NewService(queue.Deps{Broker: be.new(t, clock), Clock: clock}, queue.Config{Concurrency: queue.ManualMode})
		ctx := context.Background()
		order := []string{"default", "zz", "aa", "default", "mm"}
		var want []string
		for _, q := range order {
			j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping", Queue: q})
			want = append(want, j.ID)
			clock.Advance(time.Second)
		}
		var got []string
		for range order {
			j, err := s.RunNext(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, j.ID)
		}
		diff(t, "run order", want, got)
	})
}

// TestRunNextSkipsPausedQueues (rvpause36 L3): run-next without a queue
// runs the job that has waited longest among the queues that are not
// paused, and with every pending job in a paused queue it finds none; with
// the paused queue named it says the queue is paused (a conflict).
func TestRunNextSkipsPausedQueues(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		clock := brokertest.NewClock()
		s := queue.NewService(queue.Deps{Broker: be.new(t, clock), Clock: clock}, queue.Config{Concurrency: queue.ManualMode})
		ctx := context.Background()
		var ids []string
		for _, q := range []string{"held", "held", "bb", "aa", "bb"} {
			ids = append(ids, mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping", Queue: q}).ID)
			clock.Advance(time.Second)
		}
		if _, err := s.SetPaused(ctx, "held", true); err != nil {
			t.Fatal(err)
		}
		var got []string
		for range 3 {
			j, err := s.RunNext(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, j.ID)
		}
		diff(t, "run order, the paused queue's two older jobs left", ids[2:], got)
		if _, err := s.RunNext(ctx, ""); core.ErrorCode(err) != core.CodeNotFound ||
			core.ErrorMessage(err) != "no pending job but in paused queues (held): refrakt jobs resume QUEUE runs them" {
			t.Errorf("run-next with only a paused queue's jobs pending: %v, want not found naming the paused queue", err)
		}
		if _, err := s.RunNext(ctx, "held"); core.ErrorCode(err) != core.CodeConflict {
			t.Errorf("run-next of the paused queue: %v, want a conflict", err)
		}
		if j, err := s.Get(ctx, ids[0]); err != nil || j.Status != queue.StatusPending {
			t.Errorf("the paused queue's oldest job: %v, want pending", err)
		}
	})
}

// TestSourceFollowsReenqueue: a job's source says how it came to wait last:
// retry after a failed attempt, schedule after a recurring run (README's
// job fields); it stayed api.
func TestSourceFollowsReenqueue(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil)}, queue.Config{Concurrency: queue.ManualMode})
		ctx := context.Background()
		one := 1
		failing := mustEnqueue(t, s, queue.EnqueueRequest{Type: "fail", MaxRetries: &one})
		recurring := mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping", IntervalSeconds: 60})
		for _, tt := range []struct {
			id     string
			status queue.Status
			source string
		}{{failing.ID, queue.StatusFailed, queue.SourceRetry}, {recurring.ID, queue.StatusScheduled, queue.SourceSchedule}} {
			j, err := s.RunID(ctx, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			diff(t, "status and source after a run", [2]any{tt.status, tt.source}, [2]any{j.Status, j.Source})
		}
	})
}

// TestOtherQueuesNameReserved: metrics and snapshots sum the queues beyond
// the busiest under the name _other; a queue of that name would be mixed
// into that sum, so no job may make it.
func TestOtherQueuesNameReserved(t *testing.T) {
	s := queue.NewService(queue.Deps{Broker: membroker.New(membroker.Options{})}, queue.Config{})
	ctx := context.Background()
	_, err := s.Submit(ctx, queue.EnqueueRequest{Type: "ping", Queue: queue.OtherQueues}, queue.SourceAPI)
	diff(t, "error code", core.CodeInvalid, core.ErrorCode(err))
	jobs, err := s.List(ctx, queue.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "jobs stored", 0, len(jobs))
}

// TestPayloadUnicode: a payload must be JSON text a client other than Go can
// read back: UTF-8, with no escaped half of a surrogate pair. Such bytes were
// stored as sent and made every listing of the queue unparseable.
func TestPayloadUnicode(t *testing.T) {
	s := queue.NewService(queue.Deps{Broker: membroker.New(membroker.Options{})}, queue.Config{})
	for _, p := range []string{"\"\xff\xfe\"", `"\ud800"`, `"\udc00"`, `"\ud800x"`, `"\ud800\u0041"`, `{"k":"\udfff"}`, "{\"\xc3\":1}"} {
		if _, err := s.Prepare(queue.EnqueueRequest{Type: "echo", Payload: json.RawMessage(p)}, queue.SourceAPI); core.ErrorCode(err) != core.CodeInvalid {
			t.Errorf("payload %q: %v, want refused as invalid", p, err)
		}
	}
	for _, p := range []string{`"é"`, "\"\xc3\xa9\"", `"\u00e9"`, `"\ud83d\ude00"`, `"\\ud800"`, `{"\u0041":"\\"}`, `[1,"x\"\ud800\udc00"]`} {
		if _, err := s.Prepare(queue.EnqueueRequest{Type: "echo", Payload: json.RawMessage(p)}, queue.SourceAPI); err != nil {
			t.Errorf("payload %q: %v, want accepted", p, err)
		}
	}
}

func mustSubmit(t *testing.T, s *queue.Service) {
	t.Helper()
	if _, err := s.Submit(context.Background(), queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI); err != nil {
		t.Fatalf("Submit: %v", err)
	}
}

// TestDeadReported: the observer is told of a job whose last attempt
// failed, with its error (the daemon logs it), when an operator ran it
// (run-next; TestDeadJobsLogged in internal/daemon covers the workers); a
// failure with retries left is not a death.
func TestDeadReported(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		rec := newRecorder()
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Observer: rec}, queue.Config{})
		ctx := context.Background()
		retried := mustEnqueue(t, s, queue.EnqueueRequest{Type: "fail", MaxRetries: intp(5)})
		if got, err := s.RunNext(ctx, ""); err != nil || got.ID != retried.ID || got.Status != queue.StatusFailed {
			t.Fatalf("RunNext: %+v, %v; want %s failed", got, err, retried.ID)
		}
		doomed := mustEnqueue(t, s, queue.EnqueueRequest{Type: "fail", MaxRetries: intp(0)})
		if got, err := s.RunNext(ctx, ""); err != nil || got.ID != doomed.ID || got.Status != queue.StatusDead {
			t.Fatalf("RunNext: %+v, %v; want %s dead", got, err, doomed.ID)
		}
		rec.mu.Lock()
		got := append([]string(nil), rec.dead...)
		rec.mu.Unlock()
		diff(t, "dead jobs reported", []string{doomed.ID + " fail: fail: this job always fails"}, got)
	})
}

// TestDeadByTickReported: a job whose worker was lost during its last
// attempt goes dead at a later tick, and the observer is told of it too (the
// daemon logs it: TestLeaseExpiredDeadJobsLogged), saying why, with its
// queue, type and attempts; a handler's last failure says its own cause.
func TestDeadByTickReported(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		rec := newRecorder()
		clock := brokertest.NewClock()
		s := queue.NewService(queue.Deps{Broker: be.new(t, clock), Observer: rec, Clock: clock}, queue.Config{})
		ctx := context.Background()
		lost := mustEnqueue(t, s, queue.EnqueueRequest{Type: "sleep", Queue: "night", Payload: json.RawMessage(`{"ms":1}`), MaxRetries: intp(0)})
		// A worker takes it and is never heard of again (a daemon killed).
		if ls, err := s.Broker().Fetch(ctx, queue.FetchRequest{N: 1, Lease: s.Config().Lease}); err != nil || len(ls) != 1 {
			t.Fatalf("Fetch: %v, %v", ls, err)
		}
		failed := mustEnqueue(t, s, queue.EnqueueRequest{Type: "fail", MaxRetries: intp(0)})
		if got, err := s.RunNext(ctx, "default"); err != nil || got.Status != queue.StatusDead {
			t.Fatalf("RunNext: %+v, %v; want %s dead", got, err, failed.ID)
		}
		clock.Advance(s.Config().Lease)
		r, err := s.Tick(ctx)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "tick", queue.TickResult{RecoveredDead: 1, Dead: []queue.DeadJob{{ID: lost.ID, Queue: "night", Type: "sleep", Attempts: 1, LastError: "lease expired"}}}, r)
		rec.mu.Lock()
		got := [2]any{append([]string(nil), rec.dead...), append([]queue.DeadCause(nil), rec.deadWhy...)}
		rec.mu.Unlock()
		diff(t, "dead jobs reported, and why", [2]any{
			[]string{failed.ID + " fail: fail: this job always fails", lost.ID + " sleep: lease expired"},
			[]queue.DeadCause{queue.DeadRetriesExhausted, queue.DeadLeaseExpired},
		}, got)
		diff(t, "transitions to dead", 2, rec.snapshot()["transitions"]["running→dead"])
	})
}

// TestTransitionsListed: queue.Transitions, whose counters the daemon shows
// from 0, are exactly the moves a Service reports: each is made here once
// at least, and none is reported that the list lacks (its counter would
// appear only at its first move, which increase() does not see).
func TestTransitionsListed(t *testing.T) {
	rec := newRecorder()
	clock := brokertest.NewClock()
	s := queue.NewService(queue.Deps{Broker: membroker.New(membroker.Options{Clock: clock}), Observer: rec, Clock: clock}, queue.Config{})
	ctx := context.Background()
	run := func(j *queue.Job, want queue.Status) {
		t.Helper()
		if got, err := s.RunID(ctx, j.ID); err != nil || got.Status != want {
			t.Fatalf("RunID(%s): %+v, %v; want %s", j.Type, got, err, want)
		}
	}
	must := func(_ *queue.Job, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	tick := func() {
		t.Helper()
		if _, err := s.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	hold := func(typ string, retries int) *queue.Job { // taken by a worker that is then lost
		t.Helper()
		j := mustEnqueue(t, s, queue.EnqueueRequest{Type: typ, Queue: "held", MaxRetries: intp(retries)})
		if ls, err := s.Broker().Fetch(ctx, queue.FetchRequest{Queues: []string{"held"}, N: 1, Lease: s.Config().Lease}); err != nil || len(ls) != 1 {
			t.Fatalf("Fetch: %v, %v", ls, err)
		}
		return j
	}

	// scheduled → pending (tick), pending → running → succeeded; a
	// recurring job's running → scheduled.
	due := mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping", DelayMS: 1000})
	clock.Advance(time.Second)
	tick()
	run(due, queue.StatusSucceeded)
	run(mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping", IntervalSeconds: 60}), queue.StatusScheduled)
	// running → failed, failed → pending (tick), running → dead, then
	// dead → pending, pending → cancelled, cancelled → pending.
	doomed := mustEnqueue(t, s, queue.EnqueueRequest{Type: "fail", MaxRetries: intp(1)})
	run(doomed, queue.StatusFailed)
	clock.Advance(2 * time.Second)
	tick()
	run(doomed, queue.StatusDead)
	must(s.Requeue(ctx, doomed.ID))
	must(s.Cancel(ctx, doomed.ID))
	must(s.Requeue(ctx, doomed.ID))
	// scheduled → running (run ID), scheduled → cancelled.
	run(mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping", DelayMS: 3_600_000}), queue.StatusSucceeded)
	must(s.Cancel(ctx, mustEnqueue(t, s, queue.EnqueueRequest{Type: "ping", DelayMS: 3_600_000}).ID))
	// failed → running (run ID), failed → cancelled.
	retried := mustEnqueue(t, s, queue.EnqueueRequest{Type: "fail", MaxRetries: intp(5)})
	run(retried, queue.StatusFailed)
	run(retried, queue.StatusFailed)
	must(s.Cancel(ctx, retried.ID))
	// running → cancelled; running → pending (a lease expired, tick).
	must(s.Cancel(ctx, hold("ping", 0).ID))
	hold("ping", 1)
	clock.Advance(s.Config().Lease)
	tick()

	var want []string
	for _, tr := range queue.Transitions {
		want = append(want, string(tr.From)+"→"+string(tr.To))
	}
	slices.Sort(want)
	got := slices.Sorted(maps.Keys(rec.snapshot()["transitions"]))
	diff(t, "the moves reported", want, got)
}
