package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// TestHandBackUnhandledRelease: a manual run, with HandBackUnhandled, of a
// job whose type this process lacks retries a failed hand-back once; when
// it still fails the error says the truth (the lease's expiry counts as a
// failed attempt), and a release answering not-held says that instead.
// Redis failing a release once used to leave the job to its lease, whose
// expiry the tick counts ("lease expired"), while the CLI said "uncounted".
func TestHandBackUnhandledRelease(t *testing.T) {
	cases := []struct {
		name                 string
		fails                int32 // releases that fail before one answers
		notHeld              bool  // the answer is "not held"
		handedBack, notHeld2 bool
		says                 []string
	}{
		{name: "fails once", fails: 1, handedBack: true, says: []string{"handed back to pending"}},
		{name: "fails always", fails: 1 << 30, says: []string{"could not be handed back", "JOB_LEASE", "failed attempt", `"lease expired"`}},
		{name: "not held", notHeld: true, notHeld2: true, says: []string{"no longer held", "cancelled"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, be backend) {
				base := be.new(t, nil)
				reg := queue.NewRegistry()
				if err := reg.Register("hook", queue.Handler{Run: func(context.Context, json.RawMessage) (json.RawMessage, error) { return nil, nil }}); err != nil {
					t.Fatal(err)
				}
				cfg := fast
				cfg.Concurrency = queue.ManualMode
				j := mustEnqueue(t, queue.NewService(queue.Deps{Broker: base, Registry: reg}, cfg), queue.EnqueueRequest{Type: "hook"})

				cfg.HandBackUnhandled = true
				b := &failingRelease{Broker: base, fails: tc.fails, notHeld: tc.notHeld}
				s := queue.NewService(queue.Deps{Broker: b, Registry: queue.NewRegistry()}, cfg)
				_, err := s.RunNext(context.Background(), "")
				var ue *queue.UnhandledError
				if !errors.As(err, &ue) {
					t.Fatalf("RunNext: %v, want an *UnhandledError", err)
				}
				diff(t, "handed back, not held", [2]bool{tc.handedBack, tc.notHeld2}, [2]bool{ue.HandedBack, ue.NotHeld})
				for _, w := range tc.says {
					if !strings.Contains(ue.Error(), w) {
						t.Errorf("error %q does not say %q", ue.Error(), w)
					}
				}
				if tc.handedBack {
					got := mustGet(t, s, j.ID)
					if got.Status != queue.StatusPending || got.Attempts != 0 {
						t.Errorf("job after the hand-back: status %s attempts %d, want pending 0", got.Status, got.Attempts)
					}
				}
			})
		})
	}
}

// failingRelease is a broker whose first fails releases fail (Redis
// failing that moment); then it releases, or answers not held.
type failingRelease struct {
	queue.Broker
	fails   int32
	notHeld bool
	calls   atomic.Int32
}

func (b *failingRelease) Release(ctx context.Context, refs []queue.Ref) ([]bool, error) {
	if b.calls.Add(1) <= b.fails {
		return nil, errors.New("connection reset")
	}
	if b.notHeld {
		return make([]bool, len(refs)), nil
	}
	return b.Broker.Release(ctx, refs)
}

// TestInterruptedRunNotHandedBackSaysSo: a manual run interrupted (Ctrl-C)
// whose hand-back fails says what then happens: the lease's expiry counts
// as a failed attempt, not "returns to pending" alone.
func TestInterruptedRunNotHandedBackSaysSo(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		reg := queue.NewRegistry()
		started := make(chan struct{})
		if err := reg.Register("block", queue.Handler{Run: func(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		}}); err != nil {
			t.Fatal(err)
		}
		cfg := fast
		cfg.Concurrency = queue.ManualMode
		b := &failingRelease{Broker: be.new(t, nil), fails: 1 << 30}
		s := queue.NewService(queue.Deps{Broker: b, Registry: reg}, cfg)
		mustEnqueue(t, s, queue.EnqueueRequest{Type: "block"})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-started:
			case <-time.After(5 * time.Second):
			}
			cancel()
		}()
		_, err := s.RunNext(ctx, "")
		if err == nil || !strings.Contains(err.Error(), "failed attempt") || !strings.Contains(err.Error(), "JOB_LEASE") {
			t.Errorf("RunNext interrupted, the hand-back failing: %v; want it to say the lease's expiry counts as a failed attempt (JOB_LEASE)", err)
		}
	})
}
