package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/metrics"
	"github.com/refrakt/refrakt/internal/version"
)

// TestRedisLogOncePerInterval: go-redis's own lines reach the structured
// log (JSON here) as warnings, one per interval, with the count of those
// left out in between.
func TestRedisLogOncePerInterval(t *testing.T) {
	var buf bytes.Buffer
	l := newRedisLog(slog.New(slog.NewJSONHandler(&buf, nil)), time.Hour)
	now := time.Now()
	l.Now = func() time.Time { return now }
	ctx := context.Background()
	for range 5 {
		l.Printf(ctx, "redis: connection pool: failed to dial after %d attempts: %s", 5, "connection refused")
	}
	now = now.Add(time.Hour) // the interval has passed
	l.Printf(ctx, "redis: discarding bad PubSub connection")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2 (one per interval):\n%s", len(lines), buf.String())
	}
	for i, want := range []struct {
		detail  string
		leftOut float64
	}{{"failed to dial after 5 attempts: connection refused", 0}, {"discarding bad PubSub connection", 4}} {
		var rec map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &rec); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i+1, err, lines[i])
		}
		if rec["level"] != "WARN" || rec["msg"] != "redis client" || !strings.Contains(rec["detail"].(string), want.detail) || rec["left_out"] != want.leftOut {
			t.Errorf("line %d = %v, want a WARN \"redis client\" with %q and left_out %v", i+1, rec, want.detail, want.leftOut)
		}
	}
}

// TestQueueBackendErrorsLogged: the job queue's backend failures reach the
// log as one warning per interval, naming the operation, besides their
// metric; during an outage the queue once wrote no line at all.
func TestQueueBackendErrorsLogged(t *testing.T) {
	var buf bytes.Buffer
	m := metrics.New(prometheus.NewRegistry(), version.Get())
	o := jobsObserver{m: m, errs: &core.LogThrottle{Logger: slog.New(slog.NewJSONHandler(&buf, nil)), Msg: "job queue backend failing", Every: time.Hour}}
	for range 4 {
		o.BackendError("enqueue", errors.New("connection refused"))
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines for 4 failures within the interval, want 1:\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["level"] != "WARN" || rec["msg"] != "job queue backend failing" || rec["op"] != "enqueue" {
		t.Errorf("line %v, want a WARN naming op enqueue", rec)
	}
	// The error itself: TRYAGAIN, a timeout and a refused connection call
	// for different actions.
	if rec["err"] != "connection refused" {
		t.Errorf("line %v, want the error", rec)
	}
	if got := testutil.ToFloat64(m.BackendErrors.WithLabelValues("queue_enqueue")); got != 4 {
		t.Errorf("refrakt_backend_errors_total{op=queue_enqueue} = %v, want 4", got)
	}
}
