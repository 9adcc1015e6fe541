package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
)

// TestEnqueueBatchPartlyStored: an enqueue is atomic per queue, not as a
// whole. With queue b's keys broken (its pending list a string), a batch of
// jobs in a, b and a again stores a's jobs; b's script fails running
// (WRONGTYPE at its RPUSH, after it wrote the job's hash), so b's job may
// be stored: the broker's error is a *queue.PartialEnqueueError naming a,
// and the service's a *queue.BatchError naming jobs 0 and 2 stored, as Get
// agrees, and job 1 maybe stored; the batch's error is a 503 (unavailable)
// saying so. A batch of two broken queues names both jobs maybe stored.
func TestEnqueueBatchPartlyStored(t *testing.T) {
	ctx := context.Background()
	rdb, svc := brokenQueueService(t, "pe:", "b")
	reqs := []queue.EnqueueRequest{{Type: "ping", Queue: "a"}, {Type: "ping", Queue: "b"}, {Type: "ping", Queue: "a"}}
	_, err := svc.EnqueueBatch(ctx, reqs, queue.SourceAPI)
	var be *queue.BatchError
	if !errors.As(err, &be) || core.ErrorCode(err) != core.CodeUnavailable {
		t.Fatalf("batch with queue b broken: %v, want an unavailable *queue.BatchError", err)
	}
	if got := fmt.Sprint(indexes(be.Stored), indexes(be.NotStored), indexes(be.MaybeStored)); got != "[0 2] [] [1]" {
		t.Fatalf("stored, not stored, maybe stored: %s, want [0 2] [] [1]", got)
	}
	if got := queue.StoredQueues(errors.Unwrap(err)); fmt.Sprint(got) != "[a]" {
		t.Errorf("StoredQueues %v, want [a]", got)
	}
	if u := (*queue.UncertainEnqueueError)(nil); !errors.As(err, &u) || !u.Failed || !strings.Contains(u.Error(), "failed part way") {
		t.Errorf("%v: want an *queue.UncertainEnqueueError marked Failed (the script failed part way), told so", err)
	}
	for _, j := range be.Stored {
		if got, err := svc.Get(ctx, j.ID); err != nil || got.Queue != "a" || got.Status != queue.StatusPending {
			t.Errorf("stored job %d: %+v, %v; want pending in a", j.Index, got, err)
		}
	}

	if err := rdb.Set(ctx, "pe:q:{c}:pending", "not a list", 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, err = svc.EnqueueBatch(ctx, []queue.EnqueueRequest{{Type: "ping", Queue: "c"}, {Type: "ping", Queue: "b"}}, queue.SourceAPI)
	if !errors.As(err, &be) || len(be.Stored) != 0 || len(be.MaybeStored) != 2 || queue.StoredQueues(err) != nil {
		t.Errorf("a batch of two broken queues: %v (%+v), want both jobs maybe stored", err, be)
	}
}

// TestEnqueueBatchPartlyStoredRetryWithKeys: the README's "a retry with
// keys" after a script failed running. A keyed batch in a, b, a with b's
// pending list a string: jobs 0 and 2 stored, job 1 maybe stored (its
// script wrote its hash and its key's record before WRONGTYPE). Sent again
// once b is repaired, jobs 0 and 2 replay, but job 1's key names the job of
// the failed script, which no queue lists (b never made): the retry is a
// 409 "no longer kept" naming jobs[1], a *queue.BatchError naming every job
// stored (job 1 by the key's job), and nothing is stored twice. Job 1 sent
// with a new key is stored.
func TestEnqueueBatchPartlyStoredRetryWithKeys(t *testing.T) {
	ctx := context.Background()
	rdb, svc := brokenQueueService(t, "pk:", "b")
	reqs := []queue.EnqueueRequest{{Type: "ping", Queue: "a", IdempotencyKey: "0"}, {Type: "ping", Queue: "b", IdempotencyKey: "1"}, {Type: "ping", Queue: "a", IdempotencyKey: "2"}}
	_, err := svc.EnqueueBatch(ctx, reqs, queue.SourceAPI)
	var first *queue.BatchError
	if !errors.As(err, &first) || fmt.Sprint(indexes(first.Stored), indexes(first.NotStored), indexes(first.MaybeStored)) != "[0 2] [] [1]" {
		t.Fatalf("keyed batch with b broken: %v (%+v), want jobs 0 and 2 stored, 1 maybe", err, first)
	}
	if err := rdb.Del(ctx, "pk:q:{b}:pending").Err(); err != nil {
		t.Fatal(err)
	}
	_, err = svc.EnqueueBatch(ctx, reqs, queue.SourceAPI)
	var retry *queue.BatchError
	want := fmt.Sprint([]queue.BatchRef{first.Stored[0], first.MaybeStored[0], first.Stored[1]})
	if !errors.As(err, &retry) || core.ErrorCode(err) != core.CodeConflict || !strings.HasPrefix(core.ErrorMessage(err), "jobs[1]: idempotency key \"1\" made job "+first.MaybeStored[0].ID+", which is no longer kept") ||
		fmt.Sprint(retry.Stored) != want || len(retry.NotStored)+len(retry.MaybeStored) != 0 {
		t.Fatalf("the retry: %v (%+v), want a 409 naming jobs[1] no longer kept, every job stored: %s", err, retry, want)
	}
	if js, err := svc.List(ctx, queue.Filter{Queue: "a"}); err != nil || len(js) != 2 {
		t.Errorf("queue a after the retry: %d jobs, %v; want the 2 of the first batch", len(js), err)
	}
	j, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: "b", IdempotencyKey: "1-again"}, queue.SourceAPI)
	if err != nil || j.Replayed {
		t.Fatalf("job 1 with a new key: %+v, %v", j, err)
	}
	if got, err := svc.Get(ctx, j.ID); err != nil || got.Status != queue.StatusPending {
		t.Errorf("job 1 with a new key: Get %+v, %v; want it pending", got, err)
	}
}

// TestEnqueueBatchReplayUnread: a batch whose jobs are all stored, but a
// replay's job cannot be read (Get fails after the broker call), is a
// *queue.BatchError naming every job stored, the replay by its key's job,
// with the read's code: not a bare error that a client would answer by
// sending stored jobs again.
func TestEnqueueBatchReplayUnread(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: "ru:"})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	svc := queue.NewService(queue.Deps{Broker: b}, queue.Config{})
	kept, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: "a", IdempotencyKey: "k"}, queue.SourceAPI)
	if err != nil {
		t.Fatal(err)
	}
	flaky := queue.NewService(queue.Deps{Broker: getFails{b}}, queue.Config{})
	_, err = flaky.EnqueueBatch(ctx, []queue.EnqueueRequest{{Type: "ping", Queue: "a", IdempotencyKey: "k"}, {Type: "ping", Queue: "c"}}, queue.SourceAPI)
	var be *queue.BatchError
	if !errors.As(err, &be) || core.ErrorCode(err) != core.CodeUnavailable || !strings.HasPrefix(core.ErrorMessage(err), "jobs[0]: ") ||
		len(be.Stored) != 2 || be.Stored[0].ID != kept.ID || len(be.NotStored)+len(be.MaybeStored) != 0 {
		t.Fatalf("replay unread: %v (%+v), want an unavailable *queue.BatchError naming jobs[0], both jobs stored, job 0 as %s", err, be, kept.ID)
	}
	if got, err := svc.Get(ctx, be.Stored[1].ID); err != nil || got.Queue != "c" {
		t.Errorf("job 1, named stored: Get %+v, %v; want it in c", got, err)
	}
}

// getFails is a broker whose Get fails as a broken connection does.
type getFails struct{ queue.Broker }

func (getFails) Get(context.Context, string) (*queue.Job, error) {
	return nil, errors.New("connection reset by peer")
}

// enqueuedCount is an Observer counting the jobs enqueued (the
// refrakt_jobs_enqueued_total metric's source).
type enqueuedCount struct {
	queue.NopObserver
	n atomic.Int64
}

func (c *enqueuedCount) Enqueued(string) { c.n.Add(1) }

// TestEnqueueBatchDetailsAndCount: a partly stored batch names a replay of
// a stored queue by its key's job in details.stored and counts as enqueued
// only the jobs it stored (not the replay, not the job maybe stored); a
// batch that succeeds counts its new jobs, not its replays; and a key used
// in two queues, stored in one and refused in the other, names the refused
// job, jobs[1], not the stored one.
func TestEnqueueBatchDetailsAndCount(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: "pd:"})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	cnt := &enqueuedCount{}
	svc := queue.NewService(queue.Deps{Broker: b, Observer: cnt}, queue.Config{})
	kept, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: "a", IdempotencyKey: "r"}, queue.SourceAPI)
	if err != nil {
		t.Fatal(err)
	}
	used, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: "c", IdempotencyKey: "k"}, queue.SourceAPI)
	if err != nil {
		t.Fatal(err)
	}
	counted := func(what string, want int64) {
		t.Helper()
		if got := cnt.n.Swap(0); got != want {
			t.Errorf("%s: %d jobs counted enqueued, want %d", what, got, want)
		}
	}
	counted("two single enqueues", 2)

	ok, err := svc.EnqueueBatch(ctx, []queue.EnqueueRequest{{Type: "ping", Queue: "a", IdempotencyKey: "r"}, {Type: "ping", Queue: "a"}}, queue.SourceAPI)
	if err != nil || !ok[0].Replayed || ok[0].ID != kept.ID || ok[1].Replayed {
		t.Fatalf("a batch of a replay and a new job: %v", err)
	}
	counted("a batch of a replay and a new job", 1)

	if err := rdb.Set(ctx, "pd:q:{b}:pending", "not a list", 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, err = svc.EnqueueBatch(ctx, []queue.EnqueueRequest{{Type: "ping", Queue: "a", IdempotencyKey: "r"}, {Type: "ping", Queue: "a"}, {Type: "ping", Queue: "b"}}, queue.SourceAPI)
	var be *queue.BatchError
	if !errors.As(err, &be) || fmt.Sprint(indexes(be.Stored), indexes(be.NotStored), indexes(be.MaybeStored)) != "[0 1] [] [2]" {
		t.Fatalf("a replay and a job in a, a job in broken b: %v (%+v), want 0 and 1 stored, 2 maybe", err, be)
	}
	if be.Stored[0].ID != kept.ID {
		t.Errorf("the replay named stored as %s, want its key's job %s", be.Stored[0].ID, kept.ID)
	}
	counted("a partly stored batch", 1)

	_, err = svc.EnqueueBatch(ctx, []queue.EnqueueRequest{{Type: "ping", Queue: "d", IdempotencyKey: "k"}, {Type: "echo", Queue: "c", IdempotencyKey: "k"}}, queue.SourceAPI)
	if !errors.As(err, &be) || !strings.HasPrefix(core.ErrorMessage(err), "jobs[1]: ") || core.ErrorCode(err) != core.CodeKeyReused ||
		fmt.Sprint(indexes(be.Stored), indexes(be.NotStored)) != "[0] [1]" {
		t.Fatalf("key k stored in d, refused in c (used by %s): %v (%+v), want jobs[1] named, 0 stored, 1 not", used.ID, err, be)
	}
	counted("a key stored in d and refused in c", 1)
}

// brokenQueueService is a client of a new server and a service of a broker
// there under prefix, with queue q's pending list broken (a string): a
// script storing a job of q fails running (WRONGTYPE at its RPUSH), after
// it wrote the job's hash.
func brokenQueueService(t *testing.T, prefix, q string) (*redis.Client, *queue.Service) {
	t.Helper()
	_, rdb := newClient(t)
	ctx := context.Background()
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: prefix})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, prefix+"q:{"+q+"}:pending", "not a list", 0).Err(); err != nil {
		t.Fatal(err)
	}
	return rdb, queue.NewService(queue.Deps{Broker: b}, queue.Config{})
}

func indexes(js []queue.BatchRef) []int {
	out := []int{}
	for _, j := range js {
		out = append(out, j.Index)
	}
	return out
}

// lostFirstAnswer is a hook that makes the first script of a pipeline of
// two answer as a cut connection does (the answer lost, the script run).
type lostFirstAnswer struct{}

func (lostFirstAnswer) DialHook(next redis.DialHook) redis.DialHook { return next }
func (lostFirstAnswer) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (lostFirstAnswer) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if len(cmds) == 2 && strings.HasPrefix(cmds[0].Name(), "eval") {
			cmds[0].SetErr(errors.New("read tcp: i/o timeout"))
		}
		return err
	}
}

// TestEnqueueMergedUncertainFailed (fix40, simp40 NIT-3): a batch over a
// and b, a's answer lost and b's script failed part way (its pending list
// a string): the one UncertainEnqueueError of the call says failed part
// way, since one of its scripts did (it kept the first queue's cause, the
// answer lost).
func TestEnqueueMergedUncertainFailed(t *testing.T) {
	ctx := context.Background()
	rdb, svc := brokenQueueService(t, "mu:", "b")
	rdb.AddHook(lostFirstAnswer{})
	_, err := svc.EnqueueBatch(ctx, []queue.EnqueueRequest{{Type: "ping", Queue: "a"}, {Type: "ping", Queue: "b"}}, queue.SourceAPI)
	var be *queue.BatchError
	if !errors.As(err, &be) || len(be.MaybeStored) != 2 {
		t.Fatalf("a's answer lost, b broken: %v (%+v), want both jobs maybe stored", err, be)
	}
	if u := (*queue.UncertainEnqueueError)(nil); !errors.As(err, &u) || !u.Failed || !strings.Contains(u.Error(), "failed part way") {
		t.Errorf("%v: want the merged *queue.UncertainEnqueueError marked Failed (b's script failed part way)", err)
	}
}
