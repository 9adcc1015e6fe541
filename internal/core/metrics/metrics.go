// Package metrics holds refrakt's Prometheus collectors. They live on one
// registry built at start-up and passed in (never the global one), so two
// daemons can run in one process. The domain packages report through small
// observer interfaces that *Metrics implements; they never import Prometheus.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/refrakt/refrakt/internal/version"
)

// Metrics is every collector of DESIGN §8.
type Metrics struct {
	JobEnqueued         *prometheus.CounterVec
	JobTransitions      *prometheus.CounterVec
	JobQueueWait        prometheus.Histogram
	QueuePending        *prometheus.GaugeVec
	QueueRunning        *prometheus.GaugeVec
	QueueOldestPending  *prometheus.GaugeVec
	QueueSampled        *prometheus.GaugeVec
	QueueScheduled      *prometheus.GaugeVec
	QueueRetry          *prometheus.GaugeVec
	QueueDead           *prometheus.GaugeVec
	QueuePaused         *prometheus.GaugeVec
	QueueTotals         *QueueTotals
	JobDuration         *prometheus.HistogramVec
	RateLimitDecisions  *prometheus.CounterVec
	RateLimitBans       prometheus.Counter
	RateLimitPenalized  prometheus.Gauge
	RateLimitSampled    prometheus.Gauge
	AdmissionRejections *prometheus.CounterVec
	BuildInfo           *prometheus.GaugeVec
	HTTPRequests        *prometheus.CounterVec
	HTTPDuration        *prometheus.HistogramVec
	BackendErrors       *prometheus.CounterVec
	JobsAbandoned       prometheus.Gauge
}

// New registers every collector, with the Go and process collectors, on reg.
func New(reg prometheus.Registerer, info version.Info) *Metrics {
	latency := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &Metrics{
		JobEnqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refrakt_job_enqueued_total", Help: "Jobs enqueued through this daemon (source api; cli: the CLI's enqueues over HTTP, not those of its --redis driver, which no daemon counts) and jobs due again (schedule: a recurring job's next run; retry: a failed attempt's retry).",
		}, []string{"source"}),
		JobTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refrakt_job_status_transitions_total", Help: "Job state changes, by the state left and the state entered.",
		}, []string{"from_status", "to_status"}),
		JobQueueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "refrakt_job_queue_wait_seconds", Help: "Time from a job's enqueue or due time to its start.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		QueuePending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "refrakt_queue_pending_jobs", Help: "Jobs waiting to run, sampled per queue (shared across daemons on one Redis: aggregate with max).",
		}, []string{"queue"}),
		QueueRunning: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "refrakt_queue_running_jobs", Help: "Jobs running, sampled per queue (shared across daemons on one Redis: aggregate with max).",
		}, []string{"queue"}),
		QueueOldestPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "refrakt_queue_oldest_pending_seconds", Help: "Age of the oldest pending job, sampled per queue (shared across daemons on one Redis: aggregate with max).",
		}, []string{"queue"}),
		QueueSampled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "refrakt_queue_sampled_timestamp_seconds", Help: "Unix time the queue's gauges (pending, running, oldest pending, scheduled, retry, dead) and totals were last read from the backend: while it does not answer they keep their last values and this stays put, so time() minus this is their age.",
		}, []string{"queue"}),
		QueueScheduled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "refrakt_queue_scheduled_jobs", Help: "Jobs waiting for their run time (delayed, or a recurring job's next run), sampled per queue (shared across daemons on one Redis: aggregate with max).",
		}, []string{"queue"}),
		QueueRetry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "refrakt_queue_retry_jobs", Help: "Jobs whose last attempt failed, waiting for their retry, sampled per queue (shared across daemons on one Redis: aggregate with max).",
		}, []string{"queue"}),
		QueueDead: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "refrakt_queue_dead_jobs", Help: "Dead jobs kept (at most JOB_HISTORY per queue; a requeue or a removal takes one out), sampled per queue (shared across daemons on one Redis: aggregate with max).",
		}, []string{"queue"}),
		QueuePaused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "refrakt_queue_paused", Help: "1 while the queue is paused (refrakt jobs pause: its pending jobs wait, no worker takes one), else 0, sampled per queue (shared across daemons on one Redis: aggregate with max).",
		}, []string{"queue"}),
		QueueTotals: newQueueTotals(),
		JobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "refrakt_job_duration_seconds", Help: "Time a job's handler ran, by job type and outcome (status: succeeded, failed with retries left, dead, cancelled, timeout: cut by its timeout, the attempt failed, retried or dead).",
			Buckets: latency,
		}, []string{"type", "status"}),
		RateLimitDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refrakt_ratelimit_decisions_total", Help: "Rate-limit decisions, by limit, scope and decision (allowed, limited, banned: refused during a ban or by the refusal that imposed it, shadow_limited: what a shadow override would have refused).",
		}, []string{"limit", "scope", "decision"}),
		RateLimitBans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "refrakt_ratelimit_bans_total", Help: "Temporary bans imposed on rate-limit keys.",
		}),
		RateLimitPenalized: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "refrakt_ratelimit_penalized_keys", Help: "Rate-limit keys that carry strikes or a ban, sampled (shared across daemons on one Redis: aggregate with max; per instance on the memory backend).",
		}),
		RateLimitSampled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "refrakt_ratelimit_penalized_keys_sampled_timestamp_seconds", Help: "Unix time refrakt_ratelimit_penalized_keys was last read from the backend: while it does not answer the gauge keeps its last value and this stays put, so time() minus this is its age.",
		}),
		AdmissionRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refrakt_admission_rejections_total", Help: "Requests refused by admission control, by queue and reason (max_pending, max_age, backend).",
		}, []string{"queue", "reason"}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "refrakt_build_info", Help: "Always 1; labels name the running build.",
		}, []string{"version", "goversion"}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refrakt_http_requests_total", Help: "HTTP requests served, by route pattern and status code.",
		}, []string{"route", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "refrakt_http_request_duration_seconds", Help: "HTTP request latency, by route pattern.",
			Buckets: latency,
		}, []string{"route"}),
		BackendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refrakt_backend_errors_total", Help: "Errors talking to the backend, by operation.",
		}, []string{"op"}),
		JobsAbandoned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "refrakt_jobs_abandoned_handlers", Help: "Job handlers of this daemon still running past their timeout: their attempt failed and their worker moved on, but the handler ignored its cancelled context. Each holds a goroutine and what it holds until it returns.",
		}),
	}
	reg.MustRegister(
		m.JobEnqueued, m.JobTransitions, m.JobQueueWait, m.QueuePending, m.QueueRunning,
		m.QueueOldestPending, m.QueueSampled, m.QueueScheduled, m.QueueRetry, m.QueueDead, m.QueuePaused, m.QueueTotals, m.JobDuration, m.RateLimitDecisions, m.RateLimitBans,
		m.RateLimitPenalized, m.RateLimitSampled, m.AdmissionRejections, m.BuildInfo, m.HTTPRequests,
		m.HTTPDuration, m.BackendErrors, m.JobsAbandoned,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.BuildInfo.WithLabelValues(info.Version, info.GoVersion).Set(1)
	return m
}

// BackendError counts a failed backend operation.
func (m *Metrics) BackendError(op string) { m.BackendErrors.WithLabelValues(op).Inc() }
