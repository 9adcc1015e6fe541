package daemon

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

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
	queueOn := func(n *redistest.Server) string {
		for i := 0; ; i++ {
			if q := fmt.Sprintf("g%d", i); c.MasterFor("refrakt:q:{"+q+"}:pending") == n {
				return q
			}
		}
	}
	healthy, stalled := queueOn(c.Nodes()[0]), queueOn(c.Nodes()[1])
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
