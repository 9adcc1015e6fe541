package queue

import (
	"cmp"
	"slices"
)

// ShownQueues is how many entries metrics and snapshots give the queues:
// the busiest ShownQueues-1 and OtherQueues (CapStats).
const ShownQueues = 100

// OtherQueues names the entry that CapStats sums the queues beyond its cap
// into.
const OtherQueues = "_other"

// CapStats bounds a list of queue stats to n entries, for anything that
// shows every queue (metrics series, the operator's snapshot): queue names
// are client input, so their number is not bounded. It keeps the n-1
// busiest queues (by pending, then running, then name) and sums the rest
// into one OtherQueues entry, whose oldest pending age is the oldest of
// them. A list of n or fewer is returned as it is; stats is not modified.
func CapStats(stats []Stats, n int) []Stats {
	n = max(n, 1) // room for the OtherQueues entry at least
	if len(stats) <= n {
		return stats
	}
	stats = slices.Clone(stats)
	slices.SortFunc(stats, func(a, b Stats) int {
		return cmp.Or(cmp.Compare(b.Pending, a.Pending), cmp.Compare(b.Running, a.Running), cmp.Compare(a.Queue, b.Queue))
	})
	other := Stats{Queue: OtherQueues}
	for _, st := range stats[n-1:] {
		other.Pending += st.Pending
		other.Running += st.Running
		other.Scheduled += st.Scheduled
		other.Retry += st.Retry
		other.Dead += st.Dead
		other.Enqueued += st.Enqueued
		other.Started += st.Started
		other.Succeeded += st.Succeeded
		other.Failed += st.Failed
		other.OldestPendingAge = max(other.OldestPendingAge, st.OldestPendingAge)
	}
	other.OldestPendingSec = other.OldestPendingAge.Seconds()
	return append(stats[:n-1], other)
}
