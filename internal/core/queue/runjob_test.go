package queue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// TestRunJobGetsTheJob: a handler with RunJob is called with the job as its
// run started (id, queue, type, payload, the attempt counting this run), by
// the pool's workers and by a manual run alike, on both backends; Run is
// then not needed.
func TestRunJobGetsTheJob(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		two := 2
		var mu sync.Mutex
		var seen []string
		reg := queue.NewRegistry()
		if err := reg.Register("hook", queue.Handler{RunJob: func(_ context.Context, j *queue.Job) (json.RawMessage, error) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, fmt.Sprintf("%s %s %s %s %d", j.ID, j.Queue, j.Type, j.Payload, j.Attempts))
			if j.Attempts == 1 {
				return nil, fmt.Errorf("first attempt fails")
			}
			return json.RawMessage(`"ok"`), nil
		}}); err != nil {
			t.Fatal(err)
		}
		cfg := fast
		cfg.Concurrency = queue.ManualMode
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: reg}, cfg)
		j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "hook", Queue: "q", Payload: json.RawMessage(`{"a":1}`), MaxRetries: &two})
		for range 2 {
			if _, err := s.RunID(context.Background(), j.ID); err != nil {
				t.Fatal(err)
			}
		}
		got := mustGet(t, s, j.ID)
		want := []string{j.ID + ` q hook {"a":1} 1`, j.ID + ` q hook {"a":1} 2`}
		mu.Lock()
		diff(t, "runs", want, seen)
		mu.Unlock()
		if got.Status != queue.StatusSucceeded || string(got.Result) != `"ok"` {
			t.Errorf("job %+v", got)
		}

		// The pool's workers call it too.
		cfg.Concurrency = 1
		s = queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: reg}, cfg)
		startPool(t, s)
		j = mustEnqueue(t, s, queue.EnqueueRequest{Type: "hook", Queue: "p", MaxRetries: &two})
		if got := waitDone(t, s, j); got.Status != queue.StatusSucceeded || got.Attempts != 2 {
			t.Errorf("pool's run: %+v", got)
		}
	})
}
