package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// QueueCounts are the lifetime totals the backend keeps for one queue
// (Redis q:{Q}:stats, the memory broker's counts), as one sample read them.
type QueueCounts struct {
	Enqueued, Started, Succeeded, Failed int64
}

// Since is what c counted after prev, field by field; a field that went
// back (the queue removed and made again, a Redis that lost its data)
// counts from 0, as Prometheus reads a counter reset.
func (c QueueCounts) Since(prev QueueCounts) QueueCounts {
	d := func(cur, old int64) int64 {
		if cur < old {
			return cur
		}
		return cur - old
	}
	return QueueCounts{d(c.Enqueued, prev.Enqueued), d(c.Started, prev.Started),
		d(c.Succeeded, prev.Succeeded), d(c.Failed, prev.Failed)}
}

// Plus is c and o added field by field.
func (c QueueCounts) Plus(o QueueCounts) QueueCounts {
	return QueueCounts{c.Enqueued + o.Enqueued, c.Started + o.Started, c.Succeeded + o.Succeeded, c.Failed + o.Failed}
}

// QueueTotals exports each sampled queue's QueueCounts as counters. The
// backend keeps the totals, so their values are set from each sample, not
// added to (client_golang's Counter only adds): the sampler sets and
// deletes a queue's series with its gauges.
type QueueTotals struct {
	mu      sync.Mutex
	byQueue map[string]QueueCounts
	descs   [4]*prometheus.Desc // enqueued, started, succeeded, failed
}

// shared is what the HELP of each queue total says of aggregating it.
const shared = " Read from the backend with the queue gauges; on one Redis every daemon reports the same totals: aggregate rate() or increase() with max by (queue), not sum. _other counts what its queues did while folded into it."

func newQueueTotals() *QueueTotals {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help+shared, []string{"queue"}, nil)
	}
	return &QueueTotals{byQueue: map[string]QueueCounts{}, descs: [4]*prometheus.Desc{
		desc("refrakt_queue_jobs_enqueued_total", "Jobs enqueued in the queue, by any daemon or the --redis CLI (not a recurring job's next runs, nor retries)."),
		desc("refrakt_queue_job_attempts_started_total", "Times a worker took a job of the queue (runs handed back unstarted, by a shed or an interrupted manual run, included)."),
		desc("refrakt_queue_job_attempts_succeeded_total", "Attempts of the queue's jobs that succeeded (each run of a recurring job)."),
		desc("refrakt_queue_job_attempts_failed_total", "Attempts of the queue's jobs that failed: the handler's failures, retried or going dead, and leases that expired."),
	}}
}

// Set makes q's series c.
func (t *QueueTotals) Set(q string, c QueueCounts) {
	t.mu.Lock()
	t.byQueue[q] = c
	t.mu.Unlock()
}

// Delete drops q's series.
func (t *QueueTotals) Delete(q string) {
	t.mu.Lock()
	delete(t.byQueue, q)
	t.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (t *QueueTotals) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range t.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (t *QueueTotals) Collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for q, c := range t.byQueue {
		for i, v := range [4]int64{c.Enqueued, c.Started, c.Succeeded, c.Failed} {
			ch <- prometheus.MustNewConstMetric(t.descs[i], prometheus.CounterValue, float64(v), q)
		}
	}
}
