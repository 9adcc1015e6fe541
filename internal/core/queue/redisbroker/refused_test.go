package redisbroker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestRefusedConnectionIsAnError: when the client cannot get a connection
// because Redis refuses it with an error of its own (here the user's
// password was changed and its connections killed: WRONGPASS), go-redis
// sends a pipeline's commands nowhere and sets none of their errors. A
// finish and a fetch of jobs of two queues (two scripts, one pipeline) then
// fail with that cause, writing nothing; the finish panicked on the empty
// replies. Once the password is back, the same outcomes are written: no job
// is lost.
func TestRefusedConnectionIsAnError(t *testing.T) {
	srv := redistest.Start(t)
	opt, err := redis.ParseURL(srv.ACLUser(t, "rotated", "old-pw-0123", "~*", "&*", "+@all"))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	b := redisbroker.New(rdb, redisbroker.Options{})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	svc := queue.NewService(queue.Deps{Broker: b}, queue.Config{})
	for _, q := range []string{"a", "b", "a", "b"} {
		if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: q}, queue.SourceAPI); err != nil {
			t.Fatal(err)
		}
	}
	leases, err := b.Fetch(ctx, queue.FetchRequest{Queues: []string{"a"}, N: 1, Lease: time.Minute})
	if err != nil || len(leases) != 1 {
		t.Fatalf("fetch: %v, %v", leases, err)
	}
	more, err := b.Fetch(ctx, queue.FetchRequest{Queues: []string{"b"}, N: 1, Lease: time.Minute})
	if err != nil || len(more) != 1 {
		t.Fatalf("fetch: %v, %v", more, err)
	}
	leases = append(leases, more...)
	var outcomes []queue.Outcome
	for _, l := range leases {
		outcomes = append(outcomes, queue.Outcome{Ref: l.Ref()})
	}
	if outcomes[0].Queue == outcomes[1].Queue {
		t.Fatalf("both leases of queue %s: the finish would be one script", outcomes[0].Queue)
	}

	rotate := func(pw string) {
		t.Helper()
		if _, err := redistest.Do(srv.Addr(), "ACL", "SETUSER", "rotated", "resetpass", ">"+pw); err != nil {
			t.Fatal(err)
		}
		if _, err := redistest.Do(srv.Addr(), "CLIENT", "KILL", "USER", "rotated"); err != nil {
			t.Fatal(err)
		}
	}
	rotate("new-pw-0123")
	st, err := b.Finish(ctx, outcomes)
	if err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("finish with a refused password: %v, %v; want an error naming WRONGPASS", st, err)
	}
	got, err := b.Fetch(ctx, queue.FetchRequest{Queues: []string{"a", "b"}, N: 2, Lease: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("fetch with a refused password: %v, %v; want an error naming WRONGPASS", got, err)
	}

	rotate("old-pw-0123")
	st, err = b.Finish(ctx, outcomes)
	if err != nil || len(st) != 2 || st[0] != queue.StatusSucceeded || st[1] != queue.StatusSucceeded {
		t.Fatalf("finish once the password is back: %v, %v", st, err)
	}
	got, err = b.Fetch(ctx, queue.FetchRequest{Queues: []string{"a", "b"}, N: 2, Lease: time.Minute})
	if err != nil || len(got) != 2 {
		t.Fatalf("fetch once the password is back: %v, %v; want the two jobs left", got, err)
	}
}
