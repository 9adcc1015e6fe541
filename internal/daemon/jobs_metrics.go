package daemon

import (
	"context"
	"time"

	"github.com/refrakt/refrakt/internal/core/metrics"
	"github.com/refrakt/refrakt/internal/core/queue"
)

// jobsObserver reports the queue's events to the Prometheus collectors.
type jobsObserver struct{ m *metrics.Metrics }

var _ queue.Observer = jobsObserver{}

func (o jobsObserver) Enqueued(source string) { o.m.JobEnqueued.WithLabelValues(source).Inc() }

func (o jobsObserver) Transition(from, to string) {
	o.m.JobTransitions.WithLabelValues(from, to).Inc()
}

func (o jobsObserver) Waited(_ string, d time.Duration) { o.m.JobQueueWait.Observe(d.Seconds()) }

func (o jobsObserver) Finished(typ, status string, d time.Duration) {
	o.m.JobDuration.WithLabelValues(typ, status).Observe(d.Seconds())
}

func (o jobsObserver) AdmissionRejected(q, reason string) {
	o.m.AdmissionRejections.WithLabelValues(q, reason).Inc()
}

func (o jobsObserver) BackendError(op string) { o.m.BackendError("queue_" + op) }

// addQueueSampler registers the component that sets the per-queue gauges
// every PROMETHEUS_QUEUE_POLL_INTERVAL (one Stats read per queue).
func (s *Server) addQueueSampler() {
	var cancel context.CancelFunc
	done := make(chan struct{})
	s.addComponent("queue-metrics",
		func(context.Context) error {
			var ctx context.Context
			ctx, cancel = context.WithCancel(context.Background())
			go func() {
				defer close(done)
				t := time.NewTicker(s.cfg.PrometheusQueuePollInterval)
				defer t.Stop()
				for {
					s.sampleQueues(ctx)
					select {
					case <-ctx.Done():
						return
					case <-t.C:
					}
				}
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

func (s *Server) sampleQueues(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	stats, err := s.jobs.svc.Stats(sctx)
	if err != nil {
		return // counted by the service as a backend error
	}
	for _, st := range stats {
		s.metrics.QueuePending.WithLabelValues(st.Queue).Set(float64(st.Pending))
		s.metrics.QueueRunning.WithLabelValues(st.Queue).Set(float64(st.Running))
		s.metrics.QueueOldestPending.WithLabelValues(st.Queue).Set(st.OldestPendingAge.Seconds())
	}
}
