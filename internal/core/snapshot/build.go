package snapshot

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// Bounds of a snapshot's lists, so its size never grows with traffic or
// with what clients name.
const (
	MaxDeadJobs = 20
	MaxBuckets  = 50
	// MaxOverrides bounds the overrides listed (ratelimit.TopOverrides
	// picks them); Snapshot.OverridesTotal counts them all.
	MaxOverrides = 50
	// MaxQueues bounds the queues listed: the busiest MaxQueues-1 and the
	// rest summed as queue.OtherQueues, as the per-queue metrics do.
	MaxQueues = queue.ShownQueues
)

// Sources are the services a snapshot reads. The daemon passes its own; the
// CLI's --redis source builds the same services on a Redis client, so both
// show the same state.
type Sources struct {
	Jobs    *queue.Service
	Limiter *ratelimit.Limiter
	Rates   *RateTracker
	Daemon  Daemon
	// Admission, when set, are the bounds queues are judged refusing by,
	// instead of Jobs' own: the CLI's --redis source enforces none, and
	// passes those the daemons on that Redis publish.
	Admission *queue.AdmissionConfig
}

// Build reads one snapshot at now: queue gauges, totals and rates, the
// newest dead jobs, the busiest buckets and the overrides in force.
func Build(ctx context.Context, src Sources, now time.Time) (Snapshot, error) {
	snap := Snapshot{GeneratedAt: now.UTC(), Daemon: src.Daemon, Queues: []Queue{}, DeadJobs: []DeadJob{}, Buckets: []Bucket{}, Overrides: []Override{}}
	if src.Jobs != nil {
		stats, err := src.Jobs.Stats(ctx)
		if err != nil {
			return snap, err
		}
		snap.QueuesTotal = len(stats)
		adm := src.Jobs.Config().Admission
		if src.Admission != nil {
			adm = *src.Admission
		}
		capped := queue.CapStats(stats, MaxQueues)
		rest := queue.Folded(stats, capped) // the queues summed into OtherQueues
		var born map[string]time.Time
		if src.Rates != nil {
			born = src.Rates.listed(now, stats)
		}
		for _, st := range capped {
			q := Queue{
				Name: st.Queue, Pending: st.Pending, Running: st.Running, Scheduled: st.Scheduled,
				Retry: st.Retry, Dead: st.Dead, Paused: st.Paused, OldestPendingSeconds: st.OldestPendingAge.Seconds(),
				EnqueuedTotal: st.Enqueued, SucceededTotal: st.Succeeded, FailedTotal: st.Failed,
				Admission: admission(adm, st),
			}
			others := rest != nil && st.Queue == queue.OtherQueues
			if others {
				q.Admission = othersAdmission(adm, rest)
			}
			switch {
			case src.Rates == nil:
			case others:
				q.EnqueueRate, q.DoneRate, q.FailureRate = src.Rates.observeFolded(now, rest, born)
			default:
				q.EnqueueRate, q.DoneRate, q.FailureRate = src.Rates.observeBorn(now, st.Queue, st.Enqueued, st.Succeeded, st.Failed, born[st.Queue])
			}
			snap.Queues = append(snap.Queues, q)
		}
		sort.Slice(snap.Queues, func(i, j int) bool { return snap.Queues[i].Name < snap.Queues[j].Name })
		dead, err := src.Jobs.List(ctx, queue.Filter{Status: queue.StatusDead, Limit: MaxDeadJobs})
		if err != nil {
			return snap, err
		}
		sort.SliceStable(dead, func(i, j int) bool { return dead[i].FinishedAt.After(dead[j].FinishedAt) })
		for _, j := range dead {
			snap.DeadJobs = append(snap.DeadJobs, DeadJob{ID: j.ID, Queue: j.Queue, Type: j.Type, Attempts: j.Attempts, LastError: j.LastError, FinishedAt: j.FinishedAt.UTC()})
		}
	}
	if src.Limiter != nil {
		rl, err := src.Limiter.Snapshot(ctx, MaxBuckets)
		if err != nil {
			return snap, err
		}
		for _, b := range shownBuckets(rl.Penalties, rl.Buckets, MaxBuckets) {
			snap.Buckets = append(snap.Buckets, bucket(b))
		}
		snap.PenalizedTotal = rl.PenalizedKeys
		snap.OverridesTotal = len(rl.Overrides)
		for _, o := range ratelimit.TopOverrides(rl.Overrides, MaxOverrides) {
			out := Override{Target: o.Target, Capacity: int64(o.Capacity), WindowSeconds: o.Window.Seconds(), Mode: o.Mode, ExpiresAt: core.UTCOrNil(o.ExpiresAt)}
			if out.Mode == "" {
				out.Mode = ModeEnforce
			}
			snap.Overrides = append(snap.Overrides, out)
		}
	}
	return snap, nil
}

// shownBuckets picks the buckets a snapshot lists, at most n: the keys with
// a ban or strikes first, in the order the stores give them
// (ratelimit.ByPenalty), then the most recently active others. A banned
// abuser is what an operator looks for during an incident, and listing only
// the most recently active would push it out as soon as n other clients
// made a request each.
func shownBuckets(penalized, recent []ratelimit.BucketState, n int) []ratelimit.BucketState {
	out := make([]ratelimit.BucketState, 0, n)
	seen := make(map[string]bool, n)
	for _, list := range [][]ratelimit.BucketState{penalized, recent} {
		for _, b := range list {
			if len(out) == n {
				return out
			}
			if !seen[b.Key] {
				seen[b.Key] = true
				out = append(out, b)
			}
		}
	}
	return out
}

func bucket(b ratelimit.BucketState) Bucket {
	limit, scope := b.LimitScope()
	return Bucket{Key: b.Key, Limit: limit, Scope: scope, Tokens: int64(b.Remaining), Capacity: int64(b.Capacity), Strikes: b.Strikes,
		BannedUntil: core.UTCOrNil(b.BannedUntil), LastSeen: b.LastSeen.UTC()}
}

// admission says whether admission control would refuse the queue now.
func admission(c queue.AdmissionConfig, st queue.Stats) Admission {
	a := Admission{MaxPending: int64(c.MaxPending), MaxAgeSeconds: c.MaxAge.Seconds()}
	switch {
	case c.MaxPending > 0 && st.Pending >= int64(c.MaxPending):
		a.Refusing, a.Reason = true, queue.ReasonMaxPending
	case c.MaxAge > 0 && st.OldestPendingAge > c.MaxAge:
		a.Refusing, a.Reason = true, queue.ReasonMaxAge
	}
	return a
}

// othersAdmission is the admission state of the queues rest that CapStats
// summed into its OtherQueues entry: refusing when any of them refuses (a
// sum of their pending counts would say nothing of any one queue).
func othersAdmission(c queue.AdmissionConfig, rest []queue.Stats) Admission {
	a := Admission{MaxPending: int64(c.MaxPending), MaxAgeSeconds: c.MaxAge.Seconds()}
	for _, st := range rest {
		if b := admission(c, st); b.Refusing && (!a.Refusing || b.Reason == queue.ReasonMaxPending) {
			a.Refusing, a.Reason = true, b.Reason
		}
	}
	return a
}

// RateTracker turns a queue's monotonic totals into per-second rates over
// the last minute. It keeps one sample a second per queue (61 at most), and
// forgets a queue not observed for a window, so its memory is bounded by
// the number of queues observed in the last minute, not of all the queues
// ever observed (removed and remade ones, per-batch names).
type RateTracker struct {
	mu     sync.Mutex
	window time.Duration
	byName map[string][]rateSample
	swept  time.Time // when byName was last rid of queues not observed for a window
	// folded are the last totals of each queue summed into OtherQueues,
	// and other the totals of OtherQueues: the sum of what those queues
	// did while folded. Summing their totals instead would count a queue's
	// whole past as the moment it is folded in, and take it back as it
	// leaves.
	folded map[string]rateSample
	other  rateSample
	// listedAt and names are the time and the queues of the last listing
	// (listed): a queue missing from it had no jobs then.
	listedAt time.Time
	names    map[string]bool
	// began is the time of the first listing: the tracker knows nothing of
	// what happened before it.
	began time.Time
}

type rateSample struct {
	at                        time.Time
	enqueued, succeeded, fail int64
	// born marks the zero totals observeBorn puts before a new queue's
	// first sample: the queue had none at at, nor at any time before it
	// that the tracker has seen.
	born bool
}

// NewRateTracker returns a tracker over a one-minute window.
func NewRateTracker() *RateTracker {
	return &RateTracker{window: time.Minute, byName: map[string][]rateSample{}, folded: map[string]rateSample{}}
}

// Observe records the queue's totals at now and returns enqueues/s and
// finished attempts/s (succeeded or failed) over the window, and the share
// of those attempts that failed.
// Totals that went down (a new Redis) start the queue's history again.
func (r *RateTracker) Observe(now time.Time, q string, enqueued, succeeded, failed int64) (enqueueRate, doneRate, failureRate float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.observe(now, q, enqueued, succeeded, failed)
}

// listed records the queues of a listing at now (every queue, folded or
// not), and returns those that the previous listing did not have, each
// with the time of that listing: such a queue was made since, so its
// totals were 0 then, and the jobs that made it count in its rates. Only
// the tracker's first listing cannot tell.
func (r *RateTracker) listed(now time.Time, stats []queue.Stats) map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var born map[string]time.Time
	names := make(map[string]bool, len(stats))
	for _, st := range stats {
		names[st.Queue] = true
		if r.names != nil && !r.names[st.Queue] && r.listedAt.Before(now) && now.Sub(r.listedAt) <= r.window {
			if born == nil {
				born = map[string]time.Time{}
			}
			born[st.Queue] = r.listedAt
		}
	}
	if r.names == nil || !now.Before(r.listedAt) {
		r.names, r.listedAt = names, now
	}
	if r.began.IsZero() {
		r.began = now
	}
	return born
}

// observeFolded is Observe for OtherQueues, the sum of the queues beyond
// the cap (stats): its rates are those of what these queues did while
// folded, each queue counted from the call after the one that folded it;
// a queue of born (made since the previous listing) and folded at once
// counts whole.
func (r *RateTracker) observeFolded(now time.Time, stats []queue.Stats, born map[string]time.Time) (enqueueRate, doneRate, failureRate float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range stats {
		cur := rateSample{at: now, enqueued: st.Enqueued, succeeded: st.Succeeded, fail: st.Failed}
		prev, ok := r.folded[st.Queue]
		if _, new := born[st.Queue]; !ok && new {
			prev, ok = rateSample{}, true
		}
		if ok && cur.enqueued >= prev.enqueued && cur.succeeded >= prev.succeeded && cur.fail >= prev.fail {
			r.other.enqueued += cur.enqueued - prev.enqueued
			r.other.succeeded += cur.succeeded - prev.succeeded
			r.other.fail += cur.fail - prev.fail
		}
		r.folded[st.Queue] = cur
	}
	// A queue no longer folded is forgotten: when it comes back, what it
	// did meanwhile (shown on its own) is not counted here.
	for q, last := range r.folded {
		if last.at != now {
			delete(r.folded, q)
		}
	}
	return r.observe(now, queue.OtherQueues, r.other.enqueued, r.other.succeeded, r.other.fail)
}

// observeBorn is Observe for a queue made since bornAt, when not zero
// (listed): its first sample is preceded by one of zero totals at bornAt,
// so the jobs that made it count, and its rates are over the window (or
// the time since the tracker began, when shorter) as any other queue's,
// while that seed is in the window. Over the time since the seed, a queue
// made by a burst of 30 jobs showed 10 jobs/s three seconds after the
// listing before, where the last minute's rate is 0.5/s.
func (r *RateTracker) observeBorn(now time.Time, q string, enqueued, succeeded, failed int64, bornAt time.Time) (enqueueRate, doneRate, failureRate float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, seen := r.byName[q]; !seen && !bornAt.IsZero() && bornAt.Before(now) {
		// The sample of now goes in too: observe would take a sample less
		// than a second after the seed for a newer one of the same second.
		r.byName[q] = []rateSample{{at: bornAt, born: true}, {at: now, enqueued: enqueued, succeeded: succeeded, fail: failed}}
	}
	return r.observe(now, q, enqueued, succeeded, failed)
}

// observe is Observe; the caller holds mu.
func (r *RateTracker) observe(now time.Time, q string, enqueued, succeeded, failed int64) (enqueueRate, doneRate, failureRate float64) {
	r.sweep(now)
	hist := r.byName[q]
	if n := len(hist); n > 0 {
		last := hist[n-1]
		if enqueued < last.enqueued || succeeded < last.succeeded || failed < last.fail {
			hist = hist[:0]
		}
	}
	cur := rateSample{at: now, enqueued: enqueued, succeeded: succeeded, fail: failed}
	if n := len(hist); n > 0 && now.Sub(hist[n-1].at) < time.Second {
		hist[n-1] = cur
	} else {
		hist = append(hist, cur)
	}
	cut := 0
	for cut < len(hist)-1 && now.Sub(hist[cut].at) > r.window {
		cut++
	}
	hist = hist[cut:]
	r.byName[q] = hist
	first := hist[0]
	secs := now.Sub(first.at).Seconds()
	if first.born {
		// Zero totals all along, as far as the tracker has seen: the rate
		// is over as much of the window as it has seen, as for a queue it
		// has sampled from the start. Never less than the time since the
		// seed: began is no later than it (listed), and a seed a window
		// old is cut above.
		secs = min(r.window, now.Sub(r.began)).Seconds()
	}
	if secs <= 0 {
		return 0, 0, 0
	}
	// Done counts finished attempts, succeeded or failed, as top's
	// sparkline does: counting successes alone, a queue whose every job
	// failed read 0.0 done/s beside a busy sparkline, as if its workers
	// were stalled.
	fails := float64(cur.fail - first.fail)
	done := float64(cur.succeeded-first.succeeded) + fails
	enqueueRate = float64(cur.enqueued-first.enqueued) / secs
	doneRate = done / secs
	if done > 0 {
		failureRate = fails / done
	}
	return enqueueRate, doneRate, failureRate
}

// sweep forgets, at most once a window, the queues whose last sample is a
// window old; the caller holds mu.
func (r *RateTracker) sweep(now time.Time) {
	if now.Sub(r.swept) < r.window && !now.Before(r.swept) {
		return
	}
	r.swept = now
	for q, hist := range r.byName {
		if last := hist[len(hist)-1].at; now.Sub(last) > r.window || now.Before(last) {
			delete(r.byName, q)
		}
	}
}
