package redisbroker_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/brokertest"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
)

// TestOldestPendingAgeOfEarlierVersionsJobs: a pending job as daemons of
// earlier versions leave it after claiming it before it was due and handing
// it back (shutdown) has no ready_at (the job was scheduled by this version,
// which stores none until a job is ready) or ready_at 0 (scheduled by an
// earlier version). Its queue's oldest pending age counts from the claim,
// its last start, as this version's claim records it: neither 0, which hides
// the backlog from admission control, nor decades, which refuses the queue
// outright.
func TestOldestPendingAgeOfEarlierVersionsJobs(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	clock := brokertest.NewClock()
	const prefix = "cmp:"
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: prefix, Clock: clock})
	svc := queue.NewService(queue.Deps{Broker: b, Clock: clock}, queue.Config{})
	claimed := clock.Now().Add(-90 * time.Second)
	for q, shape := range map[string]func(key string) error{
		"none": func(key string) error { return rdb.HDel(ctx, key, "ready_at").Err() },
		"zero": func(key string) error { return rdb.HSet(ctx, key, "ready_at", "0").Err() },
	} {
		j := enqueuePing(t, svc, q, 0)
		key := prefix + "q:{" + q + "}:j:" + j.ID
		if err := shape(key); err != nil {
			t.Fatal(err)
		}
		if err := rdb.HSet(ctx, key, "started_at", strconv.FormatInt(claimed.UnixMilli(), 10), "attempts", "0").Err(); err != nil {
			t.Fatal(err)
		}
		st, err := b.Stats(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pending != 1 || st.OldestPendingAge != 90*time.Second {
			t.Errorf("queue %s (ready_at %s): pending %d, oldest pending age %v; want 1, 1m30s (since the claim)", q, q, st.Pending, st.OldestPendingAge)
		}
	}
}
