package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
)

// TestEnqueueBatchPartlyStored: an enqueue is atomic per queue, not as a
// whole. With queue b's keys broken (its pending list a string), a batch of
// jobs in a, b and a again stores a's jobs and not b's: the broker's error
// is a *queue.PartialEnqueueError naming a, and the service's a
// *queue.BatchError naming jobs 0 and 2 stored, job 1 not, as Get agrees;
// the batch's error is a 503 (unavailable) saying so. A batch wholly
// refused (a's keys broken too) names every job not stored.
func TestEnqueueBatchPartlyStored(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: "pe:"})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	svc := queue.NewService(queue.Deps{Broker: b}, queue.Config{})
	if err := rdb.Set(ctx, "pe:q:{b}:pending", "not a list", 0).Err(); err != nil {
		t.Fatal(err)
	}
	reqs := []queue.EnqueueRequest{{Type: "ping", Queue: "a"}, {Type: "ping", Queue: "b"}, {Type: "ping", Queue: "a"}}
	_, err := svc.EnqueueBatch(ctx, reqs, queue.SourceAPI)
	var be *queue.BatchError
	if !errors.As(err, &be) || core.ErrorCode(err) != core.CodeUnavailable {
		t.Fatalf("batch with queue b broken: %v, want an unavailable *queue.BatchError", err)
	}
	if got := fmt.Sprint(indexes(be.Stored), indexes(be.NotStored), indexes(be.MaybeStored)); got != "[0 2] [1] []" {
		t.Fatalf("stored, not stored, maybe stored: %s, want [0 2] [1] []", got)
	}
	if got := queue.StoredQueues(errors.Unwrap(err)); fmt.Sprint(got) != "[a]" {
		t.Errorf("StoredQueues %v, want [a]", got)
	}
	for _, j := range be.Stored {
		if got, err := svc.Get(ctx, j.ID); err != nil || got.Queue != "a" || got.Status != queue.StatusPending {
			t.Errorf("stored job %d: %+v, %v; want pending in a", j.Index, got, err)
		}
	}
	for _, j := range be.NotStored {
		if _, err := svc.Get(ctx, j.ID); core.ErrorCode(err) != core.CodeNotFound {
			t.Errorf("job %d not stored: Get %v, want not found", j.Index, err)
		}
	}

	if err := rdb.Set(ctx, "pe:q:{c}:pending", "not a list", 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, err = svc.EnqueueBatch(ctx, []queue.EnqueueRequest{{Type: "ping", Queue: "c"}, {Type: "ping", Queue: "b"}}, queue.SourceAPI)
	if !errors.As(err, &be) || len(be.Stored) != 0 || len(be.NotStored) != 2 || queue.StoredQueues(err) != nil {
		t.Errorf("a batch wholly refused: %v (%+v), want both jobs not stored", err, be)
	}
}

func indexes(js []queue.BatchJob) []int {
	out := []int{}
	for _, j := range js {
		out = append(out, j.Index)
	}
	return out
}
