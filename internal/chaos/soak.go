package chaos

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// SoakOptions shape one soak.
type SoakOptions struct {
	// Duration is how long the steady load runs after the warm-up.
	Duration time.Duration
	// Clients is how many concurrent clients send the mixed load.
	Clients int
}

// Soak bounds: growth from the start sample to the end sample beyond these
// fails the soak. Both samples are taken with the load stopped, idle
// client connections closed and a short settle, so they compare like with
// like: what remains is what the daemon kept.
const (
	MaxGoroutineGrowth = 25       // goroutines
	MaxFDGrowth        = 10       // open descriptors (sockets included)
	MaxHeapGrowth      = 16 << 20 // bytes of heap in use, plus 50 % of the start
)

// Sample is the daemon's resource use at one moment, read from /metrics.
type Sample struct {
	Goroutines int
	HeapInuse  int64
	OpenFDs    int
}

// SoakReport is what a soak measured.
type SoakReport struct {
	Duration                 time.Duration
	Requests                 int64
	ByStatus                 map[int]int64
	Errors                   int64 // transport errors
	Start, End, Peak         Sample
	RedisStartKB, RedisEndKB int64
	Server5xx                int64 // 5xx other than 503 (admission, in-flight cap)
}

// Failures lists every bound the soak broke; empty means it passed.
func (r SoakReport) Failures() []string {
	var f []string
	if g := r.End.Goroutines - r.Start.Goroutines; g > MaxGoroutineGrowth {
		f = append(f, fmt.Sprintf("goroutines grew by %d (bound %d)", g, MaxGoroutineGrowth))
	}
	if g := r.End.OpenFDs - r.Start.OpenFDs; g > MaxFDGrowth {
		f = append(f, fmt.Sprintf("open descriptors grew by %d (bound %d)", g, MaxFDGrowth))
	}
	if g := r.End.HeapInuse - r.Start.HeapInuse; g > MaxHeapGrowth+r.Start.HeapInuse/2 {
		f = append(f, fmt.Sprintf("heap in use grew by %d KiB (bound %d KiB)", g>>10, (MaxHeapGrowth+r.Start.HeapInuse/2)>>10))
	}
	if r.Server5xx > 0 {
		f = append(f, fmt.Sprintf("%d server errors under steady load", r.Server5xx))
	}
	if r.Requests == 0 || r.ByStatus[200]+r.ByStatus[202] == 0 {
		f = append(f, "no request succeeded: the load measured nothing")
	}
	return f
}

// Line is the one-line summary scripts/soak.sh prints.
func (r SoakReport) Line() string {
	verdict := "OK"
	if f := r.Failures(); len(f) > 0 {
		verdict = "FAIL: " + strings.Join(f, "; ")
	}
	return fmt.Sprintf("soak: %s, %d requests (%s), %d transport errors; goroutines %d -> %d (peak %d), heap in use %.1f -> %.1f MiB (peak %.1f), open fds %d -> %d (peak %d), redis used memory %d -> %d KiB: %s",
		r.Duration.Round(time.Second), r.Requests, statusText(r.ByStatus), r.Errors,
		r.Start.Goroutines, r.End.Goroutines, r.Peak.Goroutines,
		float64(r.Start.HeapInuse)/(1<<20), float64(r.End.HeapInuse)/(1<<20), float64(r.Peak.HeapInuse)/(1<<20),
		r.Start.OpenFDs, r.End.OpenFDs, r.Peak.OpenFDs, r.RedisStartKB, r.RedisEndKB, verdict)
}

func statusText(m map[int]int64) string {
	var parts []string
	for _, code := range slices.Sorted(maps.Keys(m)) {
		if m[code] > 0 {
			parts = append(parts, fmt.Sprintf("%d: %d", code, m[code]))
		}
	}
	return strings.Join(parts, ", ")
}

// RunSoak runs one daemon on a real Redis under steady mixed load: public
// job submissions (ping, echo, short sleeps, failing jobs) from 1,000
// client addresses (X-Forwarded-For from loopback, a trusted proxy), job
// reads, /assistant, tenant-meta, the limiter probe, obs snapshots,
// scrapes and client mistakes.
func RunSoak(tb testing.TB, o SoakOptions) SoakReport {
	tb.Helper()
	red := redistest.Start(tb)
	d := daemontest.Start(tb, []string{
		"QUEUE_URL=" + red.URL(),
		"WORKER_CONCURRENCY=4",
		"TICK_INTERVAL=200ms",
		"PROMETHEUS_QUEUE_POLL_INTERVAL=1s",
		// Heap in use is the live heap plus the garbage of the cycle under
		// way: up to the live heap again with GOGC's default, up to the
		// daemon's 32 MiB of GC headroom without GOGC set (gcheadroom.go).
		// The bounds are the default's, so the soak sets it.
		"GOGC=100",
	})
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	tr := &http.Transport{MaxIdleConnsPerHost: o.Clients}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	r := SoakReport{ByStatus: map[int]int64{}}

	run := func(d2 time.Duration, count bool) {
		var mu sync.Mutex
		var requests, errs, server5xx atomic.Int64
		ctx, cancel := context.WithTimeout(context.Background(), d2)
		defer cancel()
		var wg sync.WaitGroup
		for c := range o.Clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(c), 7))
				var ids []string
				for n := 0; ctx.Err() == nil; n++ {
					status, id, err := soakRequest(ctx, client, d, rng, ids)
					if ctx.Err() != nil {
						return
					}
					requests.Add(1)
					if err != nil {
						errs.Add(1)
						continue
					}
					if id != "" {
						// The latest 50: older jobs leave the history
						// (JOB_HISTORY), and reading them would measure
						// the not-found path, not the job read.
						if len(ids) == 50 {
							ids = ids[1:]
						}
						ids = append(ids, id)
					}
					if status >= 500 && status != 503 && status != 504 {
						server5xx.Add(1)
					}
					mu.Lock()
					r.ByStatus[status]++
					mu.Unlock()
					time.Sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond)
				}
			}()
		}
		// Sample the peak while the load runs.
		for ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
				if s, err := sample(client, d.URL); err == nil {
					r.Peak.Goroutines = max(r.Peak.Goroutines, s.Goroutines)
					r.Peak.HeapInuse = max(r.Peak.HeapInuse, s.HeapInuse)
					r.Peak.OpenFDs = max(r.Peak.OpenFDs, s.OpenFDs)
				}
			}
		}
		wg.Wait()
		if count {
			r.Requests, r.Errors, r.Server5xx = requests.Load(), errs.Load(), server5xx.Load()
		}
	}
	quiet := func() Sample {
		tb.Helper()
		tr.CloseIdleConnections()
		time.Sleep(1500 * time.Millisecond) // the server notices the closes; sleeps finish
		s, err := sample(client, d.URL)
		if err != nil {
			tb.Fatalf("soak: sample: %v\n%s", err, d.Log())
		}
		tr.CloseIdleConnections()
		return s
	}

	// Warm up (pools, script caches, the first buckets), then the start.
	run(min(5*time.Second, o.Duration/5+time.Second), false)
	r.ByStatus = map[int]int64{}
	r.Start = quiet()
	r.RedisStartKB = redisUsedKB(red.Addr())
	begin := time.Now()
	run(o.Duration, true)
	r.Duration = time.Since(begin)
	r.End = quiet()
	r.RedisEndKB = redisUsedKB(red.Addr())
	if r.Server5xx > 0 {
		// The report counts them; the daemon's log says what they were.
		for l := range strings.SplitSeq(d.Log(), "\n") {
			if strings.Contains(l, "level=ERROR") || strings.Contains(l, `"level":"ERROR"`) || strings.Contains(l, "panic") {
				tb.Log("daemon: " + l)
			}
		}
	}
	return r
}

// soakRequest sends one request of the mix; id is a job id it created.
func soakRequest(ctx context.Context, client *http.Client, d *daemontest.Daemon, rng *rand.Rand, ids []string) (int, string, error) {
	ip := fmt.Sprintf("198.18.%d.%d", rng.IntN(4), rng.IntN(250))
	var method, path, body, token string
	switch k := rng.IntN(100); {
	case k < 30:
		method, path = "POST", "/run"
		switch rng.IntN(4) {
		case 0:
			body = `{"type":"ping"}`
		case 1:
			body = fmt.Sprintf(`{"type":"echo","payload":{"n":%d}}`, rng.IntN(1000))
		case 2:
			body = fmt.Sprintf(`{"type":"sleep","payload":{"ms":%d}}`, rng.IntN(50))
		default:
			body = `{"type":"fail","max_retries":1}`
		}
	case k < 50 && len(ids) > 0:
		method, path = "GET", "/run/"+ids[rng.IntN(len(ids))]
	case k < 55:
		method, path, body = "POST", "/assistant", `{"type":"ping","timeout_ms":2000}`
	case k < 70:
		method, path = "GET", "/api/public/tenant-meta?tenant=t"+strconv.Itoa(rng.IntN(20))
	case k < 75:
		// A few addresses, so that their buckets run dry and strikes and
		// bans build up as they do for a client over its limit.
		method, path, token = "GET", "/api/dev/rl-test", d.Token
		ip = fmt.Sprintf("198.19.0.%d", rng.IntN(4))
	case k < 82:
		method, path, token = "GET", "/api/obs/snapshot", d.Token
	case k < 86:
		method, path = "GET", "/metrics"
	case k < 90:
		method, path, token = "GET", "/api/dev/jobs?limit=20", d.Token
	default:
		method, path, body = "POST", "/run", []string{`{`, `{"type":"nope"}`, `[]`, `{"type":"sleep","payload":{"ms":-1}}`}[rng.IntN(4)]
	}
	req, err := http.NewRequestWithContext(ctx, method, d.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("X-Forwarded-For", ip)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	id := ""
	if resp.StatusCode == http.StatusAccepted {
		if _, rest, ok := strings.Cut(string(b), `"id":"`); ok {
			id, _, _ = strings.Cut(rest, `"`)
		}
	}
	return resp.StatusCode, id, nil
}

// sample reads go_goroutines, go_memstats_heap_inuse_bytes and
// process_open_fds from the daemon's /metrics.
func sample(client *http.Client, base string) (Sample, error) {
	var s Sample
	found := 0
	err := scrape(client, base, func(series string, v float64) {
		switch series {
		case "go_goroutines":
			s.Goroutines, found = int(v), found+1
		case "go_memstats_heap_inuse_bytes":
			s.HeapInuse, found = int64(v), found+1
		case "process_open_fds":
			s.OpenFDs, found = int(v), found+1
		}
	})
	if err == nil && found != 3 {
		err = fmt.Errorf("/metrics lacks go_goroutines, go_memstats_heap_inuse_bytes or process_open_fds")
	}
	return s, err
}

// scrape reads the daemon's /metrics and calls each with every sample:
// its series (name and labels, as written) and value.
func scrape(client *http.Client, base string, each func(series string, v float64)) error {
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		series, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			each(series, v)
		}
	}
	return sc.Err()
}

// redisUsedKB is Redis's used_memory in KiB (0 when it cannot be read).
func redisUsedKB(addr string) int64 {
	info, err := redistest.Do(addr, "INFO", "memory")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n >> 10
		}
	}
	return 0
}
