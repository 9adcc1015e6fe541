package daemon

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/metrics"
	"github.com/refrakt/refrakt/internal/core/queue"
)

// jobsObserver reports the queue's events to the Prometheus collectors,
// and its backend failures to the log too, at most one line per interval.
type jobsObserver struct {
	m    *metrics.Metrics
	log  *slog.Logger
	errs *core.LogThrottle // "job queue backend failing", and "… answers again"
	// wholeOnly: only a call that reads every queue (stats) ends an
	// outage, as on a Redis Cluster, where the calls of the queues on the
	// masters that answer succeed while another master is down.
	wholeOnly bool
	// deadLog bounds the "job dead" lines of the jobs whose handler failed
	// their last attempt, per queue: anyone may make a public job go dead.
	deadLog *deadLogs
	// rejected bounds the queue labels of the admission rejections: a
	// refused request may name any queue (while the backend is down, even
	// one QUEUE_MAX_QUEUES would refuse).
	rejected *queueLabels
	// timeoutLog bounds the "job timed out" lines as deadLog bounds its
	// own: anyone may enqueue a public job that outlives its timeout.
	timeoutLog *deadLogs
}

var (
	_ queue.Observer        = jobsObserver{}
	_ queue.AnswerObserver  = jobsObserver{}
	_ queue.TimeoutObserver = jobsObserver{}
)

func (o jobsObserver) Enqueued(source string) { o.m.JobEnqueued.WithLabelValues(source).Inc() }

func (o jobsObserver) Transition(from, to string) {
	o.m.JobTransitions.WithLabelValues(from, to).Inc()
}

func (o jobsObserver) Waited(_ string, d time.Duration) { o.m.JobQueueWait.Observe(d.Seconds()) }

func (o jobsObserver) Finished(typ, status string, d time.Duration) {
	o.m.JobDuration.WithLabelValues(typ, status).Observe(d.Seconds())
}

// TimedOut logs, at WARN, a run its timeout cut short (the attempt
// failed): the job's id, queue, type, attempt and timeout, never its
// payload; bounded per queue as the "job dead" lines are, left_out
// counting the queue's lines held back since its last one.
func (o jobsObserver) TimedOut(j queue.TimedOutJob) {
	ok, held := o.timeoutLog.take(j.Queue)
	if !ok {
		return
	}
	o.log.Warn("job timed out: its handler's context was cancelled and the attempt failed", "id", j.ID, "queue", j.Queue, "type", j.Type,
		"attempts", j.Attempts, "timeout", j.Timeout, "left_out", held)
}

// Abandoned moves refrakt_jobs_abandoned_handlers: handlers left running
// past their timeout, until they return.
func (o jobsObserver) Abandoned(delta int) { o.m.JobsAbandoned.Add(float64(delta)) }

// Dead logs each job that went dead, by the handler's failure or by a tick
// that found its last attempt's lease expired: the backend keeps it among
// its queue's last JOB_HISTORY dead jobs (apart from the succeeded ones),
// the log for as long as logs are kept. The message says why ("job dead: retries exhausted",
// "job dead: not retried (its handler said the failure is final)",
// "job dead: lease expired on its last attempt"); the attributes are the
// same, so that one grep finds them all. The handler's failures, retried
// or not, are bounded per queue (deadLogs); left_out counts those of the
// queue left out since its last line. A lease expired is a worker lost,
// which no request can cause: each is logged.
func (o jobsObserver) Dead(j queue.DeadJob, why queue.DeadCause) {
	held := 0
	if why != queue.DeadLeaseExpired {
		ok, h := o.deadLog.take(j.Queue)
		if !ok {
			return
		}
		held = h
	}
	o.log.Warn("job dead: "+string(why), "id", j.ID, "queue", j.Queue, "type", j.Type, "attempts", j.Attempts, "error", j.LastError, "left_out", held)
}

// deadLogs bounds the lines of the jobs whose handler failed their last
// attempt: at most deadLogBurst per queue and deadLogAll in all per window
// of deadLogEvery. Anyone may make a public job go dead, in a queue they
// name, and each made a line (17,300 for as many anonymous requests); a
// queue's flood leaves the other queues' lines alone, and a flood spread
// over many queues is bounded too (20 a queue over 97 queues made 1,920
// lines a window). At most maxQueueSeries queues have a budget of their
// own at a time (a budget back to rest is dropped when room is needed),
// the others share one.
type deadLogs struct {
	mu    sync.Mutex
	m     map[string]*core.LogBudget
	other *core.LogBudget
	all   *core.LogBudget
}

// deadLogBurst "job dead" lines at most per deadLogEvery and queue,
// deadLogAll in all.
const (
	deadLogBurst = 20
	deadLogAll   = 100
	deadLogEvery = 10 * time.Second
)

func newDeadLogs(now func() time.Time) *deadLogs {
	return &deadLogs{m: map[string]*core.LogBudget{},
		other: &core.LogBudget{Burst: deadLogBurst, Every: deadLogEvery, Now: now},
		all:   &core.LogBudget{Burst: deadLogAll, Every: deadLogEvery, Now: now}}
}

// take reports whether a line of queue q may be written, and how many of
// q's lines were held back since its last one: q's budget, then the one of
// every queue (a line q's let through and that one refused counts as held
// back in q's).
func (d *deadLogs) take(q string) (ok bool, heldBack int) {
	b := d.budget(q)
	if ok, heldBack = b.Take(); !ok {
		return false, 0
	}
	if ok, _ := d.all.Take(); !ok {
		b.Hold(heldBack + 1)
		return false, 0
	}
	return true, heldBack
}

// budget is q's budget.
func (d *deadLogs) budget(q string) *core.LogBudget {
	d.mu.Lock()
	b := d.m[q]
	if b == nil {
		if len(d.m) >= maxQueueSeries {
			for name, old := range d.m {
				if old.Idle() {
					delete(d.m, name)
				}
			}
		}
		b = d.other
		if len(d.m) < maxQueueSeries {
			b = &core.LogBudget{Burst: deadLogBurst, Every: deadLogEvery, Now: d.other.Now}
			d.m[q] = b
		}
	}
	d.mu.Unlock()
	return b
}

func (o jobsObserver) AdmissionRejected(q, reason string) {
	o.rejected.inc(o.m.AdmissionRejections, q, reason)
}

// queueLabels hands out queue label values for a counter whose queue names
// are client input: the first maxQueueSeries-1 names keep their own, any
// later one counts under otherQueues (a counter's series cannot be handed
// on without losing its count). A name refused only because the backend
// failed may be any name a client sent, a queue that does not exist: once
// the labels are taken, such a name gives its label up to a queue refused
// for its own load (max_pending, max_age), whose series the alerts join
// with the queue's gauges. The default queue keeps its label.
type queueLabels struct {
	mu   sync.Mutex
	seen map[string]queueLabel
	// named counts the labels handed out (queueLabel.at, retain).
	named uint64
}

// queueLabel is what queueLabels knows of a name with a label.
type queueLabel struct {
	load bool   // refused for its load, not only by a failing backend
	at   uint64 // queueLabels.named when it got its label
}

func newQueueLabels() *queueLabels { return &queueLabels{seen: map[string]queueLabel{}} }

// mark returns the labels handed out so far, for a later retain.
func (l *queueLabels) mark() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.named
}

// retain gives up the labels of the names labelled before mark that are
// not among live, the queues read at mark or after it: a queue removed
// (by any daemon, or the CLI) loses its series, count and all, and its
// label goes to the next queue refused. Kept for good, the labels of
// removed queues left every queue made after a churn of 100 counted under
// otherQueues, which RefraktQueueBacklog's join never sees. The default
// queue keeps its label.
func (l *queueLabels) retain(vec *prometheus.CounterVec, live map[string]bool, mark uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, ql := range l.seen {
		if name == queue.DefaultQueue || live[name] || ql.at >= mark {
			continue
		}
		delete(l.seen, name)
		vec.DeletePartialMatch(prometheus.Labels{"queue": name})
	}
}

// add labels name; l.mu held.
func (l *queueLabels) add(name string, load bool) {
	l.seen[name] = queueLabel{load: load, at: l.named}
	l.named++
}

// inc counts a rejection of q for reason in vec (queue, reason) under q's
// label. Choosing the label and changing the series happen under one lock,
// so that an evicted name's series cannot come back behind the eviction.
// An evicted name's series goes, count and all: moved under otherQueues its
// count would look like new rejections there to rate(), and raise
// RefraktAdmissionRefusing after the outage it counted.
func (l *queueLabels) inc(vec *prometheus.CounterVec, q, reason string) {
	if l == nil {
		vec.WithLabelValues(q, reason).Inc()
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	label, evicted := l.label(q, reason)
	if evicted != "" {
		vec.DeleteLabelValues(evicted, queue.ReasonBackend)
	}
	vec.WithLabelValues(label, reason).Inc()
}

// reserve gives q a label that no other name takes over (as a queue
// refused for its load has), while labels are left, and returns it.
func (l *queueLabels) reserve(q string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ql, ok := l.seen[q]; ok {
		ql.load = true
		l.seen[q] = ql
		return q
	}
	if len(l.seen) < maxQueueSeries-1 {
		l.add(q, true)
		return q
	}
	return otherQueues
}

// label returns q's label for a rejection for reason and, when q took the
// label of a name refused only by a failing backend, that name; l.mu held.
func (l *queueLabels) label(q, reason string) (label, evicted string) {
	load := reason != queue.ReasonBackend
	if ql, ok := l.seen[q]; ok {
		ql.load = ql.load || load
		l.seen[q] = ql
		return q, ""
	}
	if len(l.seen) < maxQueueSeries-1 {
		l.add(q, load)
		return q, ""
	}
	if load {
		for name, ql := range l.seen {
			if !ql.load && name != queue.DefaultQueue {
				delete(l.seen, name)
				l.add(q, true)
				return q, name
			}
		}
	}
	return otherQueues, ""
}

func (o jobsObserver) BackendError(op string, err error) {
	o.m.BackendError(queueOp(op))
	if o.errs != nil {
		attrs := []slog.Attr{slog.String("op", op)}
		if err != nil {
			attrs = append(attrs, slog.Any("err", err), core.CauseAttr(err))
		}
		o.errs.Warn(context.Background(), attrs...)
	}
}

// BackendAnswered ends an outage that a "job queue backend failing" line
// began: "job queue backend answers again", once, with the op that
// succeeded. On a Redis Cluster only stats, which reads every queue and so
// every master, ends it (wholeOnly): a tick leaves out the queues of a
// master marked failing, so a tick that succeeds says nothing of it
// (review code30 C2: it ended the outage's log mid-outage).
func (o jobsObserver) BackendAnswered(op string) {
	if o.errs == nil || o.wholeOnly && op != "stats" {
		return
	}
	o.errs.OK(context.Background(), slog.String("op", op))
}

// queueOp is the op label of a failed broker call.
func queueOp(op string) string { return "queue_" + op }

// startAtZero makes the series of the job counters whose label values are
// known before anything happens, at 0: every transition, every enqueue
// source, the rejections of the default queue for the reasons admission
// control may give, and every broker call's failures (the memory broker's
// too: it fails a call whose caller gave up). increase() and rate() take a
// series' first sample as its start, so one that appeared at its first
// event, 1, showed no increase: RefraktJobsDying missed the first deaths. A
// queue named by clients gets its rejections' series at its first one, as
// before (queueLabels bounds them); the default queue takes one of those
// labels here.
func (o jobsObserver) startAtZero(reasons []string) {
	for _, t := range queue.Transitions {
		o.m.JobTransitions.WithLabelValues(string(t.From), string(t.To))
	}
	for _, src := range queue.Sources {
		o.m.JobEnqueued.WithLabelValues(src)
	}
	if len(reasons) > 0 {
		q := o.rejected.reserve(queue.DefaultQueue)
		for _, r := range reasons {
			o.m.AdmissionRejections.WithLabelValues(q, r)
		}
	}
	for _, op := range queue.BackendOps {
		o.m.BackendErrors.WithLabelValues(queueOp(op))
	}
}

// addQueueSampler registers the component that sets the per-queue gauges
// every PROMETHEUS_QUEUE_POLL_INTERVAL (one Stats read per queue).
func (s *Server) addQueueSampler() {
	s.addTicker("queue-metrics", s.cfg.PrometheusQueuePollInterval, s.sampleQueues)
}

// addTicker registers a component that runs f at once and then every d,
// on a goroutine of its own, from start until stop.
func (s *Server) addTicker(name string, d time.Duration, f func(ctx context.Context)) {
	var cancel context.CancelFunc
	done := make(chan struct{})
	s.addComponent(name,
		func(context.Context) error {
			var ctx context.Context
			ctx, cancel = context.WithCancel(context.Background())
			go func() {
				defer close(done)
				everyTick(ctx, d, func() { f(ctx) })
			}()
			return nil
		},
		func(ctx context.Context) error {
			if cancel == nil {
				return nil
			}
			cancel()
			select {
			case <-done:
			case <-ctx.Done():
			}
			return nil
		})
}

// maxQueueSeries caps the label values of the per-queue gauges: anyone may
// name a queue in POST /run, so queue names are client input. The busiest
// queues keep their own series; the rest are summed under otherQueues.
const maxQueueSeries = queue.ShownQueues

// otherQueues is the queue label of the queues beyond maxQueueSeries.
const otherQueues = queue.OtherQueues

// sampleQueues sets the per-queue gauges and totals from one Stats read
// (the totals are in it already: no other read), and each read queue's
// refrakt_queue_sampled_timestamp_seconds to the time the read began. A queue that could not be read keeps its gauges at their
// last values (a scrape answers with what it has), and its timestamp says
// how old they are: the alerts and panels cannot tell a frozen value from
// a current one otherwise.
func (s *Server) sampleQueues(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	at := unixSeconds(s.clock.Now())
	mark := s.jobs.rejected.mark()
	stats, err := s.jobs.svc.Stats(sctx)
	var partial *queue.StatsError
	if err != nil && !errors.As(err, &partial) {
		return // counted by the service as a backend error
	}
	// The queues gone give their rejection labels up: those neither read
	// nor named as failing (on a Redis Cluster, a master that does not
	// answer holds its queues, which are not gone).
	live := make(map[string]bool, len(stats))
	for _, st := range stats {
		live[st.Queue] = true
	}
	if partial != nil {
		for _, q := range partial.Failed {
			live[q] = true
		}
	}
	s.jobs.rejected.retain(s.metrics.AdmissionRejections, live, mark)
	all := stats
	stats = queue.CapStats(stats, maxQueueSeries)
	var failed []string
	if partial != nil {
		failed = partial.Failed
	}
	s.queueSeriesMu.Lock()
	defer s.queueSeriesMu.Unlock()
	other := s.otherTotals.add(queue.Folded(all, stats), failed)
	seen := make(map[string]bool, len(stats))
	// The queues that could not be read (on a Redis Cluster, their master
	// does not answer) keep their series, at the last values read, while
	// the others' are updated: one master down froze every queue's gauges.
	for _, q := range failed {
		if s.queueSeries[q] {
			seen[q] = true
		}
	}
	m := s.metrics
	for _, st := range stats {
		seen[st.Queue] = true
		m.QueuePending.WithLabelValues(st.Queue).Set(float64(st.Pending))
		m.QueueRunning.WithLabelValues(st.Queue).Set(float64(st.Running))
		m.QueueOldestPending.WithLabelValues(st.Queue).Set(st.OldestPendingAge.Seconds())
		m.QueueScheduled.WithLabelValues(st.Queue).Set(float64(st.Scheduled))
		m.QueueRetry.WithLabelValues(st.Queue).Set(float64(st.Retry))
		m.QueueDead.WithLabelValues(st.Queue).Set(float64(st.Dead))
		paused := 0.0
		if st.Paused {
			paused = 1
		}
		m.QueuePaused.WithLabelValues(st.Queue).Set(paused)
		totals := queueCounts(st)
		if st.Queue == otherQueues {
			totals = other
		}
		m.QueueTotals.Set(st.Queue, totals)
		m.QueueSampled.WithLabelValues(st.Queue).Set(at)
	}
	// A queue that left the top (or the backend) loses its series, so the
	// count stays at most maxQueueSeries over time, not just per sample.
	for q := range s.queueSeries {
		if !seen[q] {
			m.QueuePending.DeleteLabelValues(q)
			m.QueueRunning.DeleteLabelValues(q)
			m.QueueOldestPending.DeleteLabelValues(q)
			m.QueueScheduled.DeleteLabelValues(q)
			m.QueueRetry.DeleteLabelValues(q)
			m.QueueDead.DeleteLabelValues(q)
			m.QueuePaused.DeleteLabelValues(q)
			m.QueueTotals.Delete(q)
			m.QueueSampled.DeleteLabelValues(q)
		}
	}
	s.queueSeries = seen
}

// queueCounts are st's lifetime totals.
func queueCounts(st queue.Stats) metrics.QueueCounts {
	return metrics.QueueCounts{Enqueued: st.Enqueued, Started: st.Started, Succeeded: st.Succeeded, Failed: st.Failed}
}

// otherTotals keeps the counters of otherQueues monotonic. Its entry's
// totals are the sum of the queues folded into it at the time, which a
// queue moving in raised by its whole past (rate() read it as that many
// jobs at once), and one moving out lowered (rate() read the drop as a
// counter reset: the whole remaining sum as new jobs). So otherQueues
// counts only what its queues did while folded: from one sample to the
// next, what each queue folded at both counted, the snapshot's rule for
// _other's rates.
type otherTotals struct {
	sum  metrics.QueueCounts
	last map[string]metrics.QueueCounts // the folded queues' totals at the last sample
}

// add counts what the folded queues did since the last sample, and
// returns the counters of otherQueues. A folded queue that could not be
// read (failed) keeps its last totals, for the sample that reads it again.
func (o *otherTotals) add(folded []queue.Stats, failed []string) metrics.QueueCounts {
	next := make(map[string]metrics.QueueCounts, len(folded))
	for _, st := range folded {
		cur := queueCounts(st)
		if prev, ok := o.last[st.Queue]; ok {
			o.sum = o.sum.Plus(cur.Since(prev))
		}
		next[st.Queue] = cur
	}
	for _, q := range failed {
		if c, ok := o.last[q]; ok {
			next[q] = c
		}
	}
	o.last = next
	return o.sum
}

// unixSeconds is t as a sample of a *_timestamp_seconds gauge.
func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
