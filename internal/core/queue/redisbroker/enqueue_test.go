package redisbroker_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
)

// TestEnqueueOneRoundTrip: one caller's Enqueue in a known queue is one
// round trip (one EVALSHA, the wake-up pushed by the script), and what it
// acknowledged is in Redis: the job hash, its id in the pending list (or
// the scheduled set) and a wake-up naming its queue.
func TestEnqueueOneRoundTrip(t *testing.T) {
	_, rdb := newClient(t)
	calls := &roundTrips{}
	rdb.AddHook(calls)
	ctx := context.Background()
	svc := queue.NewService(queue.Deps{Broker: redisbroker.New(rdb, redisbroker.Options{Prefix: "rt:"})}, queue.Config{})
	if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping"}, queue.SourceAPI); err != nil {
		t.Fatal(err) // the first call of a queue also adds it to the index
	}
	if err := rdb.Del(ctx, "rt:wake").Err(); err != nil {
		t.Fatal(err)
	}
	before := calls.n.Load()
	const n = 20
	var ids []string
	for i := range n {
		req := queue.EnqueueRequest{Type: "echo", Payload: []byte(`{"n":1}`)}
		if i%4 == 3 {
			req.DelayMS = 60000
		}
		j, err := svc.Enqueue(ctx, req, queue.SourceAPI)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	if got := calls.n.Load() - before; got != n {
		t.Errorf("%d round trips for %d enqueues, want one each", got, n)
	}
	for i, id := range ids {
		h, err := rdb.HGetAll(ctx, "rt:q:{default}:j:"+id).Result()
		if err != nil {
			t.Fatal(err)
		}
		if h["id"] != id || h["payload"] != `{"n":1}` || h["source"] != queue.SourceAPI {
			t.Errorf("job %s: hash %v", id, h)
		}
		if i%4 == 3 {
			if _, err := rdb.ZScore(ctx, "rt:q:{default}:scheduled", id).Result(); err != nil || h["status"] != "scheduled" {
				t.Errorf("delayed job %s: status %q, in the scheduled set: %v", id, h["status"], err)
			}
		} else if pos, err := rdb.LPos(ctx, "rt:q:{default}:pending", id, redis.LPosArgs{}).Result(); err != nil || h["status"] != "pending" {
			t.Errorf("job %s: status %q, pending list position %d (%v)", id, h["status"], pos, err)
		}
	}
	// One wake-up per pending job, none for the scheduled ones.
	wake, err := rdb.LRange(ctx, "rt:wake", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(wake) != n-n/4 {
		t.Errorf("%d wake-ups, want %d", len(wake), n-n/4)
	}
	for _, q := range wake {
		if q != "default" {
			t.Errorf("wake-up %q, want default", q)
		}
	}
}

// TestWakeListBounded: with nobody fetching, the wake-ups pushed by the
// enqueue script never pile up beyond 96 (trimmed to the last 64).
func TestWakeListBounded(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: "wb:"})
	for range 500 {
		if err := b.Enqueue(ctx, queue.NewJob{Job: &queue.Job{ID: queue.NewID(), Queue: "default", Type: "ping"}}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := rdb.LLen(ctx, "wb:wake").Result()
	if err != nil {
		t.Fatal(err)
	}
	if n < 1 || n > 96 {
		t.Errorf("wake-up list holds %d entries, want 1-96", n)
	}
	st, err := b.Stats(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 500 || st.Enqueued != 500 {
		t.Errorf("pending %d, enqueued %d: want 500 each", st.Pending, st.Enqueued)
	}
}
