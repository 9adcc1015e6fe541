package top

import (
	"strconv"
	"strings"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/snapshot"
)

// rateWindow is how far back the sparklines look.
const rateWindow = time.Minute

// maxSamples bounds a queue's history whatever the refresh interval.
const maxSamples = 600

// rateSample is the enqueue and done rates between two snapshots, stamped
// with the later one's time.
type rateSample struct {
	at        time.Time
	enq, done float64
}

// queueHistory is what `top` remembers of one queue to draw its sparklines:
// the last counters seen and the rates derived from their deltas.
type queueHistory struct {
	at                   time.Time
	enq, succeeded, fail int64
	samples              []rateSample
	// folded says which queues OtherQueues summed (otherMembers), for
	// that entry only.
	folded string
}

// nextHistory returns the histories after snapshot s, stamped at (the
// daemon's generated_at). It never changes prev, so Update stays a pure
// function of its input. A counter that went backwards (a restarted daemon
// with a memory backend) starts that queue's history afresh.
//
// OtherQueues' totals are the sums over the queues folded into it now,
// which change as pending counts reorder: a queue folded in brings its
// whole past, one leaving takes it away. Across such a change its totals
// have no delta to draw: that interval gets no sample (the slot repeats its
// left neighbour), and the history before it stays.
func nextHistory(prev map[string]queueHistory, s snapshot.Snapshot, at time.Time) map[string]queueHistory {
	next := make(map[string]queueHistory, len(s.Queues))
	for _, q := range s.Queues {
		h := queueHistory{at: at, enq: q.EnqueuedTotal, succeeded: q.SucceededTotal, fail: q.FailedTotal}
		p, ok := prev[q.Name]
		if ok && !at.After(p.at) {
			// The same snapshot again (or an older one): nothing new to learn.
			next[q.Name] = p
			continue
		}
		if q.Name == queue.OtherQueues {
			h.folded = otherMembers(s)
			if ok && h.folded != p.folded {
				h.samples = dropOld(p.samples, at.Add(-rateWindow))
				next[q.Name] = h
				continue
			}
		}
		done, pdone := q.SucceededTotal+q.FailedTotal, p.succeeded+p.fail
		if ok && q.EnqueuedTotal >= p.enq && done >= pdone {
			dt := at.Sub(p.at).Seconds()
			keep := dropOld(p.samples, at.Add(-rateWindow))
			h.samples = make([]rateSample, 0, len(keep)+1)
			h.samples = append(h.samples, keep...)
			h.samples = append(h.samples, rateSample{
				at:   at,
				enq:  float64(q.EnqueuedTotal-p.enq) / dt,
				done: float64(done-pdone) / dt,
			})
		}
		next[q.Name] = h
	}
	return next
}

// otherMembers identifies the queues s sums into OtherQueues: all the
// queues there are (QueuesTotal) but those listed by name. The same
// listing and the same total mean the same queues folded (but for one
// queue removed and another made in the same interval, both folded).
func otherMembers(s snapshot.Snapshot) string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(s.QueuesTotal))
	for _, q := range s.Queues {
		if q.Name != queue.OtherQueues {
			b.WriteByte(0)
			b.WriteString(q.Name)
		}
	}
	return b.String()
}

// dropOld returns the samples at or after since, at most maxSamples-1 of
// them, so one more fits.
func dropOld(samples []rateSample, since time.Time) []rateSample {
	i := 0
	for i < len(samples) && samples[i].at.Before(since) {
		i++
	}
	if n := len(samples) - i; n > maxSamples-1 {
		i += n - (maxSamples - 1)
	}
	return samples[i:]
}

// series returns width columns covering the minute up to end: each the mean
// of the samples in its slot, NaN-free; ok[i] is false for a slot before
// the first sample. A slot without samples after the first one repeats its
// left neighbour, so a refresh interval longer than a slot draws no holes.
func series(samples []rateSample, end time.Time, width int, pick func(rateSample) float64) (vals []float64, ok []bool) {
	vals, ok = make([]float64, width), make([]bool, width)
	if width == 0 {
		return vals, ok
	}
	start := end.Add(-rateWindow)
	slot := rateWindow / time.Duration(width)
	sums, counts := make([]float64, width), make([]int, width)
	for _, s := range samples {
		if s.at.Before(start) || s.at.After(end) {
			continue
		}
		i := int(s.at.Sub(start) / slot)
		if i >= width {
			i = width - 1
		}
		sums[i] += pick(s)
		counts[i]++
	}
	seen := false
	for i := range width {
		switch {
		case counts[i] > 0:
			vals[i], ok[i], seen = sums[i]/float64(counts[i]), true, true
		case seen:
			vals[i], ok[i] = vals[i-1], true
		}
	}
	return vals, ok
}
