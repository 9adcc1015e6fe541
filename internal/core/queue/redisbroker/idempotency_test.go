package redisbroker_test

import (
	"context"
	"sync"
	"testing"
	"time"

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
}
