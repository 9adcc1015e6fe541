package daemon

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestQueueGaugesWithAClusterMasterPaused (review shard28): the queue
// gauges of /metrics are sampled for every queue at once; with one master
// of a Redis Cluster not answering, the other masters' queues' gauges go on
// being updated, and the silent master's queues keep their last values.
// Every queue's gauges froze: an alert on a healthy queue's backlog could
// not fire while another master was down.
func TestQueueGaugesWithAClusterMasterPaused(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, "--cluster-node-timeout", "60000")
	healthy, stalled := queueOnMaster(c, c.Nodes()[0], "g"), queueOnMaster(c, c.Nodes()[1], "g")
	d := daemontest.Start(t, []string{"QUEUE_URL=" + c.URL(), "WORKER_CONCURRENCY=0", "PROMETHEUS_QUEUE_POLL_INTERVAL=1s"})
	d.WaitHTTP("/readyz", http.StatusOK, 20*time.Second)
	gauge := func(q string, n int) string { return fmt.Sprintf(`refrakt_queue_pending_jobs{queue=%q} %d`, q, n) }
	waitMetrics := func(want ...string) {
		t.Helper()
		var body []byte
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			_, body = d.Call(http.MethodGet, "/metrics", "")
			missing := false
			for _, w := range want {
				missing = missing || !strings.Contains(string(body), w)
			}
			if !missing {
				return
			}
		}
		t.Fatalf("/metrics lacks %q; its queue gauges:\n%s\nlog:\n%s", want, grep(string(body), "refrakt_queue_pending_jobs"), d.Log())
	}
	devEnqueue(t, d, `{"type":"ping","queue":"`+healthy+`"}`)
	devEnqueue(t, d, `{"type":"ping","queue":"`+stalled+`"}`)
	waitMetrics(gauge(healthy, 1), gauge(stalled, 1))

	c.Nodes()[1].Pause()
	defer c.Nodes()[1].Resume()
	devEnqueue(t, d, `{"type":"ping","queue":"`+healthy+`"}`)
	waitMetrics(gauge(healthy, 2), gauge(stalled, 1))
}

// queueOnMaster is a queue name whose keys live on master n of c: the
// first of prefix0, prefix1, … there.
func queueOnMaster(c *redistest.Cluster, n *redistest.Server, prefix string) string {
	for i := 0; ; i++ {
		if q := fmt.Sprintf("%s%d", prefix, i); c.MasterFor("refrakt:q:{"+q+"}:pending") == n {
			return q
		}
	}
}

// TestRejectionLabelsLeaveWithAClusterMasterPaused (code29 LOW 3): a
// removed queue gives its admission-rejection label up at the next sample
// of the queues also while a master of the Cluster does not answer (its
// queues, not read, are not gone): a partial read freed no label, so a
// master down for long kept new queues' rejections under _other.
func TestRejectionLabelsLeaveWithAClusterMasterPaused(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, "--cluster-node-timeout", "60000")
	// The paused master holds held's keys, not the queue index's (without
	// the index no queue is read, and no label can be judged gone).
	index := c.MasterFor("refrakt:queues")
	var paused *redistest.Server
	for _, n := range c.Nodes() {
		if n != index {
			paused = n
		}
	}
	// alive, on a master that answers, makes the read partial: with
	// held's alone, the sample fails whole, and judges nothing.
	gone, alive, held := queueOnMaster(c, index, "g"), queueOnMaster(c, index, "a"), queueOnMaster(c, paused, "g")
	s, _ := newURLServer(t, c.URL(), func(c *config.Config) {
		c.RateLimitEnabled, c.QueueMaxPending, c.WorkerConcurrency = false, 1, queue.ManualMode
	})
	for range 2 {
		do(t, s, "POST", "/run", "", `{"type":"ping","queue":"`+gone+`"}`)
	}
	if !strings.Contains(scrape(t, s), `refrakt_admission_rejections_total{queue="`+gone+`"`) {
		t.Fatalf("%s's second job was not refused for max_pending:\n%s", gone, grep(scrape(t, s), "rejections_total"))
	}
	if resp, body := do(t, s, "POST", "/api/dev/jobs/run-next?queue="+gone, devToken, ""); resp.StatusCode != 200 {
		t.Fatalf("run-next in %s: %d %v", gone, resp.StatusCode, body)
	}
	if resp, body := do(t, s, "DELETE", "/api/dev/queues?queue="+gone, devToken, ""); resp.StatusCode != 200 {
		t.Fatalf("removing %s: %d %v", gone, resp.StatusCode, body)
	}
	for _, q := range []string{alive, held} {
		if resp, body := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping","queue":"`+q+`"}`); resp.StatusCode != 202 {
			t.Fatalf("enqueue in %s: %d %v", q, resp.StatusCode, body)
		}
	}
	paused.Pause()
	defer paused.Resume()
	s.sampleQueues(context.Background())
	if text := scrape(t, s); strings.Contains(text, `refrakt_admission_rejections_total{queue="`+gone+`"`) {
		t.Errorf("removed %s keeps its rejection series after a sample with %s's master paused:\n%s", gone, held, grep(text, "rejections_total"))
	}
}
