package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestMetricsMoveWithTraffic drives the traffic that should move each
// metric of DESIGN §8 and checks its labels and values.
func TestMetricsMoveWithTraffic(t *testing.T) {
	s, clock := newLimitServer(t, func(c *config.Config) {
		c.QueueMaxPending = 3
		c.BanAfterStrikes = 2
	})
	m := s.metrics
	for i := 0; i < 4; i++ { // three fit, the fourth is refused by admission control
		raw(t, s, "POST", "/run", "", `{"type":"ping"}`)
	}
	raw(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping","queue":"other"}`)
	clock.Advance(1500 * time.Millisecond)
	raw(t, s, "POST", "/api/dev/jobs/run-next", devToken, `{}`)
	for i := 0; i < 8; i++ { // 3 allowed, then limited with strikes, then banned
		raw(t, s, "GET", "/api/dev/rl-test", devToken, "")
	}

	checks := []struct {
		name string
		got  float64
		want float64
	}{
		{"enqueued{source=api}: three by /run, one by the dev route", testutil.ToFloat64(m.JobEnqueued.WithLabelValues("api")), 4},
		{"admission rejections{default,max_pending}", testutil.ToFloat64(m.AdmissionRejections.WithLabelValues("default", "max_pending")), 1},
		{"transitions pending→running", testutil.ToFloat64(m.JobTransitions.WithLabelValues("pending", "running")), 1},
		{"transitions running→succeeded", testutil.ToFloat64(m.JobTransitions.WithLabelValues("running", "succeeded")), 1},
		{"decisions rl-test ip allowed", testutil.ToFloat64(m.RateLimitDecisions.WithLabelValues("rl-test", "ip", "allowed")), 3},
		{"bans", testutil.ToFloat64(m.RateLimitBans), 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if n := testutil.ToFloat64(m.RateLimitDecisions.WithLabelValues("rl-test", "ip", "limited")); n < 1 {
		t.Errorf("no limited decision counted")
	}
	if n := testutil.ToFloat64(m.RateLimitDecisions.WithLabelValues("rl-test", "ip", "banned")); n < 1 {
		t.Errorf("no banned decision counted")
	}
	if n := testutil.CollectAndCount(m.JobQueueWait); n != 1 {
		t.Errorf("queue wait histogram has %d series, want 1", n)
	}
	text := scrape(t, s)
	for _, want := range []string{
		`refrakt_job_queue_wait_seconds_count 1`,
		`refrakt_job_queue_wait_seconds_sum 1.5`,
		`refrakt_job_duration_seconds_count{status="succeeded",type="ping"} 1`,
		`refrakt_http_requests_total{code="202",route="POST /run"} 3`,
		`refrakt_http_requests_total{code="503",route="POST /run"} 1`,
		`refrakt_http_request_duration_seconds_count{route="GET /api/dev/rl-test"} 8`,
		`refrakt_build_info{goversion="go1.`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	problems, err := testutil.GatherAndLint(s.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "refrakt_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}

// TestSamplerFollowsQueues: the gauges show a queue's pending count and
// oldest age within one poll interval, and stop moving when the daemon stops.
func TestSamplerFollowsQueues(t *testing.T) {
	s, clock := newLimitServer(t, func(c *config.Config) {
		c.PrometheusQueuePollInterval = 100 * time.Millisecond
		c.BanAfterStrikes = 1
	})
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		raw(t, s, "POST", "/run", "", `{"type":"ping","queue":"mail"}`)
	}
	clock.Advance(7 * time.Second)
	// Started after the clock's jump: a snapshot walk of the limiter that
	// ran across it would seem to have taken 7 s, and its result, from
	// before the requests below, would be shared for the longest a walk's
	// result may be (memstore's maxShare) of a clock that moves no more.
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		raw(t, s, "GET", "/api/dev/rl-test", devToken, "")
	}
	m := s.metrics
	waitFor(t, "pending gauge 5 and oldest 7s", func() bool {
		return testutil.ToFloat64(m.QueuePending.WithLabelValues("mail")) == 5 &&
			testutil.ToFloat64(m.QueueOldestPending.WithLabelValues("mail")) == 7 &&
			testutil.ToFloat64(m.QueueRunning.WithLabelValues("mail")) == 0
	})
	waitFor(t, "penalized keys gauge 1", func() bool { return testutil.ToFloat64(m.RateLimitPenalized) == 1 })
	stop, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s.Stop(stop)
	raw(t, s, "POST", "/run", "", `{"type":"ping","queue":"mail"}`)
	time.Sleep(400 * time.Millisecond) // four poll intervals
	if got := testutil.ToFloat64(m.QueuePending.WithLabelValues("mail")); got != 5 {
		t.Fatalf("the sampler kept running after Stop: pending gauge %v", got)
	}
}

// TestMetricLabelsStayBounded: 10,000 distinct paths and client IPs add
// no series beyond the route patterns and limit names.
func TestMetricLabelsStayBounded(t *testing.T) {
	s, _ := newLimitServer(t)
	for i := 0; i < 10_000; i++ {
		path := fmt.Sprintf("/x/%d", i)
		if i%2 == 0 {
			path = "/api/public/tenant-meta?tenant=" + fmt.Sprint(i)
		}
		req := httptest.NewRequest("GET", path, nil)
		req.RemoteAddr = fmt.Sprintf("198.51.%d.%d:1234", i/256%256, i%256)
		s.ServeHTTP(httptest.NewRecorder(), req)
	}
	m := s.metrics
	if n := testutil.CollectAndCount(m.HTTPRequests); n > 5 {
		t.Errorf("refrakt_http_requests_total has %d series after 10k distinct paths", n)
	}
	if n := testutil.CollectAndCount(m.HTTPDuration); n > 5 {
		t.Errorf("refrakt_http_request_duration_seconds has %d series", n)
	}
	if n := testutil.CollectAndCount(m.RateLimitDecisions); n > 3 {
		t.Errorf("refrakt_ratelimit_decisions_total has %d series after 5k distinct IPs", n)
	}
	if text := scrape(t, s); strings.Contains(text, "198.51.") || strings.Contains(text, "/x/") {
		t.Error("an IP or a raw path reached a label")
	}
}

// TestBackendErrorsCounted: a limiter decision against a stopped Redis is
// counted by operation.
func TestBackendErrorsCounted(t *testing.T) {
	r := redistest.Start(t)
	s, _ := newRedisServer(t, r)
	r.Stop()
	if rec := raw(t, s, "GET", "/api/dev/rl-test", devToken, ""); rec.Code != 200 {
		t.Fatalf("rl-test with Redis down (local fallback): %d %s", rec.Code, rec.Body)
	}
	if n := testutil.CollectAndCount(s.metrics.BackendErrors); n < 1 {
		t.Fatal("no refrakt_backend_errors_total series after a Redis failure")
	}
	if text := scrape(t, s); !strings.Contains(text, `refrakt_backend_errors_total{op="ratelimit_`) {
		t.Errorf("backend error not labelled by operation:\n%s", grep(text, "backend_errors"))
	}
	// The series exist from the start, at 0 (TestCountersStartAtZero): the
	// error must have moved one.
	if n := testutil.ToFloat64(s.metrics.BackendErrors.WithLabelValues("ratelimit_take")); n < 1 {
		t.Errorf("refrakt_backend_errors_total{op=ratelimit_take} = %v after a failed decision, want at least 1", n)
	}
}

func scrape(t *testing.T, s *Server) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d", rec.Code)
	}
	return rec.Body.String()
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("not within 5s: %s", what)
}

// newLoggedServer is newTestServer logging, at info level and up, into
// the builder it returns.
func newLoggedServer(t *testing.T) (*Server, *strings.Builder) {
	t.Helper()
	logs := &strings.Builder{}
	s, err := NewServer(Deps{Config: testConfig(), Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s, logs
}

// TestClientGoneIsNotAServerError: a client that hangs up while its
// request waits (here POST /assistant, for a job no worker runs) was
// answered 500, counted as a server error and logged at ERROR, once per
// request: any anonymous client could fill the error log and the 5xx rate.
// It counts as 499 (nginx's "client closed request") and logs nothing.
func TestClientGoneIsNotAServerError(t *testing.T) {
	s, logs := newLoggedServer(t)
	for range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		req := httptest.NewRequest("POST", "/assistant", strings.NewReader(`{"type":"ping","timeout_ms":60000}`)).WithContext(ctx)
		req.RemoteAddr = "192.0.2.40:1"
		go func() { time.Sleep(50 * time.Millisecond); cancel() }()
		s.ServeHTTP(httptest.NewRecorder(), req)
		cancel()
	}
	m := s.metrics.HTTPRequests
	if got := [2]float64{testutil.ToFloat64(m.WithLabelValues("POST /assistant", "499")), testutil.ToFloat64(m.WithLabelValues("POST /assistant", "500"))}; got != [2]float64{2, 0} {
		t.Errorf("POST /assistant counted as 499 and 500: %v, want [2 0]", got)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("a client going away was logged as an error:\n%s", logs.String())
	}
}

// TestPanicCounted: a handler's panic is answered 500 and counted in
// refrakt_http_requests_total like any other answer; the recovery sat
// outside the metrics, which recorded nothing for it.
func TestPanicCounted(t *testing.T) {
	s, logs := newLoggedServer(t)
	s.mux.Handle("GET /api/dev/panic", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/api/dev/panic", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", rec.Code)
	}
	if n := testutil.ToFloat64(s.metrics.HTTPRequests.WithLabelValues("GET /api/dev/panic", "500")); n != 1 {
		t.Errorf("counted %v times, want 1", n)
	}
	if !strings.Contains(logs.String(), "panic in handler") {
		t.Errorf("the panic was not logged:\n%s", logs.String())
	}
}

// TestClientGoneKeepsServerErrors: only a failure caused by the client
// leaving is a 499; a server error that happens while the client is gone
// keeps its 500 and its log line (a code review found every error answered
// 499 and unlogged once the request's context had ended).
func TestClientGoneKeepsServerErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest("POST", "/run", nil).WithContext(ctx)
	w := httptest.NewRecorder()
	var logs strings.Builder
	writeError(w, r, slog.New(slog.NewTextHandler(&logs, nil)), core.Wrap(core.CodeInternal, errors.New("WRONGTYPE Operation against a key holding the wrong kind of value"), "store failed"))
	if w.Code != http.StatusInternalServerError || !strings.Contains(logs.String(), "request failed") {
		t.Errorf("a server error with the client gone: status %d, log %q; want 500, logged", w.Code, logs.String())
	}
}
