package redisbroker_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
	"github.com/refrakt/refrakt/internal/redistest"
)

// These tests stall a real redis-server with SIGSTOP: the commands sent
// meanwhile wait in its socket buffers and run when it gets SIGCONT, after
// their callers were told they failed.

// stallBroker returns a server, a broker on a client of it set up like the
// daemon's (its context bounds each command, go-redis's retries on) with
// the given read timeout, and the client's command recorder. The broker
// has loaded its scripts and learnt Redis's clock.
func stallBroker(t *testing.T, readTimeout time.Duration) (*redistest.Server, *redisbroker.Broker, *cmdHook) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: readTimeout, ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	calls := &cmdHook{}
	rdb.AddHook(calls)
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: "st:"})
	if err := b.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Resume) // before the server's own cleanup (LIFO) would find it stopped
	return srv, b, calls
}

// pausedBroker is stallBroker after one enqueue (the broker knows Redis's
// clock), with Redis paused and a channel closed when the next EVALSHA,
// the next enqueue's round trip, goes out.
func pausedBroker(t *testing.T, readTimeout time.Duration) (*redistest.Server, *redisbroker.Broker, <-chan struct{}) {
	t.Helper()
	srv, b, calls := stallBroker(t, readTimeout)
	if err := b.Enqueue(context.Background(), queue.NewJob{Job: pingJob()}); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	sending := make(chan struct{})
	calls.onceBefore("evalsha", func() { close(sending) })
	return srv, b, sending
}

func pingJob() *queue.Job {
	return &queue.Job{ID: queue.NewID(), Queue: queue.DefaultQueue, Type: "ping", Source: queue.SourceAPI}
}

// resume continues the server and waits until it answers, and a little
// more, so that the commands it held have run.
func resume(t *testing.T, srv *redistest.Server) {
	t.Helper()
	srv.Resume()
	deadline := time.Now().Add(10 * time.Second)
	for redistest.Ping(srv.Addr()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("redis-server does not answer after SIGCONT")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
}

// wantStored checks whether job j is in Redis.
func wantStored(t *testing.T, b *redisbroker.Broker, j *queue.Job, want bool) {
	t.Helper()
	_, err := b.Get(context.Background(), j.ID)
	switch code := core.ErrorCode(err); {
	case want && err != nil:
		t.Errorf("job %s is not stored: %v", j.ID, err)
	case !want && code != core.CodeNotFound:
		t.Errorf("job %s: Get says %v, want not found: it was stored after its enqueue failed", j.ID, err)
	}
}

// TestEnqueueDuringStallStoresNothing: an enqueue to a stalled Redis fails
// after about one read timeout (not one per go-redis retry), its error
// names the job as one that may exist, and when Redis resumes and runs the
// script it held, the script stores nothing: its deadline has passed.
func TestEnqueueDuringStallStoresNothing(t *testing.T) {
	const readTimeout = time.Second
	srv, b, _ := stallBroker(t, readTimeout)
	ctx := context.Background()
	if err := b.Enqueue(ctx, queue.NewJob{Job: pingJob()}); err != nil { // a connection, the clock
		t.Fatal(err)
	}
	srv.Pause()
	j := pingJob()
	start := time.Now()
	err := b.Enqueue(ctx, queue.NewJob{Job: j})
	waited := time.Since(start)
	if err == nil {
		t.Fatal("Enqueue to a stalled Redis succeeded")
	}
	// Generous: go-redis alone sends it again after each timeout, 4 times.
	if waited > 3*readTimeout+readTimeout/2 {
		t.Errorf("Enqueue to a stalled Redis took %v to fail, want about one read timeout (%v)", waited, readTimeout)
	}
	if got := queue.MaybeStored(err); !slices.Equal(got, []string{j.ID}) {
		t.Errorf("error %v: may-be-stored jobs %v, want [%s]", err, got, j.ID)
	}
	resume(t, srv)
	wantStored(t, b, j, false)
	st, err := b.Stats(ctx, queue.DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	if st.Enqueued != 1 || st.Pending != 1 {
		t.Errorf("after the stall: %d enqueued, %d pending; want only the first job", st.Enqueued, st.Pending)
	}
}

// TestEnqueueRunLateRefused: when Redis runs an enqueue script after the
// deadline it carries (half the caller's time), even if the caller is
// still waiting, the script stores nothing and the caller gets an error
// saying so (no job that may exist).
func TestEnqueueRunLateRefused(t *testing.T) {
	const readTimeout = 4 * time.Second // the script's deadline is 2 s after it is sent
	srv, b, _ := stallBroker(t, readTimeout)
	ctx := context.Background()
	if err := b.Enqueue(ctx, queue.NewJob{Job: pingJob()}); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	j := pingJob()
	done := make(chan error, 1)
	go func() { done <- b.Enqueue(ctx, queue.NewJob{Job: j}) }()
	time.Sleep(readTimeout*2/3 - 50*time.Millisecond) // past the script's deadline, before the caller's
	srv.Resume()
	err := <-done
	if err == nil {
		t.Fatal("an enqueue script run after its deadline stored its job")
	}
	if got := queue.MaybeStored(err); got != nil {
		t.Errorf("error %v says jobs %v may be stored; want a plain refusal (Redis answered: nothing stored)", err, got)
	}
	resume(t, srv)
	wantStored(t, b, j, false)
}

// TestQueuedEnqueueStopsWaiting: a caller queued behind another's round
// trip stops waiting when its context ends, without waiting for that round
// trip, and its job is never sent, so never stored.
func TestQueuedEnqueueStopsWaiting(t *testing.T) {
	srv, b, sending := pausedBroker(t, 5*time.Second)
	ctx := context.Background()
	first := pingJob()
	firstDone := make(chan error, 1)
	go func() { firstDone <- b.Enqueue(ctx, queue.NewJob{Job: first}) }()
	<-sending // the first caller's round trip is on its way: the next queues

	queued := pingJob()
	qctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err := b.Enqueue(qctx, queue.NewJob{Job: queued})
	select {
	case <-firstDone:
		t.Error("the queued caller waited for the round trip it queued behind")
	default:
	}
	if err == nil {
		t.Fatal("a queued enqueue whose context ended succeeded")
	}
	if got := queue.MaybeStored(err); got != nil {
		t.Errorf("error %v says jobs %v may be stored; it was never sent", err, got)
	}
	resume(t, srv)
	if err := <-firstDone; err != nil {
		t.Errorf("the first enqueue, run in time: %v", err)
	}
	wantStored(t, b, first, true)
	wantStored(t, b, queued, false)
}

// TestQueuedEnqueueGivesUpAfterSending: a queued caller whose calls went
// out in a batch and got no answer stops at its own deadline with an error
// naming its job as one that may exist; the stalled script then stores
// nothing, and the broker's senders' turn is not lost (the next enqueue
// works).
func TestQueuedEnqueueGivesUpAfterSending(t *testing.T) {
	srv, b, sending := pausedBroker(t, 800*time.Millisecond)
	ctx := context.Background()
	first := pingJob()
	fctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond) // gives up first, handing over the turn
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := b.Enqueue(fctx, queue.NewJob{Job: first}); err == nil {
			t.Error("the first enqueue to a stalled Redis succeeded")
		}
	}()
	<-sending
	queued := pingJob()
	err := b.Enqueue(ctx, queue.NewJob{Job: queued}) // sent when the first gives up, then stalls
	wg.Wait()
	if got := queue.MaybeStored(err); !slices.Equal(got, []string{queued.ID}) {
		t.Errorf("error %v: may-be-stored jobs %v, want [%s]", err, got, queued.ID)
	}
	resume(t, srv)
	wantStored(t, b, first, false)
	wantStored(t, b, queued, false)
	next := pingJob()
	done := make(chan error, 1)
	go func() { done <- b.Enqueue(ctx, queue.NewJob{Job: next}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the next enqueue: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the next enqueue hangs: the senders' turn was lost")
	}
	wantStored(t, b, next, true)
}

// transitions counts an observer's transitions.
type transitions struct {
	queue.NopObserver
	mu sync.Mutex
	n  map[string]int
}

func (o *transitions) Transition(from, to string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[from+"→"+to]++
}

func (o *transitions) count(from, to queue.Status) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[string(from)+"→"+string(to)]
}

// TestTickDuringStallMovesNothing: a tick that times out on a stalled
// Redis moves nothing when Redis runs it later, so the expired lease it
// would have recovered is recovered, and counted, by the next tick.
func TestTickDuringStallMovesNothing(t *testing.T) {
	srv, b, _ := stallBroker(t, time.Second)
	ctx := context.Background()
	obs := &transitions{}
	svc := queue.NewService(queue.Deps{Broker: b, Observer: obs}, queue.Config{})
	j := pingJob()
	j.MaxRetries = 5
	if err := b.Enqueue(ctx, queue.NewJob{Job: j}); err != nil {
		t.Fatal(err)
	}
	if ls, err := b.Fetch(ctx, queue.FetchRequest{N: 1, Lease: 50 * time.Millisecond}); err != nil || len(ls) != 1 {
		t.Fatalf("Fetch: %v, %v", ls, err)
	}
	time.Sleep(100 * time.Millisecond) // the lease expires: its worker is gone
	if _, err := svc.Tick(ctx); err != nil {
		t.Fatal(err) // the index read, warm
	}
	if got := obs.count(queue.StatusRunning, queue.StatusPending); got != 1 {
		t.Fatalf("warm-up tick: %d recoveries, want 1", got)
	}
	// Again, with Redis stalled.
	if ls, err := b.Fetch(ctx, queue.FetchRequest{N: 1, Lease: 50 * time.Millisecond}); err != nil || len(ls) != 1 {
		t.Fatalf("Fetch: %v, %v", ls, err)
	}
	time.Sleep(100 * time.Millisecond)
	srv.Pause()
	if _, err := svc.Tick(ctx); err == nil {
		t.Fatal("Tick on a stalled Redis succeeded")
	}
	resume(t, srv)
	got, err := b.Get(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != queue.StatusRunning {
		t.Errorf("after the stall the job is %s, want still running: the timed out tick moved it when Redis resumed", got.Status)
	}
	r, err := svc.Tick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Recovered != 1 {
		t.Errorf("the tick after the stall recovered %d, want 1", r.Recovered)
	}
	if got := obs.count(queue.StatusRunning, queue.StatusPending); got != 2 {
		t.Errorf("running→pending counted %d times, want 2 (one per recovery)", got)
	}
	if got, _ := b.Get(ctx, j.ID); got == nil || got.Attempts != 2 || got.Status != queue.StatusPending {
		t.Errorf("job after two recoveries: %+v, want pending after 2 attempts", got)
	}
}

// TestQueuesDuringStallBounded: the queue-list read a new queue's bound
// needs gives up after one read timeout on a stalled Redis, rather than
// reading again: a first POST /run to a daemon took 2 read timeouts (6s)
// there before any enqueue began.
func TestQueuesDuringStallBounded(t *testing.T) {
	const readTimeout = time.Second
	srv, b, _ := stallBroker(t, readTimeout)
	srv.Pause()
	begin := time.Now()
	_, err := b.Queues(context.Background())
	took := time.Since(begin)
	resume(t, srv)
	if err == nil {
		t.Fatal("listing queues on a stalled Redis succeeded")
	}
	if took > readTimeout*17/10 {
		t.Errorf("listing queues on a stalled Redis took %s, want about one read timeout (%s)", took, readTimeout)
	}
}
