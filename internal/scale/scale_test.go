package scale_test

import (
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/daemontest"
)

// scenario is one multi-daemon check, run on each topology.
type scenario struct {
	name string
	fn   func(*testing.T, *backend)
}

// scenarios run on one Redis server and on a cluster alike.
var scenarios = []scenario{
	{"GlobalLimit", testGlobalLimit},
	{"OverridesPropagate", testOverridesPropagate},
	{"JobsOnceAcrossQueues", testJobsOnceAcrossQueues},
	{"PromotionOnce", testPromotionOnce},
	{"RecurringDoesNotMultiply", testRecurringDoesNotMultiply},
	{"KilledDaemonRecovered", testKilledDaemonRecovered},
	{"GaugesAgree", testGaugesAgree},
}

// TestSingleRedis runs every scenario with three daemons on one Redis
// server.
func TestSingleRedis(t *testing.T) {
	b := startSingle(t)
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) { sc.fn(t, b) })
	}
}

// TestCluster runs every scenario with three daemons on a Redis Cluster of
// three masters, then restarts a master under load.
func TestCluster(t *testing.T) {
	b := startCluster(t)
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) { sc.fn(t, b) })
	}
	t.Run("MasterRestartUnderLoad", func(t *testing.T) { testMasterRestartUnderLoad(t, b) })
}

// checkBackendKind checks that daemon d on b detected the topology itself
// (cluster_enabled:1 or not): QUEUE_URL alone does not say.
func checkBackendKind(t *testing.T, b *backend, d *daemontest.Daemon) {
	t.Helper()
	want := "msg=ready backend=redis\n"
	if b.cluster != nil {
		want = "msg=ready backend=redis-cluster\n"
	}
	// The daemon logs "ready" just after it starts answering /readyz.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(d.Log(), "msg=ready ") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if log := d.Log(); !strings.Contains(log, want) {
		t.Fatalf("the daemon's log has no %q:\n%s", strings.TrimSpace(want), log)
	}
}
