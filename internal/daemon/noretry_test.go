package daemon

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/refrakt/refrakt/internal/core/metrics"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/version"
)

// TestNoRetryDeadLinesBounded: the "job dead" lines of jobs whose handler
// said not to retry are bounded per queue like those of retries exhausted
// (anyone may enqueue a public fail job with {"retry":false}); each says
// why.
func TestNoRetryDeadLinesBounded(t *testing.T) {
	at := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	logs := &syncBuffer{}
	o := jobsObserver{m: metrics.New(prometheus.NewRegistry(), version.Get()), log: slog.New(slog.NewTextHandler(logs, nil)),
		deadLog: newDeadLogs(func() time.Time { return at })}
	for range 3 * deadLogBurst {
		o.Dead(queue.DeadJob{ID: "j", Queue: "final", Type: "fail", Attempts: 1, LastError: "x (not retried)"}, queue.DeadNotRetried)
	}
	out := logs.String()
	if n := strings.Count(out, `msg="job dead: not retried (its handler said the failure is final)"`); n != deadLogBurst {
		t.Errorf("%d lines for %d jobs dead in one window, want %d:\n%s", n, 3*deadLogBurst, deadLogBurst, out)
	}
}
