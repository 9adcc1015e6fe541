package daemon

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/redistest"
)

// sampleOf returns the value of series (its name and labels as the text
// format writes them) in a scrape's text, and whether it is there.
func sampleOf(text, series string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// sampledAt reads the timestamp gauges of series from /metrics, failing
// the test when one is missing.
func sampledAt(t *testing.T, s *Server, series ...string) []float64 {
	t.Helper()
	text := scrape(t, s)
	out := make([]float64, len(series))
	for i, name := range series {
		v, ok := sampleOf(text, name)
		if !ok {
			t.Fatalf("/metrics has no %s:\n%s", name, grep(text, "sampled_timestamp"))
		}
		out[i] = v
	}
	return out
}

// waitSampledAfter waits until every timestamp of series is there and
// past since, for at most within.
func waitSampledAfter(t *testing.T, s *Server, since time.Time, within time.Duration, series ...string) {
	t.Helper()
	var text string
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		text = scrape(t, s)
		past := true
		for _, name := range series {
			v, ok := sampleOf(text, name)
			past = past && ok && v > unixSeconds(since)
		}
		if past {
			return
		}
	}
	t.Fatalf("%v not sampled after %.3f within %v:\n%s", series, unixSeconds(since), within, grep(text, "sampled_timestamp"))
}

// TestGaugeTimestampsStopWhileRedisIsPaused (review metrics29 MEDIUM 2):
// while Redis does not answer, /metrics keeps serving the queue gauges and
// refrakt_ratelimit_penalized_keys at their last values, which looked
// current: nothing said how old they were. Their *_sampled_timestamp_seconds
// stop at the last read begun before the stall, and move again once Redis
// answers.
func TestGaugeTimestampsStopWhileRedisIsPaused(t *testing.T) {
	r := redistest.Start(t)
	s, _ := newRedisServer(t, r, func(c *config.Config) { c.PrometheusQueuePollInterval = 100 * time.Millisecond })
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	if resp, body := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping"}`); resp.StatusCode != 202 {
		t.Fatalf("enqueue: %d %v", resp.StatusCode, body)
	}
	series := []string{`refrakt_queue_sampled_timestamp_seconds{queue="default"}`, `refrakt_ratelimit_penalized_keys_sampled_timestamp_seconds`}
	waitSampledAfter(t, s, time.Now(), 5*time.Second, series...)

	paused := time.Now()
	r.Pause()
	defer r.Resume()
	// A read begun before the pause may still complete; none begun after
	// it can. Two failed queue samples (each waits out its 2 s timeout)
	// later, the timestamps are where the last good read left them.
	time.Sleep(4500 * time.Millisecond)
	frozen := sampledAt(t, s, series...)
	for i, v := range frozen {
		if v > unixSeconds(paused) {
			t.Errorf("%s = %.3f, after Redis was paused at %.3f: it moved without a read", series[i], v, unixSeconds(paused))
		}
	}
	text := scrape(t, s)
	if v, ok := sampleOf(text, `refrakt_queue_pending_jobs{queue="default"}`); !ok || v != 1 {
		t.Errorf(`refrakt_queue_pending_jobs{queue="default"} = %v (there: %v), want its last value, 1, kept`, v, ok)
	}
	time.Sleep(time.Second)
	if again := sampledAt(t, s, series...); fmt.Sprint(again) != fmt.Sprint(frozen) {
		t.Errorf("timestamps moved while Redis was paused: %v, then %v", frozen, again)
	}

	resumed := time.Now()
	r.Resume()
	waitSampledAfter(t, s, resumed, 10*time.Second, series...)
}

// TestQueueTimestampsWithAClusterMasterPaused: with one master of a Redis
// Cluster not answering, the queues on the other masters go on being read,
// and so does their refrakt_queue_sampled_timestamp_seconds; the silent
// master's queues keep their gauges at their last values
// (TestQueueGaugesWithAClusterMasterPaused) and their timestamps where the
// last read left them, until the master answers again.
func TestQueueTimestampsWithAClusterMasterPaused(t *testing.T) {
	c := redistest.StartCluster(t, 3, "--cluster-node-timeout", "60000")
	healthy, stalled := queueOnMaster(c, c.Nodes()[0], "g"), queueOnMaster(c, c.Nodes()[1], "g")
	s, _ := newURLServer(t, c.URL(), func(c *config.Config) { c.PrometheusQueuePollInterval = 100 * time.Millisecond })
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	for _, q := range []string{healthy, stalled} {
		if resp, body := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping","queue":"`+q+`"}`); resp.StatusCode != 202 {
			t.Fatalf("enqueue in %s: %d %v", q, resp.StatusCode, body)
		}
	}
	at := func(q string) string { return fmt.Sprintf(`refrakt_queue_sampled_timestamp_seconds{queue=%q}`, q) }
	waitSampledAfter(t, s, time.Now(), 10*time.Second, at(healthy), at(stalled))

	paused := time.Now()
	c.Nodes()[1].Pause()
	defer c.Nodes()[1].Resume()
	waitSampledAfter(t, s, paused.Add(time.Second), 15*time.Second, at(healthy))
	if v := sampledAt(t, s, at(stalled))[0]; v > unixSeconds(paused) {
		t.Errorf("%s = %.3f, after its master was paused at %.3f: it moved without a read", at(stalled), v, unixSeconds(paused))
	}

	resumed := time.Now()
	c.Nodes()[1].Resume()
	waitSampledAfter(t, s, resumed, 15*time.Second, at(healthy), at(stalled))
}

// TestQueueTimestampsFollowTheQueueLabels: refrakt_queue_sampled_timestamp_seconds
// has a series for exactly the queues the other per-queue gauges name (at
// most 100: default, the busiest others and _other), also after the busiest
// queues change and some lose their series.
func TestQueueTimestampsFollowTheQueueLabels(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) { c.RateLimitEnabled = false; c.QueueMaxQueues = 0 })
	enqueue := func(q string, n int) { enqueuePings(t, s, q, n) }
	check := func(when string) {
		t.Helper()
		text := scrape(t, s)
		want, got := scrapedQueueLabels(text, "refrakt_queue_pending_jobs"), scrapedQueueLabels(text, "refrakt_queue_sampled_timestamp_seconds")
		if diff := cmp.Diff(want, got); diff != "" || len(got) != 100 {
			t.Errorf("%s: %d timestamp series, want the %d queues of refrakt_queue_pending_jobs, 100 (-want +got)\n%s", when, len(got), len(want), diff)
		}
	}
	for i := range 150 {
		enqueue(fmt.Sprintf("a%03d", i), 1)
	}
	s.sampleQueues(context.Background())
	check("150 queues")
	for i := range 120 {
		enqueue(fmt.Sprintf("b%03d", i), 2)
	}
	s.sampleQueues(context.Background())
	check("120 busier queues later")
}

// enqueuePings enqueues n ping jobs in queue q through POST /run.
func enqueuePings(t *testing.T, s *Server, q string, n int) {
	t.Helper()
	for range n {
		if resp, b := do(t, s, "POST", "/run", "", `{"type":"ping","queue":"`+q+`"}`); resp.StatusCode != 202 {
			t.Fatalf("enqueue in %s: %d %v", q, resp.StatusCode, b)
		}
	}
}

// scrapedQueueLabels returns the queue labels of metric's series in a scrape.
func scrapedQueueLabels(text, metric string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(l, metric+`{queue="`); ok {
			q, _, _ := strings.Cut(rest, `"`)
			out = append(out, q)
		}
	}
	return out
}
