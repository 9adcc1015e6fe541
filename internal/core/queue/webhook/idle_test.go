package webhook_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue/webhook"
)

// TestDeliveryKeepsIdleConnsPerHost: 150 deliveries at once to one host,
// twice, with IdleConnsPerHost 150 (WORKER_CONCURRENCY): the second round
// opens no new connection. A total cap of 100 idle connections used to
// drop 50 of them after the first round, and the second opened 50 anew (a
// TLS handshake each on https).
func TestDeliveryKeepsIdleConnsPerHost(t *testing.T) {
	const n = 150
	var opened atomic.Int32
	var arrived sync.WaitGroup
	var mu sync.Mutex
	var gate chan struct{} // closed when a round's n deliveries have arrived
	openGate := func() chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		return gate
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		arrived.Done()
		select { // all n at once, so that n connections are open
		case <-openGate():
		case <-time.After(5 * time.Second):
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := webhook.New(webhook.Options{IdleConnsPerHost: n})
	defer c.CloseIdleConnections()
	h := handler(t, c, srv.URL)
	for round := 1; round <= 2; round++ {
		mu.Lock()
		gate = make(chan struct{})
		mu.Unlock()
		arrived.Add(n)
		before := opened.Load()
		var done sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			done.Add(1)
			go func() {
				defer done.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if _, err := h.RunJob(ctx, job(`{}`)); err != nil {
					errs <- err
				}
			}()
		}
		all := make(chan struct{})
		go func() { arrived.Wait(); close(all) }()
		select {
		case <-all:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: not all %d deliveries arrived within 5s", round, n)
		}
		close(openGate())
		done.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
		if round == 2 {
			if extra := opened.Load() - before; extra != 0 {
				t.Errorf("round 2 opened %d new connections; want the %d of round 1 reused", extra, n)
			}
		}
	}
}
