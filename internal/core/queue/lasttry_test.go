package queue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// runBesideBacklog runs, on workers workers, a backlog of backlog jobs of
// queue b (retries left, 0.5 ms each), then the jobs of queue a made by
// aJobs once b's are being worked with jobs held ready, waits for a's, and
// returns the payloads in the order they ran.
func runBesideBacklog(t *testing.T, be backend, workers, backlog int, aJobs []queue.EnqueueRequest) []string {
	t.Helper()
	var mu sync.Mutex
	var order []string
	reg := queue.NewRegistry()
	_ = reg.Register("ping", queue.Handler{Run: func(ctx context.Context, p json.RawMessage) (json.RawMessage, error) { return nil, nil }})
	_ = reg.Register("w", queue.Handler{Run: func(ctx context.Context, p json.RawMessage) (json.RawMessage, error) {
		mu.Lock()
		order = append(order, string(p))
		mu.Unlock()
		time.Sleep(500 * time.Microsecond)
		return nil, nil
	}})
	cfg := fast
	cfg.Concurrency = workers
	cfg.Lease = 5 * time.Second
	s := queue.NewService(queue.Deps{Broker: be.new(t, nil), Registry: reg}, cfg)
	startPool(t, s)
	warmUp(t, s)
	var reqs []queue.EnqueueRequest
	for i := range backlog {
		reqs = append(reqs, queue.EnqueueRequest{Type: "w", Queue: "b", Payload: json.RawMessage(fmt.Sprintf(`"b%d"`, i))})
	}
	if _, err := s.EnqueueBatch(context.Background(), reqs, queue.SourceAPI); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // b's backlog is being worked, with jobs held ready
	js, err := s.EnqueueBatch(context.Background(), aJobs, queue.SourceAPI)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range js {
		waitDone(t, s, j)
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]string(nil), order...)
}

// TestLastTryJobNotStarvedByOtherQueues: a queue whose head job is on its
// last try, next to a queue with a backlog of fast jobs that have retries
// left: with the pool holding jobs ready, the last-try job waited for the
// whole other backlog (it ran 1000th of 1,001: review ver31 HIGH-1), as no
// worker counted as free while jobs were held; the pool now stops holding
// jobs ahead until a worker is free, and fetches that queue first.
func TestLastTryJobNotStarvedByOtherQueues(t *testing.T) {
	for _, maxRetries := range []int{0, 1} {
		t.Run(fmt.Sprintf("max_retries=%d", maxRetries), func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, be backend) {
				order := runBesideBacklog(t, be, 1, 1000, []queue.EnqueueRequest{
					{Type: "w", Queue: "a", Payload: json.RawMessage(`"A"`), MaxRetries: intp(maxRetries)},
				})
				pos := slices.Index(order, `"A"`)
				t.Logf("A ran %d-th of %d", pos, len(order))
				if pos > 100 {
					t.Errorf("the last-try job of queue a waited for %d jobs of queue b", pos)
				}
			})
		})
	}
}

// TestLastTryQueueTakesItsTurn: a queue of 40 jobs with no retry left next
// to a busy queue of 4,000 with retries, 4 workers: the 40 take their turn
// with the other queue's jobs (about one for one, as before jobs on their
// last try were kept from being held ready), not one per full hold of the
// other queue's jobs (40 jobs took until run 569-640: review ver31b).
func TestLastTryQueueTakesItsTurn(t *testing.T) {
	for _, maxRetries := range []int{0, 1} {
		t.Run(fmt.Sprintf("max_retries=%d", maxRetries), func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, be backend) {
				var aJobs []queue.EnqueueRequest
				for i := range 40 {
					aJobs = append(aJobs, queue.EnqueueRequest{Type: "w", Queue: "a", Payload: json.RawMessage(fmt.Sprintf(`"A%d"`, i)), MaxRetries: intp(maxRetries)})
				}
				order := runBesideBacklog(t, be, 4, 4000, aJobs)
				last := -1
				for i, p := range order {
					if strings.HasPrefix(p, `"A`) {
						last = i
					}
				}
				t.Logf("a's 40 jobs done by run %d", last)
				if last > 400 {
					t.Errorf("a's 40 jobs took until run %d: b ran %d jobs meanwhile", last, last-39)
				}
			})
		})
	}
}

// gated is a broker whose Finish waits until open is closed: an outcome
// writer fallen behind its workers.
type gated struct {
	queue.Broker
	open    chan struct{}
	entered atomic.Int64 // Finish calls made
}

func (g *gated) Finish(ctx context.Context, outcomes []queue.Outcome) ([]queue.Status, error) {
	g.entered.Add(1)
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Broker.Finish(ctx, outcomes)
}

// TestWorkerWaitingForTheWriterIsNotFree: a worker whose outcome waits for
// a writer fallen a whole capacity behind is busy, so a job on its last
// try is not fetched for it, to be held (a kill then would make it dead
// unrun): it was counted free before handing its outcome over, and such a
// job was taken, then handed back unstarted (review ver31 NIT-2).
func TestWorkerWaitingForTheWriterIsNotFree(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		var ran atomic.Int64
		reg := queue.NewRegistry()
		_ = reg.Register("w", queue.Handler{Run: func(ctx context.Context, p json.RawMessage) (json.RawMessage, error) {
			ran.Add(1)
			return nil, nil
		}})
		cfg := fast
		cfg.Concurrency = 1
		cfg.Prefetch = 1 // room for 2 jobs, and 2 outcomes waiting for the writer
		cfg.Lease = 10 * time.Second
		g := &gated{Broker: be.new(t, nil), open: make(chan struct{})}
		s := queue.NewService(queue.Deps{Broker: g, Registry: reg}, cfg)
		startPool(t, s)
		var once sync.Once
		release := func() { once.Do(func() { close(g.open) }) }
		t.Cleanup(release) // before the pool's shutdown
		// The writer takes the first job's outcome and waits; the next two
		// fill its channel; the worker runs the fourth and waits to hand
		// its outcome over, with no job left to hold.
		enqueue := func(from, to int) []*queue.Job {
			var reqs []queue.EnqueueRequest
			for i := from; i < to; i++ {
				reqs = append(reqs, queue.EnqueueRequest{Type: "w", Payload: json.RawMessage(fmt.Sprintf(`"%d"`, i))})
			}
			js, err := s.EnqueueBatch(context.Background(), reqs, queue.SourceAPI)
			if err != nil {
				t.Fatal(err)
			}
			return js
		}
		js := enqueue(0, 1)
		eventually(t, "the writer waits with the first outcome", func() bool { return g.entered.Load() == 1 })
		js = append(js, enqueue(1, 4)...)
		eventually(t, "the four jobs ran", func() bool { return ran.Load() == 4 })
		time.Sleep(100 * time.Millisecond) // the fourth outcome's hand-over waits
		j := mustEnqueue(t, s, queue.EnqueueRequest{Type: "w", Payload: json.RawMessage(`"last"`), MaxRetries: intp(0)})
		// Taken, it would be held until handed back as not started in
		// time (then pending again): look at it all along.
		for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
			got, err := s.Get(context.Background(), j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != queue.StatusPending {
				t.Fatalf("the last-try job is %s (attempt %d) while the only worker waits for the writer, want pending", got.Status, got.Attempts)
			}
		}
		release()
		for _, j := range append(js, j) {
			waitDone(t, s, j)
		}
	})
}
