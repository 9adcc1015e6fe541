package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refrakt/refrakt/bench/loadgen"
	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/daemon"
)

const benchToken = "bench-developer-token-0123456789"

// benchDaemonConfig is the daemon as `refrakt serve` runs it by default
// (memory backend, every middleware, metrics on), on a loopback port, with
// a known developer token.
func benchDaemonConfig() config.Config {
	cfg := config.Default()
	cfg.Addr = "127.0.0.1:0"
	cfg.DeveloperToken = benchToken
	return cfg
}

// liftRLTest sets an override on rl-test so large that the benchmark
// measures admitted requests (headers, handler, body), not 429s.
func liftRLTest(tb testing.TB, h http.Handler) {
	tb.Helper()
	// benchCapacity per 1000 s: a token a microsecond, the most a bucket
	// refills exactly, and a burst no benchmark spends.
	body := fmt.Sprintf(`{"target":"rl-test","capacity":%d,"window_seconds":1000}`, benchCapacity)
	req := httptest.NewRequest("POST", "/api/dev/rate-limits/config", strings.NewReader(body))
	req.RemoteAddr = "127.0.0.1:1"
	req.Header.Set("Authorization", "Bearer "+benchToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code/100 != 2 {
		tb.Fatalf("set override: %d %s", rec.Code, rec.Body)
	}
}

// reuseRecorder is a ResponseWriter that keeps its header map and buffer
// between requests, so the in-process benchmark measures the handler, not
// the recorder.
type reuseRecorder struct {
	h    http.Header
	code int
	buf  bytes.Buffer
}

func (w *reuseRecorder) Header() http.Header         { return w.h }
func (w *reuseRecorder) WriteHeader(c int)           { w.code = c }
func (w *reuseRecorder) Write(b []byte) (int, error) { return w.buf.Write(b) }
func (w *reuseRecorder) reset() {
	clear(w.h)
	w.code = 0
	w.buf.Reset()
}

// BenchmarkHTTPHandler calls the handlers in process, without sockets: the
// bare baseline and GET /api/dev/rl-test through every middleware of the
// daemon (recovery, metrics, in-flight cap, body limit, routing, auth,
// identity, the memory-store limiter with penalties and bans, RateLimit
// headers, JSON). It shows what the middleware costs per request.
func BenchmarkHTTPHandler(b *testing.B) {
	srv, err := daemon.NewServer(daemon.Deps{Config: benchDaemonConfig()})
	if err != nil {
		b.Fatal(err)
	}
	liftRLTest(b, srv)
	impls := []struct {
		name string
		h    http.Handler
		path string
	}{
		{"bare", loadgen.BareHandler(), "/"},
		{"refrakt", srv, "/api/dev/rl-test"},
	}
	for _, impl := range impls {
		b.Run("impl="+impl.name+"/serial", func(b *testing.B) {
			req := httptest.NewRequest("GET", impl.path, nil)
			req.RemoteAddr = "127.0.0.1:40000"
			req.Header.Set("Authorization", "Bearer "+benchToken)
			w := &reuseRecorder{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				impl.h.ServeHTTP(w, req)
				if w.code != http.StatusOK {
					b.Fatalf("status %d: %s", w.code, w.buf.String())
				}
			}
		})
		b.Run("impl="+impl.name+"/parallel", func(b *testing.B) {
			var seq atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				n := seq.Add(1)
				req := httptest.NewRequest("GET", impl.path, nil)
				req.RemoteAddr = fmt.Sprintf("127.0.0.1:%d", 40000+n)
				req.Header.Set("Authorization", "Bearer "+benchToken)
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.1.%d.%d", n>>8&255, n&255))
				w := &reuseRecorder{h: http.Header{}}
				for pb.Next() {
					w.reset()
					impl.h.ServeHTTP(w, req)
					if w.code != http.StatusOK {
						b.Errorf("status %d: %s", w.code, w.buf.String())
						return
					}
				}
			})
		})
	}
}

// startDaemon runs the real daemon (daemon.Run, as `refrakt serve` does)
// in this process on a loopback port and returns its address.
func startDaemon(b *testing.B, cfg config.Config) string {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, cfg, daemon.RunOptions{
			Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
			Getenv:   func(string) string { return "" },
			OnListen: func(a string) { addrc <- a },
		})
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		b.Fatalf("daemon: %v", err)
	case <-time.After(10 * time.Second):
		b.Fatal("daemon did not listen within 10s")
	}
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("daemon: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("daemon not ready within 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return addr
}

// startBare serves the bare baseline on a loopback port.
func startBare(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := loadgen.BareServer()
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// BenchmarkHTTPLoopback is the HTTP goal as a Go benchmark: b.N requests
// over 64 keep-alive loopback connections, to the bare net/http baseline and
// to GET /api/dev/rl-test on the real daemon (memory store, every
// middleware), one X-Forwarded-For client per connection. It reports req/s
// and p50/p99 latency. The generator runs in the same process, as the
// server shares the machine with wrk or loadgen in scripts/loadtest.sh.
func BenchmarkHTTPLoopback(b *testing.B) {
	const conns = 64
	daemonAddr := startDaemon(b, benchDaemonConfig())
	bareAddr := startBare(b)
	lift, err := http.NewRequest("POST", "http://"+daemonAddr+"/api/dev/rate-limits/config",
		strings.NewReader(fmt.Sprintf(`{"target":"rl-test","capacity":%d,"window_seconds":1000}`, benchCapacity)))
	if err != nil {
		b.Fatal(err)
	}
	lift.Header.Set("Authorization", "Bearer "+benchToken)
	resp, err := http.DefaultClient.Do(lift)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b.Fatalf("set override: %d", resp.StatusCode)
	}
	targets := []struct {
		name string
		t    loadgen.Target
	}{
		{"bare", loadgen.Target{URL: "http://" + bareAddr + "/"}},
		{"refrakt", loadgen.Target{
			URL:           "http://" + daemonAddr + "/api/dev/rl-test",
			Header:        []string{"Authorization: Bearer " + benchToken},
			PerConnHeader: func(i int) string { return fmt.Sprintf("X-Forwarded-For: 10.2.0.%d", i+1) },
		}},
	}
	for _, tg := range targets {
		b.Run(fmt.Sprintf("impl=%s/conns=%d", tg.name, conns), func(b *testing.B) {
			res, err := loadgen.Run(tg.t, loadgen.Options{Conns: conns, Requests: max(b.N, conns), Timeout: 2 * time.Minute})
			if err != nil {
				b.Fatal(err)
			}
			if res.Errors > 0 || res.Codes[200] != res.Requests {
				b.Fatalf("not all OK: %v", res)
			}
			b.ReportMetric(res.ReqPerSec(), "req/s")
			b.ReportMetric(float64(res.P50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(res.P99.Microseconds())/1000, "p99-ms")
		})
	}
}
