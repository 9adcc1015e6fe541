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
// are client input, so their number is not bounded. It keeps DefaultQueue
// and the busiest other queues, n-1 in all, and sums the rest into one
// OtherQueues entry, whose oldest pending age is the oldest of them. A list
// of n or fewer is returned as it is; stats is not modified.
//
// Busiest is by pending, then by the other gauges (running, retry,
// scheduled, dead), and only then by name: with many idle queues, a tie-break by name alone
// decided which ones had series, and folded DefaultQueue (an alert's or a
// panel's usual subject) into OtherQueues as soon as 99 names sorted before
// it. DefaultQueue is kept whatever its load, so its series never go absent.
func CapStats(stats []Stats, n int) []Stats {
	n = max(n, 1) // room for the OtherQueues entry at least
	if len(stats) <= n {
		return stats
	}
	stats = slices.Clone(stats)
	slices.SortFunc(stats, func(a, b Stats) int {
		return cmp.Or(cmp.Compare(b.Pending, a.Pending), cmp.Compare(b.Running, a.Running),
			cmp.Compare(b.Retry, a.Retry), cmp.Compare(b.Scheduled, a.Scheduled), cmp.Compare(b.Dead, a.Dead),
			cmp.Compare(a.Queue, b.Queue))
	})
	kept := n - 1
	if i := slices.IndexFunc(stats, func(st Stats) bool { return st.Queue == DefaultQueue }); i >= kept && kept > 0 {
		// DefaultQueue takes the last place kept; the queue that had it
		// goes first among the folded ones.
		def := stats[i]
		copy(stats[kept+1:i+1], stats[kept:i])
		stats[kept-1], stats[kept] = def, stats[kept-1]
	}
	other := Stats{Queue: OtherQueues}
	for _, st := range stats[kept:] {
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
	return append(stats[:kept], other)
}

// Folded returns the queues of stats that CapStats summed into the
// OtherQueues entry of capped (none when capped holds them all).
func Folded(stats, capped []Stats) []Stats {
	if len(stats) == len(capped) {
		return nil
	}
	shown := make(map[string]bool, len(capped))
	for _, st := range capped {
		shown[st.Queue] = true
	}
	var out []Stats
	for _, st := range stats {
		if !shown[st.Queue] {
			out = append(out, st)
		}
	}
	return out
}
