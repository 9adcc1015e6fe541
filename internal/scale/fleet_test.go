package scale_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/daemontest"
)

// baseEnv is what every daemon of these tests runs with: fast ticks and
// gauges, so that the tests wait little.
var baseEnv = []string{
	"TICK_INTERVAL=0.05",
	"PROMETHEUS_QUEUE_POLL_INTERVAL=0.1",
	"SHUTDOWN_TIMEOUT=2s",
}

// fleet is n daemons on one backend.
type fleet struct {
	t  *testing.T
	b  *backend
	ds []*daemontest.Daemon
}

// client is shared by every request of the tests; it keeps enough idle
// connections for the concurrent bursts.
var client = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64},
}

// startFleet empties the backend and starts n daemons on it with baseEnv
// plus env (later values win), waiting until each is ready.
func startFleet(t *testing.T, b *backend, n int, env ...string) *fleet {
	t.Helper()
	b.flush(t)
	f := &fleet{t: t, b: b}
	full := append(append([]string{"QUEUE_URL=" + b.url}, baseEnv...), env...)
	for range n {
		d := daemontest.Start(t, full)
		d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
		checkBackendKind(t, b, d)
		f.ds = append(f.ds, d)
	}
	// Runs before the daemons are killed (cleanups run last first).
	t.Cleanup(func() {
		for i, d := range f.ds {
			if log := d.Log(); strings.Contains(log, "DATA RACE") || strings.Contains(log, "panic:") {
				t.Errorf("daemon %d raced or panicked:\n%s", i, log)
			}
		}
	})
	return f
}

// reply is one HTTP answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request to daemon d with the developer token; hdr holds
// header name/value pairs. A transport error fails the test.
func (f *fleet) do(d *daemontest.Daemon, method, path string, body any, hdr ...string) reply {
	f.t.Helper()
	r, err := f.try(d, method, path, body, hdr...)
	if err != nil {
		f.t.Fatalf("%s %s on %s: %v", method, path, d.Addr, err)
	}
	return r
}

// try is do that returns a transport error instead of failing, for
// requests sent from other goroutines.
func (f *fleet) try(d *daemontest.Daemon, method, path string, body any, hdr ...string) (reply, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return reply{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, d.URL+path, rd)
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Authorization", "Bearer "+d.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, err
}

// decode reads r's JSON body into v, failing the test when r is not want.
func (f *fleet) decode(r reply, want int, v any) {
	f.t.Helper()
	if r.status != want {
		f.t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		f.t.Fatalf("decode %s: %v", r.body, err)
	}
}

// enqueue enqueues one job through daemon d's developer API.
func (f *fleet) enqueue(d *daemontest.Daemon, req queue.EnqueueRequest) *queue.Job {
	f.t.Helper()
	var j queue.Job
	f.decode(f.do(d, http.MethodPost, "/api/dev/jobs/enqueue", req), http.StatusAccepted, &j)
	return &j
}

// job reads one job through daemon d.
func (f *fleet) job(d *daemontest.Daemon, id string) *queue.Job {
	f.t.Helper()
	var j queue.Job
	f.decode(f.do(d, http.MethodGet, "/run/"+id, nil), http.StatusOK, &j)
	return &j
}

// stats reads every queue's gauges and totals through daemon d, by queue.
func (f *fleet) stats(d *daemontest.Daemon) map[string]queue.Stats {
	f.t.Helper()
	var doc struct {
		Queues []queue.Stats `json:"queues"`
	}
	f.decode(f.do(d, http.MethodGet, "/api/obs/jobs", nil), http.StatusOK, &doc)
	out := map[string]queue.Stats{}
	for _, s := range doc.Queues {
		out[s.Queue] = s
	}
	return out
}

// waitUntil polls cond every 20ms until it holds, or fails the test after
// within (a generous bound that proves progress, not speed).
func (f *fleet) waitUntil(within time.Duration, what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metrics scrapes daemon d's /metrics.
func (f *fleet) metrics(d *daemontest.Daemon) map[string]*familyValues {
	f.t.Helper()
	r := f.do(d, http.MethodGet, "/metrics", nil)
	if r.status != http.StatusOK {
		f.t.Fatalf("GET /metrics: %d %s", r.status, r.body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		f.t.Fatalf("parse /metrics: %v", err)
	}
	out := map[string]*familyValues{}
	for name, fam := range fams {
		fv := &familyValues{}
		for _, m := range fam.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			v := 0.0
			switch {
			case m.Counter != nil:
				v = m.GetCounter().GetValue()
			case m.Gauge != nil:
				v = m.GetGauge().GetValue()
			default:
				continue
			}
			fv.samples = append(fv.samples, sample{labels, v})
		}
		out[name] = fv
	}
	return out
}

// familyValues are the counter or gauge samples of one metric family.
type familyValues struct{ samples []sample }

type sample struct {
	labels map[string]string
	value  float64
}

// sum adds the samples whose labels include match (name=value pairs).
func (fv *familyValues) sum(match ...string) float64 {
	if fv == nil {
		return 0
	}
	total := 0.0
next:
	for _, s := range fv.samples {
		for i := 0; i+1 < len(match); i += 2 {
			if s.labels[match[i]] != match[i+1] {
				continue next
			}
		}
		total += s.value
	}
	return total
}

// transitions returns, per daemon, its count of from→to job transitions.
func (f *fleet) transitions(from, to string) []int {
	f.t.Helper()
	out := make([]int, len(f.ds))
	for i, d := range f.ds {
		out[i] = int(f.metrics(d)["refrakt_job_status_transitions_total"].sum("from_status", from, "to_status", to))
	}
	return out
}

func total(ns []int) int {
	s := 0
	for _, n := range ns {
		s += n
	}
	return s
}

// queueKey is the Redis key of queue q's pending list (default prefix).
func queueKey(q string) string { return "refrakt:q:{" + q + "}:pending" }

// bucketKey is the Redis key of a rate-limit bucket (default prefix).
func bucketKey(key string) string { return "refrakt:rl:{" + key + "}" }
