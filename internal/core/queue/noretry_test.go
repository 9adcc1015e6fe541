package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
)

// noRetryHandlers registers the handlers of the no-retry tests: "final"
// fails with queue.NoRetry wrapped again by another layer, "sentinel" with
// ErrNoRetry wrapped by %w, "finalafter" with a Retry-After as well,
// "plain" with an ordinary error, and "finalslow" outlives its timeout and
// then fails with NoRetry.
func noRetryHandlers(t *testing.T) *queue.Registry {
	t.Helper()
	reg := queue.NewRegistry()
	fails := func(err error) queue.Handler {
		return queue.Handler{Run: func(context.Context, json.RawMessage) (json.RawMessage, error) { return nil, err }}
	}
	for typ, h := range map[string]queue.Handler{
		"final":      fails(fmt.Errorf("deliver: %w", queue.NoRetry(errors.New("bad address")))),
		"sentinel":   fails(fmt.Errorf("account deleted: %w", queue.ErrNoRetry)),
		"finalafter": fails(&queue.RetryAfterError{Err: queue.NoRetry(errors.New("busy, and never")), After: time.Hour}),
		"plain":      fails(errors.New("boom")),
		"finalslow": {Run: func(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
			<-ctx.Done()
			return nil, queue.NoRetry(errors.New("too slow"))
		}},
	} {
		if err := reg.Register(typ, h); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

// TestNoRetryManual: a manual run (run ID) whose handler fails with a
// failure not to retry, however wrapped, makes its job dead after one
// attempt with 5 retries left (or none), last_error its message and
// "(not retried)"; a Retry-After it carries loses; an ordinary failure is
// retried; a run its timeout ended is retried although its handler said no
// retry. The observer times the run dead, counts running → dead and is
// told why.
func TestNoRetryManual(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		rec := newRecorder()
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: noRetryHandlers(t), Observer: rec},
			queue.Config{JobTimeout: 50 * time.Millisecond})
		ctx := context.Background()
		for _, tt := range []struct {
			name, typ  string
			maxRetries int
			status     queue.Status
			lastErr    string
		}{
			{"final", "final", 5, queue.StatusDead, "deliver: bad address (not retried)"},
			{"sentinel", "sentinel", 5, queue.StatusDead, "account deleted: final failure (not retried)"},
			{"finalafter", "finalafter", 5, queue.StatusDead, "busy, and never (not retried)"},
			{"plain", "plain", 5, queue.StatusFailed, "boom"},
			{"finalslow", "finalslow", 5, queue.StatusFailed, "timed out after 50ms"},
			// No retry left to lose: the suffix still says its handler's verdict.
			{"final, max_retries 0", "final", 0, queue.StatusDead, "deliver: bad address (not retried)"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				j := mustEnqueue(t, s, queue.EnqueueRequest{Type: tt.typ, MaxRetries: intp(tt.maxRetries)})
				got, err := s.RunID(ctx, j.ID)
				if err != nil {
					t.Fatal(err)
				}
				diff(t, "after one attempt", [4]any{tt.status, 1, 1, tt.lastErr},
					[4]any{got.Status, got.Attempts, got.Retries, got.LastError})
				if tt.status == queue.StatusDead && got.FinishedAt.IsZero() {
					t.Errorf("a dead job without finished_at")
				}
			})
		}
		snap := rec.snapshot()
		diff(t, "runs timed", map[string]int{"final:dead": 2, "sentinel:dead": 1, "finalafter:dead": 1, "plain:failed": 1, "finalslow:timeout": 1},
			snap["finished"])
		diff(t, "running → dead", 4, snap["transitions"]["running→dead"])
		rc := s.RunCounts()
		diff(t, "run counts: failed, dead", [2]int64{2, 4}, [2]int64{rc.Failed, rc.Dead})
		rec.mu.Lock()
		defer rec.mu.Unlock()
		diff(t, "dead causes", slices.Repeat([]queue.DeadCause{queue.DeadNotRetried}, 4), rec.deadWhy)
	})
}

// TestNoRetryPool: the pool's workers honour a failure not to retry (dead
// after one attempt, max_retries 5), while an ordinary failure is retried,
// and so is a run its timeout ended whose handler then says no retry; the
// observer times the runs so and is told why each died.
func TestNoRetryPool(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		rec := newRecorder()
		cfg := fast
		cfg.Backoff = quickRetry
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: noRetryHandlers(t), Observer: rec}, cfg)
		startPool(t, s)
		final := mustEnqueue(t, s, queue.EnqueueRequest{Type: "final", MaxRetries: intp(5)})
		plain := mustEnqueue(t, s, queue.EnqueueRequest{Type: "plain", MaxRetries: intp(2)})
		slow := mustEnqueue(t, s, queue.EnqueueRequest{Type: "finalslow", MaxRetries: intp(1), TimeoutMS: 50})
		got := waitDone(t, s, slow)
		diff(t, "timed out: retried, its handler's no-retry dropped", [3]any{queue.StatusDead, 2, "timed out after 50ms"},
			[3]any{got.Status, got.Attempts, got.LastError})
		got = waitDone(t, s, final)
		diff(t, "no retry", [4]any{queue.StatusDead, 1, 1, "deliver: bad address (not retried)"},
			[4]any{got.Status, got.Attempts, got.Retries, got.LastError})
		got = waitDone(t, s, plain)
		diff(t, "an ordinary failure", [3]any{queue.StatusDead, 3, "boom"}, [3]any{got.Status, got.Attempts, got.LastError})
		eventually(t, "runs timed", func() bool {
			f := rec.snapshot()["finished"]
			return f["final:dead"] == 1 && f["plain:failed"] == 2 && f["plain:dead"] == 1 && f["finalslow:timeout"] == 2
		})
		rec.mu.Lock()
		defer rec.mu.Unlock()
		diff(t, "dead causes", []queue.DeadCause{queue.DeadNotRetried, queue.DeadRetriesExhausted, queue.DeadRetriesExhausted},
			slices.Sorted(slices.Values(rec.deadWhy)))
	})
}

// TestNoRetryError: NoRetry keeps its error's message and chain, marks it
// for errors.Is, and leaves nil nil.
func TestNoRetryError(t *testing.T) {
	base := errors.New("bad address")
	err := fmt.Errorf("deliver: %w", queue.NoRetry(base))
	diff(t, "message", "deliver: bad address", err.Error())
	diff(t, "errors.Is ErrNoRetry, and its cause", [2]bool{true, true}, [2]bool{errors.Is(err, queue.ErrNoRetry), errors.Is(err, base)})
	diff(t, "an ordinary error", false, errors.Is(base, queue.ErrNoRetry))
	diff(t, "nil", nil, queue.NoRetry(nil))
}

// TestFailNoRetry: the built-in fail type with {"retry":false} goes dead
// at its first attempt of six, its error saying it was not retried; with
// {} or no payload it is retried as before.
func TestFailNoRetry(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil)}, queue.Config{})
		for _, tt := range []struct {
			payload string
			status  queue.Status
			lastErr string
		}{
			{`{"retry":false}`, queue.StatusDead, "fail: this job always fails (not retried)"},
			{` { "retry" : false } `, queue.StatusDead, "fail: this job always fails (not retried)"},
			{`{}`, queue.StatusFailed, "fail: this job always fails"},
			{``, queue.StatusFailed, "fail: this job always fails"},
		} {
			t.Run(tt.payload, func(t *testing.T) {
				req := queue.EnqueueRequest{Type: "fail", MaxRetries: intp(5)}
				if tt.payload != "" {
					req.Payload = json.RawMessage(tt.payload)
				}
				j := mustEnqueue(t, s, req)
				got, err := s.RunID(context.Background(), j.ID)
				if err != nil {
					t.Fatal(err)
				}
				diff(t, "after one attempt", [3]any{tt.status, 1, tt.lastErr}, [3]any{got.Status, got.Attempts, got.LastError})
			})
		}
	})
}

// TestNoRetryCallerGone: a manual run whose caller leaves while its
// handler is running, and whose handler then fails with a failure not to
// retry, is an interrupted run, not the handler's verdict: its job is
// handed back to pending, and no dead run is timed, counted or reported.
// It pins the context check of the no-retry guard in outcome; without it
// the run was counted dead (RunCounts.Dead 1, "waitfinal:dead") while its
// job went back to pending.
func TestNoRetryCallerGone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		rec := newRecorder()
		started := make(chan struct{})
		reg := queue.NewRegistry()
		if err := reg.Register("waitfinal", queue.Handler{Run: func(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
			close(started)
			<-ctx.Done()
			return nil, queue.NoRetry(errors.New("gave up"))
		}}); err != nil {
			t.Fatal(err)
		}
		cfg := fast
		cfg.Concurrency = queue.ManualMode
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: reg, Observer: rec}, cfg)
		j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "waitfinal", MaxRetries: intp(5)})
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-started
			cancel()
		}()
		if _, err := s.RunID(ctx, j.ID); err == nil {
			t.Errorf("RunID with its caller gone: no error")
		}
		cancel()
		got := mustGet(t, s, j.ID)
		diff(t, "the job: status, last_error", [2]any{queue.StatusPending, ""}, [2]any{got.Status, got.LastError})
		diff(t, "dead runs counted", int64(0), s.RunCounts().Dead)
		diff(t, "dead runs timed", 0, rec.snapshot()["finished"]["waitfinal:dead"])
		rec.mu.Lock()
		defer rec.mu.Unlock()
		diff(t, "dead causes", 0, len(rec.deadWhy))
	})
}

// TestFailRetries: fail's payload is exactly one of none, null, {} (its
// failure retried) or {"retry":false} (not retried), whitespace aside: the
// key "retry" in that case, the value false, no duplicate key and nothing
// after. Anything else is refused with one line, as README says.
func TestFailRetries(t *testing.T) {
	for _, tt := range []struct {
		name, payload string
		retry, ok     bool
	}{
		{name: "none", payload: "", retry: true, ok: true},
		{name: "null", payload: " null ", retry: true, ok: true},
		{name: "empty object", payload: "{ }", retry: true, ok: true},
		{name: "retry false", payload: `{"retry":false}`, ok: true},
		{name: "retry false, spaced", payload: " {\n \"retry\" : false } ", ok: true},
		{name: "key folded", payload: `{"Retry":false}`},
		{name: "key in capitals", payload: `{"RETRY":false}`},
		{name: "retry null", payload: `{"retry":null}`},
		{name: "retry true", payload: `{"retry":true}`},
		{name: "retry quoted", payload: `{"retry":"false"}`},
		{name: "retry 0", payload: `{"retry":0}`},
		{name: "duplicate, false last", payload: `{"retry":true,"retry":false}`},
		{name: "duplicate, both false", payload: `{"retry":false,"retry":false}`},
		{name: "another key", payload: `{"retry":false,"x":1}`},
		{name: "an array", payload: `[]`},
		{name: "false", payload: `false`},
		{name: "two objects", payload: `{}{}`},
		{name: "trailing brace", payload: `{"retry":false}}`},
		{name: "trailing bracket", payload: `{"retry":false}]`},
		{name: "not JSON", payload: `{"retry":false`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			retry, err := queue.FailRetries(json.RawMessage(tt.payload))
			if !tt.ok {
				if err == nil || err.Error() != `fail takes no payload, {} or {"retry":false}` || core.ErrorCode(err) != core.CodeInvalid {
					t.Errorf("FailRetries(%s) = %v, %v; want refused as invalid with its one line", tt.payload, retry, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("FailRetries(%s): %v", tt.payload, err)
			}
			diff(t, "retry", tt.retry, retry)
		})
	}
}
