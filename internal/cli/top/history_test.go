package top

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/membroker"
	"github.com/refrakt/refrakt/internal/core/snapshot"
)

func TestNextHistory(t *testing.T) {
	s0 := loadSnapshot(t)
	t0 := s0.GeneratedAt
	rates := func(h map[string]queueHistory, q string) [][2]float64 {
		var out [][2]float64
		for _, r := range h[q].samples {
			out = append(out, [2]float64{r.enq, r.done})
		}
		return out
	}
	tests := []struct {
		name  string
		steps func() map[string]queueHistory
		want  [][2]float64
	}{
		{
			name: "one snapshot has no rate yet",
			steps: func() map[string]queueHistory {
				return nextHistory(nil, s0, t0)
			},
			want: nil,
		},
		{
			name: "rates are counter deltas over the time between snapshots",
			steps: func() map[string]queueHistory {
				h := nextHistory(nil, s0, t0)
				return nextHistory(h, later(s0, 2*time.Second, 10), t0.Add(2*time.Second))
			},
			want: [][2]float64{{5, 5}},
		},
		{
			name: "the same snapshot twice adds nothing",
			steps: func() map[string]queueHistory {
				h := nextHistory(nil, s0, t0)
				h = nextHistory(h, later(s0, time.Second, 4), t0.Add(time.Second))
				return nextHistory(h, later(s0, time.Second, 4), t0.Add(time.Second))
			},
			want: [][2]float64{{4, 4}},
		},
		{
			name: "a counter going backwards starts afresh",
			steps: func() map[string]queueHistory {
				h := nextHistory(nil, s0, t0)
				h = nextHistory(h, later(s0, time.Second, 4), t0.Add(time.Second))
				return nextHistory(h, later(s0, 2*time.Second, -100), t0.Add(2*time.Second))
			},
			want: nil,
		},
		{
			name: "samples older than a minute are dropped",
			steps: func() map[string]queueHistory {
				h := nextHistory(nil, s0, t0)
				for i := 1; i <= 70; i++ {
					d := time.Duration(i) * time.Second
					h = nextHistory(h, later(s0, d, int64(i)), t0.Add(d))
				}
				return h
			},
			want: func() [][2]float64 {
				// The samples of t0+10s..t0+70s are kept; later(s0, d, i) adds i
				// jobs in i seconds, so each says 1 a second.
				var w [][2]float64
				for range 61 {
					w = append(w, [2]float64{1, 1})
				}
				return w
			}(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, rates(tt.steps(), "emails")); diff != "" {
				t.Errorf("emails rates (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNextHistoryLeavesItsInputAlone(t *testing.T) {
	s0 := loadSnapshot(t)
	h1 := nextHistory(nil, s0, s0.GeneratedAt)
	h2 := nextHistory(h1, later(s0, time.Second, 3), s0.GeneratedAt.Add(time.Second))
	_ = nextHistory(h2, later(s0, 2*time.Second, 9), s0.GeneratedAt.Add(2*time.Second))
	if diff := cmp.Diff(1, len(h2["emails"].samples)); diff != "" {
		t.Errorf("samples of the earlier history (-want +got):\n%s", diff)
	}
}

func TestSparkline(t *testing.T) {
	end := time.Date(2026, 11, 25, 10, 1, 0, 0, time.UTC)
	at := func(sec int, v float64) rateSample {
		return rateSample{at: end.Add(time.Duration(sec-60) * time.Second), enq: v}
	}
	tests := []struct {
		name    string
		samples []rateSample
		width   int
		want    string
	}{
		{name: "no samples", width: 6, want: "      "},
		{name: "scaled to the maximum", samples: []rateSample{at(5, 1), at(15, 4), at(25, 8), at(59, 0)}, width: 6,
			want: "▁▄███▁"},
		{name: "the data fills from the right", samples: []rateSample{at(50, 2), at(59, 2)}, width: 6, want: "     █"},
		{name: "zero rates are the lowest block", samples: []rateSample{at(0, 0), at(59, 0)}, width: 3, want: "▁▁▁"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sparkline(series(tt.samples, end, tt.width, func(r rateSample) float64 { return r.enq }))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("sparkline (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFillBar(t *testing.T) {
	tests := []struct {
		name             string
		tokens, capacity int64
		width            int
		want             string
	}{
		{"full", 10, 10, 5, "█████"},
		{"empty", 0, 10, 5, "░░░░░"},
		{"half", 5, 10, 4, "██░░"},
		{"one token left never looks empty", 1, 100, 5, "█░░░░"},
		{"one short of capacity never looks full", 28, 30, 5, "████░"},
		{"no capacity", 0, 0, 3, "░░░"},
		{"in one cell, a bucket with tokens left is full", 5, 10, 1, "█"},
		{"in one cell, an empty bucket is empty", 0, 10, 1, "░"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			full, empty := fillBar(tt.tokens, tt.capacity, tt.width)
			if diff := cmp.Diff(tt.want, full+empty); diff != "" {
				t.Errorf("bar (-want +got):\n%s", diff)
			}
		})
	}
}

// TestOtherSparklineIgnoresQueuesMovingInOrOut: _other's totals are sums
// over the queues folded into it now. Snapshots built by the daemon's own
// code (snapshot.Build) fold a queue with 503 jobs of past into _other, and
// later take it out, while nothing is enqueued or run in any folded queue:
// _other's sparkline drew a burst of the queue's whole past (503 done/s),
// and wiped its history when the queue left. Now the intervals across a
// change have no sample, and the others stay.
func TestOtherSparklineIgnoresQueuesMovingInOrOut(t *testing.T) {
	ctx := t.Context()
	svc := queue.NewService(queue.Deps{Broker: membroker.New(membroker.Options{})}, queue.Config{Concurrency: queue.ManualMode})
	enqueue := func(q string, n int) {
		t.Helper()
		for range n {
			if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: q}, queue.SourceAPI); err != nil {
				t.Fatal(err)
			}
		}
	}
	drain := func(q string, n int) {
		t.Helper()
		for range n {
			if _, err := svc.RunNext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range snapshot.MaxQueues {
		enqueue(fmt.Sprintf("q%03d", i), 2)
	}
	enqueue("big", 503)
	drain("big", 500) // 3 pending: among the busiest, listed by name
	rates := snapshot.NewRateTracker()
	t0 := time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC)
	var hist map[string]queueHistory
	build := func(at time.Duration) {
		t.Helper()
		s, err := snapshot.Build(ctx, snapshot.Sources{Jobs: svc, Rates: rates}, t0.Add(at))
		if err != nil {
			t.Fatal(err)
		}
		hist = nextHistory(hist, s, s.GeneratedAt)
	}
	samples := func() []string {
		var out []string
		for _, smp := range hist[queue.OtherQueues].samples {
			out = append(out, fmt.Sprintf("%s enq %.0f/s done %.0f/s", smp.at.Format("15:04:05"), smp.enq, smp.done))
		}
		return out
	}
	build(0)
	build(time.Second)
	drain("big", 3) // nothing pending: folded into _other, its past with it
	build(2 * time.Second)
	build(3 * time.Second)
	want := []string{"06:00:01 enq 0/s done 0/s", "06:00:03 enq 0/s done 0/s"}
	if diff := cmp.Diff(want, samples()); diff != "" {
		t.Errorf("%s samples after a queue was folded in (-want +got):\n%s", queue.OtherQueues, diff)
	}
	enqueue("big", 5) // out of _other again
	build(4 * time.Second)
	if diff := cmp.Diff(want, samples()); diff != "" {
		t.Errorf("%s samples after it left (-want +got):\n%s", queue.OtherQueues, diff)
	}
}
