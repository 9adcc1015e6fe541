package redisbroker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
)

// TestIdempotencyConcurrent: 32 enqueues of one request with one key, from
// four brokers (daemons) on their own connections at once, make exactly
// one job, and every answer names it; the key's record expires in Redis
// after JOB_IDEMPOTENCY_TTL.
func TestIdempotencyConcurrent(t *testing.T) {
	srv, _ := newClient(t)
	ctx := context.Background()
	const brokers, each = 4, 8
	var svcs []*queue.Service
	for range brokers {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { rdb.Close() })
		b := redisbroker.New(rdb, redisbroker.Options{Prefix: "idc:"})
		svcs = append(svcs, queue.NewService(queue.Deps{Broker: b}, queue.Config{IdempotencyTTL: time.Minute}))
	}
	req := queue.EnqueueRequest{Type: "echo", Payload: []byte(`{"n":1}`), Queue: "orders", IdempotencyKey: "order-7f3a"}
	var wg sync.WaitGroup
	ids := make([]string, brokers*each)
	replayed := make([]bool, brokers*each)
	errs := make([]error, brokers*each)
	start := make(chan struct{})
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			j, err := svcs[i%brokers].Enqueue(ctx, req, queue.SourceAPI)
			if err != nil {
				errs[i] = err
				return
			}
			ids[i], replayed[i] = j.ID, j.Replayed
		}()
	}
	close(start)
	wg.Wait()
	stored := 0
	for i := range ids {
		if errs[i] != nil {
			t.Fatalf("enqueue %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Errorf("enqueue %d answered job %s, enqueue 0 job %s", i, ids[i], ids[0])
		}
		if !replayed[i] {
			stored++
		}
	}
	if stored != 1 {
		t.Errorf("%d answers say stored, want 1 (the others replays)", stored)
	}
	st, err := svcs[0].Broker().Stats(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if st.Enqueued != 1 || st.Pending != 1 {
		t.Errorf("enqueued %d, pending %d: want one job", st.Enqueued, st.Pending)
	}

	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	key := "idc:q:{orders}:idem:order-7f3a"
	ttl, err := rdb.PTTL(ctx, key).Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Errorf("PTTL %s = %v, %v: want the record to expire within JOB_IDEMPOTENCY_TTL (1m)", key, ttl, err)
	}
	if v, err := rdb.Get(ctx, key).Result(); err != nil || len(v) < len(ids[0]) || v[:len(ids[0])] != ids[0] {
		t.Errorf("record %s = %q, %v: want it to start with the job's id %s", key, v, err, ids[0])
	}
	if n, err := rdb.ZCard(ctx, "idc:q:{orders}:idem").Result(); err != nil || n != 1 {
		t.Errorf("the queue's key index holds %d keys (%v), want 1", n, err)
	}
	if ttl, err := rdb.PTTL(ctx, "idc:q:{orders}:idem").Result(); err != nil || ttl <= 0 {
		t.Errorf("the queue's key index has TTL %v (%v), want it to expire with its records", ttl, err)
	}
}

// TestIdempotencyEnqueueCost: an enqueue without a key runs, inside its
// one EVALSHA, the commands it ran before keys existed (none of the keys'
// GET, SET, ZADD); one with a new key adds a GET, a SET, a ZADD, a
// ZREMRANGEBYSCORE and the index's PEXPIRE; a replay a GET and an EXISTS, and stores nothing.
func TestIdempotencyEnqueueCost(t *testing.T) {
	_, rdb := newClient(t)
	hook := &cmdHook{}
	rdb.AddHook(hook)
	ctx := context.Background()
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: "cost:"})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	job := func(key string) queue.NewJob {
		nj := queue.NewJob{Job: &queue.Job{ID: queue.NewID(), Queue: "q", Type: "ping"}}
		if key != "" {
			nj.Idem = &queue.Idempotency{Key: key, Fingerprint: "fp", TTL: time.Minute}
		}
		return nj
	}
	if err := b.Enqueue(ctx, job("")); err != nil { // makes the queue
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		job  queue.NewJob
		want map[string]int
	}{
		{"no key", job(""), map[string]int{"evalsha": 1, "time": 1, "exists": 1, "hset": 1, "rpush": 2, "hincrby": 1}},
		{"a new key", job("k"), map[string]int{"evalsha": 1, "time": 1, "exists": 1, "hset": 1, "rpush": 2, "hincrby": 1,
			"get": 1, "set": 1, "zadd": 1, "zremrangebyscore": 1, "pttl": 1, "pexpire": 1}},
		{"a replay", job("k"), map[string]int{"evalsha": 1, "time": 1, "exists": 2, "get": 1, "zremrangebyscore": 1}},
	} {
		calls, trips := costOf(t, rdb, hook, func() {
			if err := b.Enqueue(ctx, tt.job); err != nil {
				t.Fatal(err)
			}
		})
		delete(calls, "config|resetstat")
		if trips != 1 {
			t.Errorf("%s: %d round trips, want 1", tt.name, trips)
		}
		if d := cmp.Diff(tt.want, calls); d != "" {
			t.Errorf("%s: commands Redis ran (-want +got):\n%s", tt.name, d)
		}
	}
}

// TestIdempotencyIndexKept: the queue's key index drops its expired keys
// at the next keyed enqueue, lives as long as its longest-lived record,
// and goes with the queue's records when the queue is removed (review
// rvidem37: none of it was asserted).
func TestIdempotencyIndexKept(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: "idx:"})
	keyed := func(key string, ttl time.Duration) queue.NewJob {
		return queue.NewJob{Job: &queue.Job{ID: queue.NewID(), Queue: "q", Type: "ping"},
			Idem: &queue.Idempotency{Key: key, Fingerprint: "fp", TTL: ttl}}
	}
	long, short, later := keyed("long", time.Minute), keyed("short", time.Millisecond), keyed("later", time.Minute)
	for _, nj := range []queue.NewJob{long, short} {
		if err := b.Enqueue(ctx, nj); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond) // past the short key's TTL
	if err := b.Enqueue(ctx, later); err != nil {
		t.Fatal(err)
	}
	members, err := rdb.ZRange(ctx, "idx:q:{q}:idem", 0, -1).Result()
	if d := cmp.Diff([]string{"long", "later"}, members); err != nil || d != "" {
		t.Errorf("the index (-want +got, %v):\n%s", err, d)
	}
	if ttl, err := rdb.PTTL(ctx, "idx:q:{q}:idem").Result(); err != nil || ttl < 50*time.Second {
		t.Errorf("the index's TTL %v (%v), want its longest-lived record's (1m): a shorter TTL after must not cut it", ttl, err)
	}
	// The queue removed once its jobs are done: its records and index go.
	for _, nj := range []queue.NewJob{long, short, later} {
		if _, _, err := b.Cancel(ctx, nj.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.RemoveQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Exists(ctx, "idx:q:{q}:idem", "idx:q:{q}:idem:long", "idx:q:{q}:idem:later").Result(); err != nil || n != 0 {
		t.Errorf("%d of the index and its record left after remove-queue (%v), want none", n, err)
	}
}
