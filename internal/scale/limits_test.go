package scale_test

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// burst sends n POST /run requests at once from client IP ip, spread
// round-robin over the fleet's daemons, and returns how many each daemon
// admitted (202) and refused (429); any other answer fails the test.
func (f *fleet) burst(n int, ip string) (admitted, refused []int) {
	f.t.Helper()
	admitted, refused = make([]int, len(f.ds)), make([]int, len(f.ds))
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			d := i % len(f.ds)
			r, err := f.try(f.ds[d], http.MethodPost, "/run", map[string]any{"type": "ping"}, "CF-Connecting-IP", ip)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				f.t.Errorf("POST /run on daemon %d: %v", d, err)
			case r.status == http.StatusAccepted:
				admitted[d]++
			case r.status == http.StatusTooManyRequests:
				refused[d]++
			default:
				f.t.Errorf("POST /run on daemon %d: %d %s", d, r.status, r.body)
			}
		}()
	}
	close(start)
	wg.Wait()
	return admitted, refused
}

// testGlobalLimit: three daemons, one client hammering them all at once.
// The limit is one decision in Redis, so exactly the burst is admitted in
// total, however the requests are spread; then an override set on one
// daemon is what all three enforce, again exactly.
func testGlobalLimit(t *testing.T, b *backend) {
	const burst = 25
	// A decision that takes longer than RATE_LIMIT_BACKEND_TIMEOUT is made
	// by the daemon alone (RATE_LIMIT_ON_BACKEND_ERROR=local): with the
	// race detector on two cores, 100ms is not always enough, and this test
	// is about the decisions Redis makes.
	f := startFleet(t, b, 3, "RATE_LIMIT_RUN_BURST="+strconv.Itoa(burst), "RATE_LIMIT_RUN_PER_MINUTE=1", "RATE_LIMIT_BACKEND_TIMEOUT=2s")
	admitted, refused := f.burst(90, "203.0.113.9")
	if got := total(admitted); got != burst {
		t.Errorf("admitted %d in total (per daemon %v), want exactly the burst, %d", got, admitted, burst)
	}
	if got := total(refused); got != 90-burst {
		t.Errorf("refused %d (per daemon %v), want %d", got, refused, 90-burst)
	}
	t.Logf("burst %d: admitted per daemon %v, refused %v", burst, admitted, refused)
	if addr := b.masterOf(bucketKey("run:ip:203.0.113.9")); !exists(t, addr, bucketKey("run:ip:203.0.113.9")) {
		t.Errorf("the bucket is not on %s, the master of its slot", addr)
	}

	// An override of the whole run:ip scope, set through daemon 0.
	const capacity = 7
	r := f.do(f.ds[0], http.MethodPost, "/api/dev/rate-limits/config", map[string]any{"target": "run:ip", "capacity": capacity, "window_seconds": 3600})
	if r.status != http.StatusOK && r.status != http.StatusCreated {
		t.Fatalf("set override: %d %s", r.status, r.body)
	}
	for i, d := range f.ds {
		f.waitUntil(5*time.Second, fmt.Sprintf("daemon %d applies the override", i), func() bool {
			return f.runLimit(d, fmt.Sprintf("198.51.100.%d", i)) == capacity
		})
	}
	admitted, _ = f.burst(60, "203.0.113.10")
	if got := total(admitted); got != capacity {
		t.Errorf("under the override: admitted %d in total (per daemon %v), want exactly %d", got, admitted, capacity)
	}
}

// runLimit sends one POST /run from ip to d and returns its RateLimit-Limit.
func (f *fleet) runLimit(d *daemontest.Daemon, ip string) int {
	f.t.Helper()
	r := f.do(d, http.MethodPost, "/run", map[string]any{"type": "ping"}, "CF-Connecting-IP", ip)
	n, _ := strconv.Atoi(r.header.Get("RateLimit-Limit"))
	return n
}

// rlTestLimit sends one GET /api/dev/rl-test from ip to d and returns its
// RateLimit-Limit (0 when refused).
func (f *fleet) rlTestLimit(d *daemontest.Daemon, ip string) (int, error) {
	r, err := f.try(d, http.MethodGet, "/api/dev/rl-test", nil, "CF-Connecting-IP", ip)
	if err != nil {
		return 0, err
	}
	n, _ := strconv.Atoi(r.header.Get("RateLimit-Limit"))
	return n, nil
}

// testOverridesPropagate: an override set or removed through one daemon
// changes the decisions of the others within a second (DESIGN §3). Each
// probe comes from a fresh IP so that probing spends no one's tokens.
func testOverridesPropagate(t *testing.T, b *backend) {
	f := startFleet(t, b, 3, "WORKER_CONCURRENCY=0")
	for i, d := range f.ds {
		if n, err := f.rlTestLimit(d, "192.0.2.1"); err != nil || n != 3 {
			t.Fatalf("daemon %d: rl-test limit %d, %v; want the default, 3", i, n, err)
		}
	}
	steps := []struct {
		name string
		via  int
		req  func(*daemontest.Daemon) reply
		want int
	}{
		{"set", 0, func(d *daemontest.Daemon) reply {
			return f.do(d, http.MethodPost, "/api/dev/rate-limits/config", map[string]any{"target": "rl-test", "capacity": 50, "window_seconds": 60})
		}, 50},
		{"change", 2, func(d *daemontest.Daemon) reply {
			return f.do(d, http.MethodPost, "/api/dev/rate-limits/config", map[string]any{"target": "rl-test", "capacity": 40, "window_seconds": 60})
		}, 40},
		{"delete", 1, func(d *daemontest.Daemon) reply {
			return f.do(d, http.MethodDelete, "/api/dev/rate-limits/config?target=rl-test", nil)
		}, 3},
	}
	for si, st := range steps {
		if r := st.req(f.ds[st.via]); r.status >= 300 {
			t.Fatalf("%s through daemon %d: %d %s", st.name, st.via, r.status, r.body)
		}
		sent := time.Now()
		var wg sync.WaitGroup
		took := make([]time.Duration, len(f.ds))
		for i, d := range f.ds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for probe := 0; ; probe++ {
					n, err := f.rlTestLimit(d, fmt.Sprintf("10.%d.%d.%d", 3*si+i, probe/256%256, probe%256))
					if err == nil && n == st.want {
						took[i] = time.Since(sent)
						return
					}
					if time.Since(sent) > 5*time.Second {
						took[i] = -1
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
		wg.Wait()
		for i, d := range took {
			if d < 0 || d > time.Second {
				t.Errorf("%s through daemon %d: daemon %d applied it after %v, want within 1s (-1: not within 5s)", st.name, st.via, i, d)
			}
		}
		t.Logf("%s through daemon %d: seen by the daemons after %v", st.name, st.via, took)
	}
}

// exists reports whether key is on the server at addr (asked directly, so
// a cluster node answers for itself, without redirection).
func exists(t *testing.T, addr, key string) bool {
	t.Helper()
	n, err := redistest.Do(addr, "EXISTS", key)
	if err != nil {
		t.Fatalf("EXISTS %s on %s: %v", key, addr, err)
	}
	return n == "1"
}
