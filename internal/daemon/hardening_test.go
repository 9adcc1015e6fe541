package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core/metrics"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
	"github.com/refrakt/refrakt/internal/version"
)

// TestSlowlorisCutOff: clients that send their headers a line at a time,
// forever, are cut off by ReadHeaderTimeout (5 s), and while 40 of them
// hold connections the daemon keeps answering everyone else.
func TestSlowlorisCutOff(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, nil)
	const slow = 40
	cut := make(chan time.Duration, slow)
	start := time.Now()
	var wg sync.WaitGroup
	for range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", d.Addr)
			if err != nil {
				cut <- -1
				return
			}
			defer conn.Close()
			closed := make(chan struct{})
			go func() {
				// Any answer or the close ends the read; a slowloris
				// client never gets a 2xx.
				b, _ := io.ReadAll(conn)
				if strings.HasPrefix(string(b), "HTTP/1.1 2") {
					t.Errorf("a slow client was served: %q", b)
				}
				close(closed)
			}()
			_, _ = conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n"))
			for i := 0; ; i++ {
				select {
				case <-closed:
					cut <- time.Since(start)
					return
				case <-time.After(300 * time.Millisecond):
				}
				if time.Since(start) > 30*time.Second {
					cut <- 0
					return
				}
				_, _ = fmt.Fprintf(conn, "X-Slow-%d: a\r\n", i)
			}
		}()
	}
	// Everyone else is served meanwhile.
	for range 5 {
		resp, err := http.Get(d.URL + "/healthz")
		if err != nil {
			t.Fatalf("healthz while slow clients hold connections: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("healthz while slow clients hold connections: %d", resp.StatusCode)
		}
		time.Sleep(200 * time.Millisecond)
	}
	wg.Wait()
	close(cut)
	for c := range cut {
		switch {
		case c < 0:
			t.Fatal("could not connect")
		case c == 0:
			t.Fatal("a slow client was still connected after 30 s: no ReadHeaderTimeout")
		}
	}
}

// TestOversizeHeaders: headers past MaxHeaderBytes (64 KiB) get 431, and
// the daemon serves the next request.
func TestOversizeHeaders(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, nil)
	tests := []struct {
		name string
		size int
		want int
	}{
		{"under the limit", 16 << 10, 200},
		{"one huge header", 128 << 10, 431},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", d.URL+"/healthz", nil)
			req.Header.Set("X-Big", strings.Repeat("a", tc.size))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	t.Run("many small headers", func(t *testing.T) {
		conn, err := net.Dial("tcp", d.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var b strings.Builder
		b.WriteString("GET /healthz HTTP/1.1\r\nHost: x\r\n")
		for i := range 5000 {
			fmt.Fprintf(&b, "X-H-%d: %s\r\n", i, strings.Repeat("v", 20))
		}
		b.WriteString("\r\n")
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = conn.Write([]byte(b.String()))
		line, _ := bufio.NewReader(conn).ReadString('\n')
		if !strings.HasPrefix(line, "HTTP/1.1 431") {
			t.Fatalf("5000 headers: %q, want 431", line)
		}
	})
	if resp, err := http.Get(d.URL + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after oversize headers: %v %v", resp, err)
	}
}

// TestInFlightCapEndToEnd: with REFRAKT_MAX_IN_FLIGHT=1 the real daemon
// holding one /assistant request answers the next one 503 with Retry-After,
// still answers /healthz, and serves again once the first is done.
func TestInFlightCapEndToEnd(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, []string{"REFRAKT_MAX_IN_FLIGHT=1", "WORKER_CONCURRENCY=0"})
	d.WaitHTTP("/readyz", 200, 15*time.Second)
	// The held request waits 10 s for a worker that never comes. The probe
	// below may hold the only slot when it arrives (on a loaded machine it
	// can take a while to arrive): refused then, it tries again, and the
	// probe looks for its own refusal for as long as the slot may be held.
	deadline := time.Now().Add(9 * time.Second)
	held := make(chan int, 1)
	go func() {
		for {
			resp, err := http.Post(d.URL+"/assistant", "application/json", strings.NewReader(`{"type":"ping","timeout_ms":10000}`))
			if err != nil {
				held <- -1
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			held <- resp.StatusCode
			return
		}
	}()
	got503, heldCode := false, 0
	for time.Now().Before(deadline) && !got503 && heldCode == 0 {
		// A public request: the developer and operator routes have a
		// reserve of their own (TestInFlightCapKeepsOperatorsIn).
		resp, err := http.Get(d.URL + "/run/no-such-job")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 503 {
			got503 = true
			if resp.Header.Get("Retry-After") == "" {
				t.Error("503 at the cap without Retry-After")
			}
			if h, err := http.Get(d.URL + "/healthz"); err != nil || h.StatusCode != 200 {
				t.Errorf("healthz refused at the cap: %v %v", h, err)
			}
		}
		select {
		case heldCode = <-held: // it ended before any refusal was seen
		case <-time.After(20 * time.Millisecond):
		}
	}
	if !got503 {
		t.Fatalf("a second request while /assistant held the only slot was not refused (the held request: %d)", heldCode)
	}
	if heldCode == 0 {
		heldCode = <-held
	}
	if heldCode != http.StatusGatewayTimeout {
		t.Fatalf("the held /assistant got %d, want 504 (manual mode)", heldCode)
	}
	d.WaitHTTP("/api/obs/snapshot", 401, 5*time.Second) // served again
}

// heapAlloc is the live heap after a full collection.
func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestBucketMemoryBoundedUnderKeyFlood: 20,000 distinct client addresses
// cost memory only while their buckets are not full again. Once the clock
// passes the refill time and the sweep period, the memory store drops them:
// the heap returns near where it started. The bound (README, Guarantees):
// about 110 bytes per key (these keys are 25 to 40 bytes long) that spent
// a token within the last window plus 10 s; a flood of R new keys per
// second holds at most R × (refill time + 10 s) keys.
func TestBucketMemoryBoundedUnderKeyFlood(t *testing.T) {
	s, clock := newLimitServer(t)
	hit := func(from, n int) {
		for i := from; i < from+n; i++ {
			peer := fmt.Sprintf("10.%d.%d.%d:1000", i>>16&255, i>>8&255, i&255)
			resp, _ := send(t, s, request{method: "GET", path: "/api/public/tenant-meta?tenant=t", peer: peer})
			if resp.StatusCode != 200 {
				t.Fatalf("request %d: %d", i, resp.StatusCode)
			}
		}
	}
	settle := func() {
		// tenant-meta refills a token per second; the sweep runs every
		// 10 s per shard, on the shard's next decision.
		clock.Advance(2 * time.Minute)
	}
	hit(0, 3000)
	settle()
	hit(1_000_000, 3000)
	base := heapAlloc()
	const flood = 20_000
	hit(2_000_000, flood)
	peak := heapAlloc()
	settle()
	hit(3_000_000, 3000) // touches every shard, so each sweeps
	after := heapAlloc()
	grown, kept := int64(peak)-int64(base), int64(after)-int64(base)
	t.Logf("heap: base %d KiB, after %d keys +%d KiB (%d B/key), after they went idle +%d KiB", base>>10, flood, grown>>10, grown/flood, kept>>10)
	if grown < flood*40 {
		t.Fatalf("the flood grew the heap by only %d bytes: the measurement does not see the buckets", grown)
	}
	if kept > grown/3 {
		t.Fatalf("idle buckets were not released: +%d bytes after going idle, +%d at the peak", kept, grown)
	}
}

// TestBucketKeysExpireInRedis: on Redis every bucket key carries a TTL no
// longer than its policy's window, so a flood of distinct keys leaves
// nothing behind once it stops.
func TestBucketKeysExpireInRedis(t *testing.T) {
	r := redistest.Start(t)
	s, client := newRedisServer(t, r)
	for i := range 2000 {
		peer := fmt.Sprintf("10.9.%d.%d:1000", i>>8&255, i&255)
		if resp, _ := send(t, s, request{method: "GET", path: "/api/public/tenant-meta?tenant=t", peer: peer}); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	ctx := context.Background()
	keys, err := client.Keys(ctx, s.cfg.Prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	buckets := 0
	for _, k := range keys {
		ttl, err := client.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(k, "10.9.") {
			buckets++
			// go-redis: -2ns gone already (expired since KEYS), -1ns no TTL.
			if ttl == -time.Nanosecond || ttl > 61*time.Second {
				t.Errorf("bucket key %s: TTL %s, want a TTL ≤ the 60 s window", k, ttl)
			}
		}
	}
	if buckets == 0 {
		t.Fatalf("no bucket keys among %d keys: the test looks in the wrong place (%v)", len(keys), keys[:min(5, len(keys))])
	}
}

// TestJobHistoryBounded: a queue keeps at most JOB_HISTORY finished jobs;
// older ones are gone (404), so history memory is bounded per queue.
func TestJobHistoryBounded(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) { c.JobHistory = 20 })
	var first string
	for i := range 100 {
		resp, body := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping"}`)
		if resp.StatusCode != 202 {
			t.Fatalf("enqueue %d: %d", i, resp.StatusCode)
		}
		if i == 0 {
			first = str(body, "id")
		}
		if resp, body := do(t, s, "POST", "/api/dev/jobs/run-next", devToken, ""); resp.StatusCode != 200 {
			t.Fatalf("run-next %d: %d %v", i, resp.StatusCode, body)
		}
	}
	_, body := do(t, s, "GET", "/api/dev/jobs?limit=1000", devToken, "")
	jobs, _ := body["jobs"].([]any)
	if len(jobs) != 20 {
		t.Errorf("%d jobs kept, want JOB_HISTORY=20", len(jobs))
	}
	if resp, _ := do(t, s, "GET", "/run/"+first, "", ""); resp.StatusCode != 404 {
		t.Errorf("the oldest finished job: %d, want 404 (evicted)", resp.StatusCode)
	}
}

// TestQueueFloodRefusedByDefault: with the default settings, a flood of
// new queue names through the public POST /run creates at most 100 queues;
// the rest are refused with 400 and store nothing.
func TestQueueFloodRefusedByDefault(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) { c.RateLimitEnabled = false })
	const documented = 100 // the README's default, not the constant
	accepted := 0
	for i := range documented + 50 {
		resp, b := do(t, s, "POST", "/run", "", fmt.Sprintf(`{"type":"ping","queue":"flood-%d"}`, i))
		switch {
		case resp.StatusCode == 202:
			accepted++
		case resp.StatusCode != 400 || errCode(b) != "invalid":
			t.Fatalf("enqueue %d: %d %v", i, resp.StatusCode, b)
		}
	}
	if accepted != documented {
		t.Errorf("accepted %d distinct queues, want %d", accepted, documented)
	}
	names, err := s.jobs.svc.Broker().Queues(context.Background())
	if err != nil || len(names) != documented {
		t.Errorf("queues: %d (%v), want %d", len(names), err, documented)
	}
}

// TestQueueLabelsBoundedUnderQueueFlood: anyone may name a queue in POST
// /run, so a flood of distinct queue names must not become a flood of
// Prometheus series: the per-queue gauges keep at most maxQueueSeries
// label values (the busiest queues, the rest summed as "_other").
func TestQueueLabelsBoundedUnderQueueFlood(t *testing.T) {
	// QUEUE_MAX_QUEUES off: an operator who lifts the bound still gets
	// bounded metrics.
	s := newTestServer(t, func(c *config.Config) { c.RateLimitEnabled = false; c.QueueMaxQueues = 0 })
	const queues = 500
	for i := range queues {
		body := fmt.Sprintf(`{"type":"ping","queue":"flood-%d"}`, i)
		if i%50 == 0 {
			body = `{"type":"ping","queue":"busy"}`
		}
		if resp, b := do(t, s, "POST", "/run", "", body); resp.StatusCode != 202 {
			t.Fatalf("enqueue %d: %d %v", i, resp.StatusCode, b)
		}
	}
	s.sampleQueues(context.Background())
	const maxSeries = 100 // the documented bound, not the constant: changing one must fail here
	if n := testutil.CollectAndCount(s.metrics.QueuePending); n > maxSeries {
		t.Errorf("refrakt_queue_pending_jobs has %d series after %d queue names, want at most %d", n, queues, maxSeries)
	}
	if n := testutil.CollectAndCount(s.metrics.QueueOldestPending); n > maxSeries {
		t.Errorf("refrakt_queue_oldest_pending_seconds has %d series, want at most %d", n, maxSeries)
	}
	if got := testutil.ToFloat64(s.metrics.QueuePending.WithLabelValues("busy")); got != queues/50 {
		t.Errorf("busiest queue pending %v, want %d: the busiest queues keep their own series", got, queues/50)
	}
	if got := testutil.ToFloat64(s.metrics.QueuePending.WithLabelValues(otherQueues)); got < queues-queues/50-maxSeries {
		t.Errorf("%s pending %v: the queues beyond the cap must be summed, not dropped", otherQueues, got)
	}
}

// TestRejectionLabelsBounded: while Redis is down, admission refuses a new
// queue's job with reason backend before QUEUE_MAX_QUEUES can be checked
// (queue.TestAdmissionBackendErrorOnNewQueue), so the rejections' queue
// label is client input: a flood of distinct names must not become a flood
// of refrakt_admission_rejections_total series.
func TestRejectionLabelsBounded(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry(), version.Get())
	o := jobsObserver{m: m, rejected: newQueueLabels()}
	const queues = 300
	o.AdmissionRejected("busy", "backend")
	for i := range queues {
		o.AdmissionRejected(fmt.Sprintf("junk-%d", i), "backend")
	}
	o.AdmissionRejected("busy", "backend")
	const maxSeries = 100 // the documented bound
	if n := testutil.CollectAndCount(m.AdmissionRejections); n > maxSeries {
		t.Errorf("refrakt_admission_rejections_total has %d series after %d queue names, want at most %d", n, queues, maxSeries)
	}
	if got := testutil.ToFloat64(m.AdmissionRejections.WithLabelValues("busy", "backend")); got != 2 {
		t.Errorf("a queue labelled before the flood: %v rejections, want 2", got)
	}
	if got := testutil.ToFloat64(m.AdmissionRejections.WithLabelValues(otherQueues, "backend")); got != queues-(maxSeries-2) {
		t.Errorf("rejections under %s: %v, want %d", otherQueues, got, queues-(maxSeries-2))
	}
}

// TestRejectionLabelsGoToLoadedQueues: after an outage in which clients
// named more queues than there are labels (each refused with reason
// backend), a queue refused for its own load still gets its own series,
// the one RefraktQueueBacklog joins with the queue's gauges: a name that
// was only refused by the failing backend gives its label up, its series
// going. Concurrent rejections leave no series above the bound behind.
func TestRejectionLabelsGoToLoadedQueues(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry(), version.Get())
	o := jobsObserver{m: m, rejected: newQueueLabels()}
	o.startAtZero([]string{queue.ReasonMaxPending, queue.ReasonMaxAge})
	const junk = 150
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range junk {
				o.AdmissionRejected(fmt.Sprintf("evil-%d-%d", w, i), queue.ReasonBackend)
				o.AdmissionRejected(fmt.Sprintf("load-%d-%d", w, i%10), queue.ReasonMaxPending)
			}
		}()
	}
	wg.Wait()
	for range 3 {
		o.AdmissionRejected("emails", queue.ReasonMaxPending)
	}
	o.AdmissionRejected("reports", queue.ReasonMaxAge)
	if got := testutil.ToFloat64(m.AdmissionRejections.WithLabelValues("emails", queue.ReasonMaxPending)); got != 3 {
		t.Errorf("emails, refused for its pending jobs after the flood: %v rejections under its own label, want 3", got)
	}
	if got := testutil.ToFloat64(m.AdmissionRejections.WithLabelValues("reports", queue.ReasonMaxAge)); got != 1 {
		t.Errorf("reports, refused for its oldest job's age after the flood: %v rejections under its own label, want 1", got)
	}
	// The bound: 99 queues and _other, each with the reasons it was
	// refused for (the default queue's two at 0).
	queues := map[string]bool{}
	ch := make(chan prometheus.Metric, 1000)
	m.AdmissionRejections.Collect(ch)
	close(ch)
	for c := range ch {
		var d dto.Metric
		if err := c.Write(&d); err != nil {
			t.Fatal(err)
		}
		for _, lp := range d.GetLabel() {
			if lp.GetName() == "queue" {
				queues[lp.GetValue()] = true
			}
		}
	}
	if len(queues) > maxQueueSeries {
		t.Errorf("refrakt_admission_rejections_total has %d queue labels, want at most %d", len(queues), maxQueueSeries)
	}
}

// TestRejectionLabelsLeaveWithTheirQueues (growth29 LOW 4): the rejection
// counter's queue labels went to the first 99 names refused and stayed
// with them after their queues were removed, so after a churn of 120
// queues every new queue's rejections counted under _other, where
// RefraktQueueBacklog's join never sees them. A removed queue's series
// goes at the next sample of the queues, and its label with it.
func TestRejectionLabelsLeaveWithTheirQueues(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) {
		c.RateLimitEnabled, c.QueueMaxQueues, c.QueueMaxPending = false, 0, 1
		c.WorkerConcurrency = queue.ManualMode
	})
	refuse := func(q string) {
		t.Helper()
		if resp, body := do(t, s, "POST", "/run", "", `{"type":"ping","queue":"`+q+`"}`); resp.StatusCode != 202 {
			t.Fatalf("the first job of %s: %d %v", q, resp.StatusCode, body)
		}
		if resp, body := do(t, s, "POST", "/run", "", `{"type":"ping","queue":"`+q+`"}`); resp.StatusCode != 503 {
			t.Fatalf("the second job of %s, past QUEUE_MAX_PENDING=1: %d %v, want 503", q, resp.StatusCode, body)
		}
	}
	const old = 120
	for i := range old {
		refuse(fmt.Sprintf("old%d", i))
	}
	for i := range old {
		q := fmt.Sprintf("old%d", i)
		if resp, body := do(t, s, "POST", "/api/dev/jobs/run-next?queue="+q, devToken, ""); resp.StatusCode != 200 {
			t.Fatalf("run-next in %s: %d %v", q, resp.StatusCode, body)
		}
		if resp, body := do(t, s, "DELETE", "/api/dev/queues?queue="+q, devToken, ""); resp.StatusCode != 200 {
			t.Fatalf("removing %s: %d %v", q, resp.StatusCode, body)
		}
	}
	s.sampleQueues(context.Background())
	if text := scrape(t, s); strings.Contains(text, `refrakt_admission_rejections_total{queue="old`) {
		t.Fatalf("the removed queues' rejection series are still there after a sample of the queues:\n%s", grep(text, `rejections_total{queue="old`))
	}
	for i := range 20 {
		refuse(fmt.Sprintf("new%d", i))
	}
	text := scrape(t, s)
	for i := range 20 {
		if series := fmt.Sprintf(`refrakt_admission_rejections_total{queue="new%d",reason="max_pending"} 1`, i); !strings.Contains(text, series) {
			t.Errorf("/metrics lacks %s:\n%s", series, grep(text, "rejections_total"))
			break
		}
	}
}

// TestRejectionLabelRetainSparesNewNames: a queue refused while the sample
// of the queues that would free the labels was being read is not among the
// queues read, yet it exists: its label stays; one labelled before the read
// and not among the queues read goes.
func TestRejectionLabelRetainSparesNewNames(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry(), version.Get())
	o := jobsObserver{m: m, rejected: newQueueLabels()}
	o.AdmissionRejected("gone", queue.ReasonMaxPending)
	mark := o.rejected.mark()
	o.AdmissionRejected("fresh", queue.ReasonMaxPending)
	o.rejected.retain(m.AdmissionRejections, map[string]bool{}, mark)
	if n := testutil.CollectAndCount(m.AdmissionRejections); n != 1 {
		t.Errorf("%d series after the retain, want fresh's alone", n)
	}
	if got := testutil.ToFloat64(m.AdmissionRejections.WithLabelValues("fresh", queue.ReasonMaxPending)); got != 1 {
		t.Errorf("fresh, refused after the mark: %v rejections, want 1", got)
	}
}

// TestDeadLogsBoundedInAll (review ver29): the "job dead" lines are bounded
// per queue and in all: 20 a queue over 97 queues made 1,920 lines a 10 s
// window (public jobs name their queue). A line the bound in all holds back
// is counted in its queue's left_out.
func TestDeadLogsBoundedInAll(t *testing.T) {
	at := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	d := newDeadLogs(func() time.Time { return at })
	per := map[string]int{}
	total := 0
	for q := range 97 {
		for range 30 {
			if ok, _ := d.take(fmt.Sprintf("q%d", q)); ok {
				per[fmt.Sprintf("q%d", q)]++
				total++
			}
		}
	}
	if total != deadLogAll {
		t.Errorf("%d lines in a window from 97 queues of 30 dead jobs, want %d", total, deadLogAll)
	}
	for q, n := range per {
		if n > deadLogBurst {
			t.Errorf("%s: %d lines in a window, want at most %d", q, n, deadLogBurst)
		}
	}
	at = at.Add(deadLogEvery)
	if ok, held := d.take("q96"); !ok || held != 30 {
		t.Errorf("q96's first line of the next window: %v with %d left out, want written with its 30 held back", ok, held)
	}
}
