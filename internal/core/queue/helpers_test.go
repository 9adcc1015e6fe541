package queue_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/membroker"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
	"github.com/refrakt/refrakt/internal/redistest"
)

// backend makes brokers of one kind; a nil clock means the backend's own.
type backend struct {
	name string
	new  func(t *testing.T, c queue.Clock) queue.Broker
}

// backends returns the memory and the redis backend; the redis one shares
// one throwaway server per top-level test, with a fresh prefix per broker.
func backends(top *testing.T) []backend {
	top.Helper()
	var (
		once sync.Once
		rdb  *redis.Client
		n    atomic.Int64
	)
	return []backend{
		{"memory", func(t *testing.T, c queue.Clock) queue.Broker {
			return membroker.New(membroker.Options{Clock: c})
		}},
		{"redis", func(t *testing.T, c queue.Clock) queue.Broker {
			once.Do(func() {
				srv := redistest.Start(top) // lives as long as the top-level test
				rdb = redis.NewClient(&redis.Options{Addr: srv.Addr()})
			})
			return redisbroker.New(rdb, redisbroker.Options{Prefix: fmt.Sprintf("%s%d:", t.Name(), n.Add(1)), Clock: c})
		}},
	}
}

// forEachBackend runs fn as a subtest on each backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, be backend)) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) { fn(t, be) })
	}
}

func diff(t *testing.T, what string, want, got any) {
	t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s (-want +got):\n%s", what, d)
	}
}

// eventually polls cond every 10ms until it holds or 5s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustGet(t *testing.T, s *queue.Service, id string) *queue.Job {
	t.Helper()
	j, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return j
}

func mustEnqueue(t *testing.T, s *queue.Service, req queue.EnqueueRequest) *queue.Job {
	t.Helper()
	j, err := s.Enqueue(context.Background(), req, queue.SourceAPI)
	if err != nil {
		t.Fatalf("Enqueue(%+v): %v", req, err)
	}
	return j
}

// recorder is an Observer that counts what it is told.
type recorder struct {
	mu          sync.Mutex
	enqueued    map[string]int
	transitions map[string]int
	finished    map[string]int
	rejected    map[string]int
	backend     map[string]int
	waited      int
	dead        []string          // "id type: error" of each job reported dead
	deadWhy     []queue.DeadCause // why, in the same order
}

func newRecorder() *recorder {
	return &recorder{enqueued: map[string]int{}, transitions: map[string]int{}, finished: map[string]int{}, rejected: map[string]int{}, backend: map[string]int{}}
}

func (r *recorder) Enqueued(source string) { r.mu.Lock(); r.enqueued[source]++; r.mu.Unlock() }
func (r *recorder) Transition(from, to string) {
	r.mu.Lock()
	r.transitions[from+"→"+to]++
	r.mu.Unlock()
}
func (r *recorder) Waited(string, time.Duration) { r.mu.Lock(); r.waited++; r.mu.Unlock() }
func (r *recorder) Finished(typ, status string, _ time.Duration) {
	r.mu.Lock()
	r.finished[typ+":"+status]++
	r.mu.Unlock()
}
func (r *recorder) AdmissionRejected(q, reason string) {
	r.mu.Lock()
	r.rejected[q+":"+reason]++
	r.mu.Unlock()
}
func (r *recorder) BackendError(op string, _ error) { r.mu.Lock(); r.backend[op]++; r.mu.Unlock() }
func (r *recorder) Dead(j queue.DeadJob, why queue.DeadCause) {
	r.mu.Lock()
	r.dead = append(r.dead, j.ID+" "+j.Type+": "+j.LastError)
	r.deadWhy = append(r.deadWhy, why)
	r.mu.Unlock()
}

// backendErrors is how many failures of broker call op were reported.
func (r *recorder) backendErrors(op string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.backend[op]
}

func (r *recorder) snapshot() map[string]map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return map[string]map[string]int{"enqueued": maps.Clone(r.enqueued), "transitions": maps.Clone(r.transitions), "finished": maps.Clone(r.finished), "rejected": maps.Clone(r.rejected)}
}

// flaky wraps a broker and fails the operations named in failing.
type flaky struct {
	queue.Broker
	mu      sync.Mutex
	failing map[string]bool
}

var errDown = errors.New("backend down")

func (f *flaky) set(op string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing == nil {
		f.failing = map[string]bool{}
	}
	f.failing[op] = down
}

func (f *flaky) down(op string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failing[op] || f.failing["*"]
}

func (f *flaky) Stats(ctx context.Context, q string) (queue.Stats, error) {
	if f.down("stats") {
		return queue.Stats{}, errDown
	}
	return f.Broker.Stats(ctx, q)
}

func (f *flaky) Extend(ctx context.Context, refs []queue.Ref, d time.Duration) ([]bool, error) {
	if f.down("extend") {
		return nil, errDown
	}
	return f.Broker.Extend(ctx, refs, d)
}

func (f *flaky) Queues(ctx context.Context) ([]string, error) {
	if f.down("queues") {
		return nil, errDown
	}
	return f.Broker.Queues(ctx)
}

func (f *flaky) Enqueue(ctx context.Context, jobs ...queue.NewJob) error {
	if f.down("enqueue") {
		return errDown
	}
	return f.Broker.Enqueue(ctx, jobs...)
}

func (f *flaky) Get(ctx context.Context, id string) (*queue.Job, error) {
	if f.down("get") {
		return nil, errDown
	}
	return f.Broker.Get(ctx, id)
}

func (f *flaky) Fetch(ctx context.Context, req queue.FetchRequest) ([]queue.Lease, error) {
	if f.down("fetch") {
		return nil, errDown
	}
	return f.Broker.Fetch(ctx, req)
}

func (f *flaky) Finish(ctx context.Context, outcomes []queue.Outcome) ([]queue.Status, error) {
	if f.down("finish") {
		return nil, errDown
	}
	return f.Broker.Finish(ctx, outcomes)
}

func (f *flaky) Release(ctx context.Context, refs []queue.Ref) ([]bool, error) {
	if f.down("release") {
		return nil, errDown
	}
	return f.Broker.Release(ctx, refs)
}

func (f *flaky) Tick(ctx context.Context) (queue.TickResult, error) {
	if f.down("tick") {
		return queue.TickResult{}, errDown
	}
	return f.Broker.Tick(ctx)
}
