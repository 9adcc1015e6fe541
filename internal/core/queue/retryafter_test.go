package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/brokertest"
)

// TestRetryAfterError: a handler's failure that asks for a least wait
// (a webhook's Retry-After) lengthens the retry's delay to it, never
// shortens the backoff's, never passes the backoff's cap, and a job on its
// last attempt still goes dead.
func TestRetryAfterError(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		clock := brokertest.NewClock()
		reg := queue.NewRegistry()
		if err := reg.Register("later", queue.Handler{Run: func(_ context.Context, p json.RawMessage) (json.RawMessage, error) {
			var ms int64
			if err := json.Unmarshal(p, &ms); err != nil {
				return nil, err
			}
			return nil, &queue.RetryAfterError{Err: errors.New("busy"), After: time.Duration(ms) * time.Millisecond}
		}}); err != nil {
			t.Fatal(err)
		}
		backoff := queue.Backoff{Base: 100 * time.Millisecond, Cap: time.Hour, Jitter: 0.2}
		s := queue.NewService(queue.Deps{Broker: be.new(t, clock), Clock: clock, Registry: reg}, queue.Config{Backoff: backoff})
		ctx := context.Background()
		for _, tt := range []struct {
			name   string
			after  time.Duration
			lo, hi time.Duration // the retry's wait
		}{
			{"longer than the backoff", 30 * time.Second, 30 * time.Second, 30 * time.Second},
			{"shorter than the backoff", time.Millisecond, 80 * time.Millisecond, 120 * time.Millisecond},
			{"past the cap", 5 * time.Hour, time.Hour, time.Hour},
		} {
			t.Run(tt.name, func(t *testing.T) {
				p, _ := json.Marshal(tt.after.Milliseconds())
				j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "later", Payload: p, MaxRetries: intp(1)})
				got, err := s.RunID(ctx, j.ID)
				if err != nil {
					t.Fatal(err)
				}
				diff(t, "status", queue.StatusFailed, got.Status)
				diff(t, "last_error", "busy", got.LastError)
				if wait := got.RunAt.Sub(clock.Now()); wait < tt.lo || wait > tt.hi {
					t.Errorf("retry due in %v, want within [%v, %v]", wait, tt.lo, tt.hi)
				}
				clock.Advance(got.RunAt.Sub(clock.Now()))
				if _, err := s.Tick(ctx); err != nil {
					t.Fatal(err)
				}
				got, err = s.RunID(ctx, j.ID)
				if err != nil {
					t.Fatal(err)
				}
				diff(t, "its last attempt", queue.StatusDead, got.Status)
			})
		}
	})
}
