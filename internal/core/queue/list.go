package queue

import (
	"sort"
	"time"
)

// Page is jobs without their first skip, cut at limit: a listing's page
// (nil when none is left).
func Page(jobs []*Job, skip, limit int) []*Job {
	n := len(jobs)
	jobs = jobs[min(n, skip):min(n, skip+limit)]
	if len(jobs) == 0 {
		return nil
	}
	return jobs
}

// SortRecentFirst orders jobs listed with status filter st the way List
// returns them: pending jobs in the order they will run (oldest ready first),
// scheduled and failed ones by run_at, running ones by start (latest first),
// finished ones latest first, and an unfiltered list most recently enqueued
// first. Brokers use it to merge what they gathered from several queues.
func SortRecentFirst(jobs []*Job, st Status) {
	key := func(j *Job) (time.Time, bool) { // time, ascending?
		switch st {
		case StatusPending:
			return j.ReadyAt, true
		case StatusScheduled, StatusFailed:
			return j.RunAt, true
		case StatusRunning:
			return j.StartedAt, false
		case StatusSucceeded, StatusDead, StatusCancelled:
			return j.FinishedAt, false
		}
		return j.EnqueuedAt, false
	}
	sort.SliceStable(jobs, func(a, b int) bool {
		ta, asc := key(jobs[a])
		tb, _ := key(jobs[b])
		if !ta.Equal(tb) {
			return ta.Before(tb) == asc
		}
		return jobs[a].ID < jobs[b].ID
	})
}
