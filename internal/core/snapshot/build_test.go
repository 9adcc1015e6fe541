package snapshot

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRateTracker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type obs struct {
		at                  time.Duration
		enq, ok, fail       int64
		wantEnq, wantDone   float64
		wantFailureFraction float64
	}
	tests := []struct {
		name  string
		steps []obs
	}{
		{"first sample has no rate", []obs{{0, 10, 5, 0, 0, 0, 0}}},
		{"steady", []obs{{0, 0, 0, 0, 0, 0, 0}, {10 * time.Second, 20, 10, 0, 2, 1, 0}}},
		{"failures as a fraction of finished attempts", []obs{{0, 0, 0, 0, 0, 0, 0}, {4 * time.Second, 8, 3, 1, 2, 1, 0.25}}},
		// Done counts failed attempts too: its workers are busy.
		{"a queue whose every job fails", []obs{{0, 0, 0, 0, 0, 0, 0}, {4 * time.Second, 8, 0, 8, 2, 2, 1}}},
		{"window slides past a minute", []obs{
			{0, 0, 0, 0, 0, 0, 0},
			{30 * time.Second, 300, 0, 0, 10, 0, 0},
			{90 * time.Second, 300, 0, 0, 0, 0, 0},
		}},
		{"a counter reset starts again", []obs{{0, 100, 100, 0, 0, 0, 0}, {time.Second, 5, 5, 0, 0, 0, 0}, {2 * time.Second, 7, 5, 0, 2, 0, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRateTracker()
			for i, s := range tt.steps {
				e, d, f := r.Observe(t0.Add(s.at), "q", s.enq, s.ok, s.fail)
				if diff := cmp.Diff([]float64{s.wantEnq, s.wantDone, s.wantFailureFraction}, []float64{e, d, f}); diff != "" {
					t.Errorf("step %d (-want +got)\n%s", i, diff)
				}
			}
		})
	}
}

func TestRateTrackerMemoryIsBounded(t *testing.T) {
	r := NewRateTracker()
	t0 := time.Now()
	for i := 0; i < 10_000; i++ {
		r.Observe(t0.Add(time.Duration(i)*time.Second), "q", int64(i), 0, 0)
	}
	if n := len(r.byName["q"]); n > 62 {
		t.Fatalf("kept %d samples for one queue, want at most ~61", n)
	}
}

// TestRateTrackerForgetsQueuesNoLongerObserved: a daemon serving snapshots
// observes every queue there is; queues that are gone (removed, or named
// per batch) must not stay in its memory (a soak: 3,000 queues made,
// snapshotted and removed, twice, left ~4 KB each for good).
func TestRateTrackerForgetsQueuesNoLongerObserved(t *testing.T) {
	r := NewRateTracker()
	t0 := time.Now()
	for s := range 5 {
		for i := range 3000 {
			r.Observe(t0.Add(time.Duration(s)*time.Second), fmt.Sprintf("batch-%d", i), int64(s), 0, 0)
		}
	}
	if n := len(r.byName); n != 3000 {
		t.Fatalf("tracking %d queues after observing 3000, want 3000", n)
	}
	later := t0.Add(5*time.Second + 2*time.Minute)
	r.Observe(later, "still-here", 1, 0, 0)
	if n := len(r.byName); n != 1 {
		t.Fatalf("tracking %d queues two minutes after the 3000 were last observed, want 1", n)
	}
}
