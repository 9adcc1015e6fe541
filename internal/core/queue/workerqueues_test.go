package queue_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// startsRecorder is a service on be whose "rec" jobs record their payload
// (the queue's name) in the order they start.
type startsRecorder struct {
	mu     sync.Mutex
	starts []string
}

func (r *startsRecorder) registry() *queue.Registry {
	reg := queue.NewRegistry()
	_ = reg.Register("ping", queue.Handler{Run: func(context.Context, json.RawMessage) (json.RawMessage, error) { return nil, nil }})
	_ = reg.Register("rec", queue.Handler{Run: func(_ context.Context, p json.RawMessage) (json.RawMessage, error) {
		var q string
		_ = json.Unmarshal(p, &q)
		r.mu.Lock()
		r.starts = append(r.starts, q)
		r.mu.Unlock()
		return nil, nil
	}})
	return reg
}

func (r *startsRecorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.starts)
}

// backlog enqueues n "rec" jobs in queue q, their payload q.
func backlog(t *testing.T, s *queue.Service, q string, n int) []*queue.Job {
	t.Helper()
	reqs := make([]queue.EnqueueRequest, n)
	for i := range reqs {
		reqs[i] = queue.EnqueueRequest{Type: "rec", Queue: q, Payload: json.RawMessage(`"` + q + `"`)}
	}
	js, err := s.EnqueueBatch(context.Background(), reqs, queue.SourceAPI)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestWorkerQueuesStrict (wq40): with WORKER_QUEUE_ORDER=strict, one
// worker and backlogs in low (the older) and critical, every critical job
// starts before any low one.
func TestWorkerQueuesStrict(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		var r startsRecorder
		cfg := fast
		cfg.Concurrency = 1
		cfg.WorkerQueues = []queue.WorkerQueue{{Name: "critical", Weight: 1}, {Name: "default", Weight: 1}, {Name: "low", Weight: 1}}
		cfg.StrictOrder = true
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: r.registry()}, cfg)
		low := backlog(t, s, "low", 15)
		backlog(t, s, "critical", 15)
		startPool(t, s)
		waitDone(t, s, low[len(low)-1])
		eventually(t, "30 starts", func() bool { return len(r.got()) == 30 })
		want := slices.Concat(slices.Repeat([]string{"critical"}, 15), slices.Repeat([]string{"low"}, 15))
		diff(t, "queues in the order their jobs started", want, r.got())
	})
}

// TestWorkerQueuesSelection (wq40): a pool with WORKER_QUEUES=a runs a's
// jobs and leaves b's pending, however many fetches it makes.
func TestWorkerQueuesSelection(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		var r startsRecorder
		cfg := fast
		cfg.WorkerQueues = []queue.WorkerQueue{{Name: "a", Weight: 1}}
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: r.registry()}, cfg)
		b := backlog(t, s, "b", 3)
		startPool(t, s)
		for range 5 { // a's jobs, one after another: five rounds of fetches
			a := backlog(t, s, "a", 2)
			for _, j := range a {
				diff(t, "a's job", queue.StatusSucceeded, waitDone(t, s, j).Status)
			}
		}
		for _, j := range b {
			diff(t, "b's job", queue.StatusPending, mustGet(t, s, j.ID).Status)
		}
		st, err := s.Broker().Stats(context.Background(), "b")
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "b's jobs started", int64(0), st.Started)
		diff(t, "runs", slices.Repeat([]string{"a"}, 10), r.got())
	})
}

// TestWorkerQueuesWeighted (wq40): WORKER_QUEUES=a=9,b=1, weighted, one
// worker fetching one job at a time (prefetch off), large backlogs in
// both: of the first 200 starts, a's share is between 0.75 and 0.98 and b
// has some. Each start is a's with probability 0.9, independently, so a's
// count X is Binomial(200, 0.9) (mean 180, sd 4.2): P(X < 150) ≈ 3e-10,
// P(X > 196) ≈ 1.5e-6, P(b none) = 0.9^200 ≈ 7e-10 (exact sums). The
// random source is seeded besides, so a run draws the same orders each
// time, whatever the timing (one draw per fetch, one job per fetch).
func TestWorkerQueuesWeighted(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		var r startsRecorder
		cfg := fast
		cfg.Concurrency = 1
		cfg.Prefetch = -1
		cfg.WorkerQueues = []queue.WorkerQueue{{Name: "a", Weight: 9}, {Name: "b", Weight: 1}}
		s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: r.registry(), Rand: rand.New(rand.NewPCG(40, 9))}, cfg)
		backlog(t, s, "b", 250)
		backlog(t, s, "a", 250)
		startPool(t, s)
		eventually(t, "200 starts", func() bool { return len(r.got()) >= 200 })
		first := r.got()[:200]
		a := 0
		for _, q := range first {
			if q == "a" {
				a++
			}
		}
		if share := float64(a) / 200; share < 0.75 || share > 0.98 {
			t.Errorf("a's share of the first 200 starts = %.3f (%d); want 0.75 to 0.98", share, a)
		}
		if a == 200 {
			t.Errorf("b never started among the first 200")
		}
	})
}
