package top

import (
	"cmp"
	"slices"
	"strings"

	"github.com/refrakt/refrakt/internal/cli/termtext"
	"github.com/refrakt/refrakt/internal/core/snapshot"
)

// pane is one section of the screen; tab moves the focus through them.
type pane int

const (
	paneQueues pane = iota
	paneDead
	paneBuckets
	paneOverrides
	numPanes
)

var paneNames = [numPanes]string{"Queues", "Dead jobs", "Buckets", "Overrides"}

// sortNames are the orders `s` cycles through, per pane; the first is the
// default. The daemon's order (busiest buckets, newest dead jobs first) is
// kept as the tie-breaker of every other order.
var sortNames = [numPanes][]string{
	paneQueues:    {"name", "pending", "oldest", "failures"},
	paneDead:      {"newest", "queue", "type"},
	paneBuckets:   {"busiest", "key", "strikes", "tokens"},
	paneOverrides: {"target", "expiry"},
}

// contains reports whether s holds the filter, ignoring case, as it is or
// as the screen shows it (termtext.Escape): typing what is on the screen
// (`\u202e`) finds the name that holds U+202E.
func contains(s, filter string) bool {
	if filter == "" {
		return true
	}
	f := strings.ToLower(filter)
	if strings.Contains(strings.ToLower(s), f) {
		return true
	}
	shown := termtext.Escape(s)
	return shown != s && strings.Contains(strings.ToLower(shown), f)
}

// visible returns the items of xs that keep accepts, stably sorted by
// compare: what each pane shows, in its order.
func visible[T any](xs []T, keep func(T) bool, compare func(a, b T) int) []T {
	out := make([]T, 0, len(xs))
	for _, x := range xs {
		if keep(x) {
			out = append(out, x)
		}
	}
	slices.SortStableFunc(out, compare)
	return out
}

func visibleQueues(qs []snapshot.Queue, filter string, order int) []snapshot.Queue {
	by := sortNames[paneQueues][order]
	return visible(qs, func(q snapshot.Queue) bool { return contains(q.Name, filter) }, func(a, b snapshot.Queue) int {
		switch by {
		case "pending":
			return cmp.Or(cmp.Compare(b.Pending, a.Pending), cmp.Compare(a.Name, b.Name))
		case "oldest":
			return cmp.Or(cmp.Compare(b.OldestPendingSeconds, a.OldestPendingSeconds), cmp.Compare(a.Name, b.Name))
		case "failures":
			return cmp.Or(cmp.Compare(b.FailureRate, a.FailureRate), cmp.Compare(a.Name, b.Name))
		}
		return cmp.Compare(a.Name, b.Name)
	})
}

func visibleDead(js []snapshot.DeadJob, filter string, order int) []snapshot.DeadJob {
	by := sortNames[paneDead][order]
	keep := func(j snapshot.DeadJob) bool {
		return contains(j.Queue, filter) || contains(j.Type, filter) || contains(j.ID, filter)
	}
	return visible(js, keep, func(a, b snapshot.DeadJob) int {
		switch by {
		case "queue":
			return cmp.Compare(a.Queue, b.Queue)
		case "type":
			return cmp.Compare(a.Type, b.Type)
		}
		return 0
	})
}

func visibleBuckets(bs []snapshot.Bucket, filter string, order int) []snapshot.Bucket {
	by := sortNames[paneBuckets][order]
	return visible(bs, func(b snapshot.Bucket) bool { return contains(b.Key, filter) }, func(a, b snapshot.Bucket) int {
		switch by {
		case "key":
			return cmp.Compare(a.Key, b.Key)
		case "strikes":
			return cmp.Compare(b.Strikes, a.Strikes)
		case "tokens":
			return cmp.Compare(fillRatio(a), fillRatio(b))
		}
		return 0
	})
}

func fillRatio(b snapshot.Bucket) float64 {
	if b.Capacity <= 0 {
		return 0
	}
	return float64(b.Tokens) / float64(b.Capacity)
}

func visibleOverrides(ovs []snapshot.Override, filter string, order int) []snapshot.Override {
	byExpiry := sortNames[paneOverrides][order] == "expiry"
	return visible(ovs, func(o snapshot.Override) bool { return contains(o.Target, filter) }, func(a, b snapshot.Override) int {
		if byExpiry {
			// Soonest first; overrides without a TTL last.
			switch {
			case a.ExpiresAt == nil && b.ExpiresAt == nil:
				return cmp.Compare(a.Target, b.Target)
			case a.ExpiresAt == nil:
				return 1
			case b.ExpiresAt == nil:
				return -1
			}
			return cmp.Or(a.ExpiresAt.Compare(*b.ExpiresAt), cmp.Compare(a.Target, b.Target))
		}
		return cmp.Compare(a.Target, b.Target)
	})
}

// rowIDs returns the identity of each visible row of pane p, in order, so a
// selection follows its row across refreshes and re-sorts.
func (m Model) rowIDs(p pane) []string {
	switch p {
	case paneQueues:
		return idsOf(visibleQueues(m.snap.Queues, m.filter, m.sorts[p]), func(q snapshot.Queue) string { return q.Name })
	case paneDead:
		return idsOf(visibleDead(m.snap.DeadJobs, m.filter, m.sorts[p]), func(j snapshot.DeadJob) string { return j.ID })
	case paneBuckets:
		return idsOf(visibleBuckets(m.snap.Buckets, m.filter, m.sorts[p]), func(b snapshot.Bucket) string { return b.Key })
	case paneOverrides:
		return idsOf(visibleOverrides(m.snap.Overrides, m.filter, m.sorts[p]), func(o snapshot.Override) string { return o.Target })
	}
	return nil
}

// idsOf maps xs to their identities; nil when xs is empty.
func idsOf[T any](xs []T, id func(T) string) []string {
	var ids []string
	for _, x := range xs {
		ids = append(ids, id(x))
	}
	return ids
}
