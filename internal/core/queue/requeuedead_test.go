package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/brokertest"
)

// TestServiceRequeueDead: Service.RequeueDead counts each job it moves as
// a dead → pending transition, refuses a bad queue name or limit as
// invalid before the broker is asked, and answers an unknown queue not
// found.
func TestServiceRequeueDead(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		rec := newRecorder()
		clock := brokertest.NewClock()
		s := queue.NewService(queue.Deps{Broker: be.new(t, clock), Observer: rec, Clock: clock}, queue.Config{Concurrency: queue.ManualMode})
		ctx := context.Background()
		var dead []string
		for range 3 {
			j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "fail", Queue: "q", MaxRetries: intp(0)})
			if got, err := s.RunID(ctx, j.ID); err != nil || got.Status != queue.StatusDead {
				t.Fatalf("RunID: %+v, %v; want dead", got, err)
			}
			dead = append(dead, j.ID)
			clock.Advance(time.Millisecond)
		}
		before := rec.snapshot()["transitions"]["dead→pending"]
		r, err := s.RequeueDead(ctx, "q", time.Time{}, 2)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "moved, remaining", [2]any{dead[:2], 1}, [2]any{r.IDs, r.Remaining})
		diff(t, "dead → pending counted", before+2, rec.snapshot()["transitions"]["dead→pending"])
		for _, tt := range []struct {
			name, queue string
			limit       int
			code        string
		}{
			{"bad name", "a b", 10, core.CodeInvalid},
			{"empty name", "", 10, core.CodeInvalid},
			{"limit 0", "q", 0, core.CodeInvalid},
			{"limit too high", "q", queue.MaxRequeueDead + 1, core.CodeInvalid},
			{"unknown queue", "nope", 10, core.CodeNotFound},
		} {
			_, err := s.RequeueDead(ctx, tt.queue, time.Time{}, tt.limit)
			diff(t, tt.name, tt.code, core.ErrorCode(err))
		}
		diff(t, "no backend error counted", 0, rec.backendErrors("requeue_dead"))
	})
}
