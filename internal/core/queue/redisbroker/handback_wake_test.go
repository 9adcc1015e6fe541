package redisbroker_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
)

// wakeBroker is a broker of its own client (a daemon of its own) on srv,
// under prefix.
func wakeBroker(t *testing.T, addr, prefix string) *redisbroker.Broker {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: prefix})
	if err := b.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b
}

// blockedInBLPOP waits until n clients of the server are blocked in BLPOP
// (CLIENT LIST), polling: the state itself, not a sleep.
func blockedInBLPOP(t *testing.T, admin *redis.Client, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err := admin.ClientList(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		if blockedClients(list, "blpop") == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not %d clients blocked in BLPOP within 10s:\n%s", n, list)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// blockedClients counts the clients of a CLIENT LIST that are blocked
// (flag b) in the command cmd. A client's cmd is its last command: a
// pooled connection whose BLPOP returned keeps cmd=blpop while idle, and
// counting cmd alone took such a connection for a blocked fetcher.
func blockedClients(list, cmd string) int {
	n := 0
	for _, line := range strings.Split(list, "\n") {
		var flags string
		inCmd := false
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "flags="); ok {
				flags = v
			}
			if f == "cmd="+cmd {
				inCmd = true
			}
		}
		if inCmd && strings.Contains(flags, "b") {
			n++
		}
	}
	return n
}

type wakeFetched struct {
	leases []queue.Lease
	err    error
}

func fetchAsync(ctx context.Context, b *redisbroker.Broker, q string) chan wakeFetched {
	ch := make(chan wakeFetched, 1)
	go func() {
		ls, err := b.Fetch(ctx, queue.FetchRequest{Queues: []string{q}, N: 1, Lease: 10 * time.Second, Wait: 10 * time.Second, Only: true})
		ch <- wakeFetched{ls, err}
	}()
	return ch
}

// TestWakeUpHandedBack (wq40, rvwq40 HIGH-1): two daemons on one Redis,
// A working queue a and B queue b, both blocked on the wake-up list, A
// first. Each job of b: its wake-up goes to A, the client blocked longest;
// A hands it back and B, blocked, takes the job (without the hand-back A
// swallowed the first and B returned nothing after its 10 s wait); B
// fetches again and blocks behind A, which blocked again after its short
// pause. Every b job reaches B's blocked
// fetch, the fourth too (a fetch that counted every hand-back of b in its
// call would drop it). B's fetches wait 10 s: a dropped wake-up shows as a
// fetch with no lease, not as a time (with the 250 ms window A dropped the
// second one although B was blocked).
func TestWakeUpHandedBack(t *testing.T) {
	srv, admin := newClient(t)
	a := wakeBroker(t, srv.Addr(), "hb2:")
	b := wakeBroker(t, srv.Addr(), "hb2:")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fa := fetchAsync(ctx, a, "a")
	blockedInBLPOP(t, admin, 1)
	for i := range 4 {
		fb := fetchAsync(ctx, b, "b")
		blockedInBLPOP(t, admin, 2)
		id := brokerPing(t, b, "b")
		got := <-fb
		if got.err != nil || len(got.leases) != 1 || got.leases[0].Job.ID != id {
			t.Fatalf("b job %d: B's blocked fetch = %d leases, %v; want the job (its wake-up dropped by A?)", i+1, len(got.leases), got.err)
		}
		blockedInBLPOP(t, admin, 1) // A blocked again, first in line
	}
	// A job of a ends A's fetch: A took nothing of b.
	ja := brokerPing(t, a, "a")
	if r := <-fa; r.err != nil || len(r.leases) != 1 || r.leases[0].Job.ID != ja {
		t.Errorf("A's fetch = %d leases, %v; want a's job %s alone", len(r.leases), r.err, ja)
	}
}

// brokerPing enqueues a ping job of queue q straight through broker b and returns its id.
func brokerPing(t *testing.T, b *redisbroker.Broker, q string) string {
	t.Helper()
	j := &queue.Job{ID: queue.NewID(), Queue: q, Type: "ping", MaxRetries: 1, Source: queue.SourceAPI}
	if err := b.Enqueue(context.Background(), queue.NewJob{Job: j}); err != nil {
		t.Fatal(err)
	}
	return j.ID
}

// TestWakeUpHandBackDoesNotSpin (wq40, rvwq40 HIGH-1; fix40): A alone, a
// wake-up of a queue outside its set in the list and no other fetcher
// blocked: A pops it and hands it back (pausing 2 ms for a fetcher of b
// about to block), finds it came back, pops it a second time and drops
// it, then blocks until its wait ends. Two pops of the wake-up (without a
// bound, A handed it back and popped it again up to its loop's bound, 96
// times; with a count of three hand-backs, four), and the wake-up is gone
// when A's fetch returns.
func TestWakeUpHandBackDoesNotSpin(t *testing.T) {
	srv, admin := newClient(t)
	a := wakeBroker(t, srv.Addr(), "spin:")
	ctx := context.Background()
	if err := admin.RPush(ctx, "spin:wake", "b").Err(); err != nil {
		t.Fatal(err)
	}
	before := blpopCalls(t, admin)
	ls, err := a.Fetch(ctx, queue.FetchRequest{Queues: []string{"a"}, N: 1, Lease: 10 * time.Second, Wait: time.Second, Only: true})
	if err != nil || len(ls) != 0 {
		t.Fatalf("Fetch = %d leases, %v; want none", len(ls), err)
	}
	// The last BLPOP is the block that timed out, not a pop.
	if n := blpopCalls(t, admin) - before - 1; n != 2 {
		t.Errorf("A's fetch popped the wake-up %d times; want 2 (the hand-back, the drop)", n)
	}
	if n := admin.LLen(ctx, "spin:wake").Val(); n != 0 {
		t.Errorf("wake-up list holds %d; want the foreign wake-up dropped", n)
	}
}

// blpopCalls is the server's count of BLPOP calls.
func blpopCalls(t *testing.T, admin *redis.Client) int {
	t.Helper()
	return commandCalls(t, admin, "blpop")
}

// TestWakeUpTakenLeavesNoMark (fix40, simp40 LOW-2): what is left of the
// hand-back count's reset. A (set a) and B (set b) blocked, A first. b1's
// wake-up goes to A, which hands it back to B: taken, it leaves no mark.
// B then busy (not fetching), b2's wake-up goes to A, which hands it back
// too (a second LPUSH), before it finds it came back and drops it at its
// next pop; had b1's hand-back marked b, A dropped b2's wake-up at once,
// never offering it.
func TestWakeUpTakenLeavesNoMark(t *testing.T) {
	srv, admin := newClient(t)
	a := wakeBroker(t, srv.Addr(), "mark:")
	b := wakeBroker(t, srv.Addr(), "mark:")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fa := fetchAsync(ctx, a, "a")
	blockedInBLPOP(t, admin, 1)
	fb := fetchAsync(ctx, b, "b")
	blockedInBLPOP(t, admin, 2)
	before := commandCalls(t, admin, "lpush")
	b1 := brokerPing(t, b, "b")
	if got := <-fb; got.err != nil || len(got.leases) != 1 || got.leases[0].Job.ID != b1 {
		t.Fatalf("B's fetch = %d leases, %v; want b1", len(got.leases), got.err)
	}
	blockedInBLPOP(t, admin, 1) // A blocked again
	brokerPing(t, b, "b")
	// A pops b2's wake-up and hands it back (the state polled, not slept
	// for), then pops it again and drops it.
	deadline := time.Now().Add(10 * time.Second)
	for commandCalls(t, admin, "lpush")-before < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	ja := brokerPing(t, b, "a")
	if r := <-fa; r.err != nil || len(r.leases) != 1 || r.leases[0].Job.ID != ja {
		t.Errorf("A's fetch = %d leases, %v; want a's job alone", len(r.leases), r.err)
	}
	if n := commandCalls(t, admin, "lpush") - before; n != 2 {
		t.Errorf("A handed back %d wake-ups; want 2 (b1's, taken by B, and b2's)", n)
	}
}

// commandCalls is the server's count of calls of cmd (INFO commandstats).
func commandCalls(t *testing.T, admin *redis.Client, cmd string) int {
	t.Helper()
	info, err := admin.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls="); ok {
			n, _ := strconv.Atoi(strings.Split(rest, ",")[0])
			return n
		}
	}
	return 0
}
