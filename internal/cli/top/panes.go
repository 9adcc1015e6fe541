package top

import (
	"cmp"
	"slices"
	"strings"

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

// contains reports whether s holds the filter, ignoring case.
func contains(s, filter string) bool {
	return filter == "" || strings.Contains(strings.ToLower(s), strings.ToLower(filter))
}

func visibleQueues(qs []snapshot.Queue, filter string, order int) []snapshot.Queue {
	out := make([]snapshot.Queue, 0, len(qs))
	for _, q := range qs {
		if contains(q.Name, filter) {
			out = append(out, q)
		}
	}
	slices.SortStableFunc(out, func(a, b snapshot.Queue) int {
		switch sortNames[paneQueues][order] {
		case "pending":
			return cmp.Or(cmp.Compare(b.Pending, a.Pending), cmp.Compare(a.Name, b.Name))
		case "oldest":
			return cmp.Or(cmp.Compare(b.OldestPendingSeconds, a.OldestPendingSeconds), cmp.Compare(a.Name, b.Name))
		case "failures":
			return cmp.Or(cmp.Compare(b.FailureRate, a.FailureRate), cmp.Compare(a.Name, b.Name))
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out
}

func visibleDead(js []snapshot.DeadJob, filter string, order int) []snapshot.DeadJob {
	out := make([]snapshot.DeadJob, 0, len(js))
	for _, j := range js {
		if contains(j.Queue, filter) || contains(j.Type, filter) || contains(j.ID, filter) {
			out = append(out, j)
		}
	}
	slices.SortStableFunc(out, func(a, b snapshot.DeadJob) int {
		switch sortNames[paneDead][order] {
		case "queue":
			return cmp.Compare(a.Queue, b.Queue)
		case "type":
			return cmp.Compare(a.Type, b.Type)
		}
		return 0
	})
	return out
}

func visibleBuckets(bs []snapshot.Bucket, filter string, order int) []snapshot.Bucket {
	out := make([]snapshot.Bucket, 0, len(bs))
	for _, b := range bs {
		if contains(b.Key, filter) {
			out = append(out, b)
		}
	}
	slices.SortStableFunc(out, func(a, b snapshot.Bucket) int {
		switch sortNames[paneBuckets][order] {
		case "key":
			return cmp.Compare(a.Key, b.Key)
		case "strikes":
			return cmp.Compare(b.Strikes, a.Strikes)
		case "tokens":
			return cmp.Compare(fillRatio(a), fillRatio(b))
		}
		return 0
	})
	return out
}

func fillRatio(b snapshot.Bucket) float64 {
	if b.Capacity <= 0 {
		return 0
	}
	return float64(b.Tokens) / float64(b.Capacity)
}

func visibleOverrides(ovs []snapshot.Override, filter string, order int) []snapshot.Override {
	out := make([]snapshot.Override, 0, len(ovs))
	for _, o := range ovs {
		if contains(o.Target, filter) {
			out = append(out, o)
		}
	}
	slices.SortStableFunc(out, func(a, b snapshot.Override) int {
		if sortNames[paneOverrides][order] == "expiry" {
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
	return out
}

// rowIDs returns the identity of each visible row of pane p, in order, so a
// selection follows its row across refreshes and re-sorts.
func (m Model) rowIDs(p pane) []string {
	var ids []string
	switch p {
	case paneQueues:
		for _, q := range visibleQueues(m.snap.Queues, m.filter, m.sorts[p]) {
			ids = append(ids, q.Name)
		}
	case paneDead:
		for _, j := range visibleDead(m.snap.DeadJobs, m.filter, m.sorts[p]) {
			ids = append(ids, j.ID)
		}
	case paneBuckets:
		for _, b := range visibleBuckets(m.snap.Buckets, m.filter, m.sorts[p]) {
			ids = append(ids, b.Key)
		}
	case paneOverrides:
		for _, o := range visibleOverrides(m.snap.Overrides, m.filter, m.sorts[p]) {
			ids = append(ids, o.Target)
		}
	}
	return ids
}
