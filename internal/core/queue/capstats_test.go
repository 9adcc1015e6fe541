package queue_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// names returns the queue names of stats, sorted.
func names(stats []queue.Stats) []string {
	var out []string
	for _, st := range stats {
		out = append(out, st.Queue)
	}
	slices.Sort(out)
	return out
}

// TestCapStatsKeepsDefault: past the cap, with every queue at 0 pending,
// the default queue keeps its own entry (its gauges, its row in top) even
// though 99 names sort before it, and what it holds is not summed into
// _other.
func TestCapStatsKeepsDefault(t *testing.T) {
	var stats []queue.Stats
	for i := 1; i <= 105; i++ {
		stats = append(stats, queue.Stats{Queue: fmt.Sprintf("bulk%d", i), Scheduled: 1, Enqueued: 1})
	}
	stats = append(stats, queue.Stats{Queue: queue.DefaultQueue, Dead: 3, Enqueued: 3})
	got := queue.CapStats(stats, queue.ShownQueues)
	if len(got) != queue.ShownQueues {
		t.Fatalf("%d entries, want %d", len(got), queue.ShownQueues)
	}
	if !slices.Contains(names(got), queue.DefaultQueue) {
		t.Fatalf("no %q among %q", queue.DefaultQueue, names(got))
	}
	other := got[len(got)-1]
	if diff := cmp.Diff(queue.Stats{Queue: queue.OtherQueues, Scheduled: 7, Enqueued: 7}, other); diff != "" {
		t.Errorf("the _other entry (-want +got):\n%s", diff)
	}
}

// TestCapStatsTieBreaksByActivity: among queues with as many pending jobs,
// those with something in them (running, retrying, scheduled or dead jobs)
// keep their entries before idle ones, whatever their names.
func TestCapStatsTieBreaksByActivity(t *testing.T) {
	stats := []queue.Stats{
		{Queue: "a-idle"}, {Queue: "b-idle"},
		{Queue: "x-retry", Retry: 1}, {Queue: "y-dead", Dead: 2}, {Queue: "z-scheduled", Scheduled: 1},
	}
	got := queue.CapStats(stats, 4)
	want := []string{queue.OtherQueues, "x-retry", "y-dead", "z-scheduled"}
	if diff := cmp.Diff(want, names(got)); diff != "" {
		t.Errorf("entries kept (-want +got):\n%s", diff)
	}
}
