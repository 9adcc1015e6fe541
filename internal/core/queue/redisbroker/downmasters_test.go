package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
	"github.com/refrakt/refrakt/internal/redistest"
)

// sentTo counts the commands a cluster client sends to each node, by the
// node's address and the command's name, as the node clients send them
// (hooks of the real client, so pipelines and scripts count too).
type sentTo struct {
	mu sync.Mutex
	n  map[string]int // "addr cmd"
}

func (s *sentTo) add(addr string, cmds ...redis.Cmder) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cmds {
		s.n[addr+" "+strings.ToLower(c.Name())]++
	}
}

// count is how many commands but the background ones were sent to addr
// since the last reset; with them, by name.
func (s *sentTo) count(addr string) (int, map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	total, by := 0, map[string]int{}
	for k, n := range s.n {
		if a, cmd, _ := strings.Cut(k, " "); a == addr && !background[cmd] {
			total += n
			by[cmd] += n
		}
	}
	return total, by
}

// background are the commands a probe sends (PING), a new connection
// (HELLO, CLIENT SETINFO, AUTH, SELECT), the client's reload of the map of
// slots (CLUSTER SLOTS, to a node it picks) and the broker's sweep for
// unlisted queues (SCAN of every master, in the background of a tick,
// every 5 minutes and at the first): none is a fetch's or waits in a tick.
var background = map[string]bool{"ping": true, "hello": true, "client": true, "auth": true, "select": true, "cluster": true, "scan": true}

func (s *sentTo) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.n)
}

type nodeHook struct {
	addr string
	rec  *sentTo
}

func (h nodeHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h nodeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.rec.add(h.addr, cmd)
		return next(ctx, cmd)
	}
}

func (h nodeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.rec.add(h.addr, cmds...)
		return next(ctx, cmds)
	}
}

// watchedCluster is pausableCluster's cluster and broker on a client whose
// commands are counted per node.
func watchedCluster(t *testing.T) (*redistest.Cluster, *redisbroker.Broker, *queue.Service, *sentTo) {
	t.Helper()
	c := redistest.StartCluster(t, 3, "--cluster-node-timeout", "60000")
	rec := &sentTo{n: map[string]int{}}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Seeds(), ContextTimeoutEnabled: true,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
	rdb.OnNewNode(func(n *redis.Client) { n.AddHook(nodeHook{addr: n.Options().Addr, rec: rec}) })
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	b := redisbroker.New(rdb, redisbroker.Options{})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	return c, b, queue.NewService(queue.Deps{Broker: b}, queue.Config{}), rec
}

// addrOf is the address a node client of the cluster knows node by.
func addrOf(s *redistest.Server) string {
	_, port, _ := net.SplitHostPort(s.Addr())
	return net.JoinHostPort("127.0.0.1", port)
}

// plainMaster is the index in c.Nodes() of a master that holds neither the
// queue index nor the wake-up list (of three masters, one at least does).
func plainMaster(t *testing.T, c *redistest.Cluster) int {
	t.Helper()
	index := c.MasterFor(redisbroker.DefaultPrefix + "queues")
	wake := c.MasterFor(redisbroker.DefaultPrefix + "wake")
	for i, n := range c.Nodes() {
		if n != index && n != wake {
			return i
		}
	}
	t.Fatal("every master holds the index or the wake-up list")
	return -1
}

// TestClusterFetchWithAnotherMasterPaused (review fail30 F1): with one
// master stalled (SIGSTOP), fetches take the jobs of the other masters'
// queues and, once a fetch has found it failing, send it nothing but the
// probe that finds it back: every fetch waited a command timeout for it
// (the pipelined count of every queue's pending jobs, or a dequeue there,
// whose error ended the fetch), so the jobs of every queue waited as long
// as the stall.
func TestClusterFetchWithAnotherMasterPaused(t *testing.T) {
	c, b, svc, rec := watchedCluster(t)
	ctx := context.Background()
	names := queuePerMaster(t, c)
	stalled := plainMaster(t, c)
	// A job in every queue, the stalled master's too: every queue has
	// work, so a fetch has a reason to ask each master.
	for _, q := range names {
		if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: q}, queue.SourceAPI); err != nil {
			t.Fatal(err)
		}
	}
	paused := c.Nodes()[stalled]
	resume := paused.PauseUntil(t)
	want := 0
	for i, q := range names {
		if i == stalled {
			continue
		}
		for range 4 {
			if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: q}, queue.SourceAPI); err != nil {
				t.Fatalf("enqueue to %s (its master answering): %v", q, err)
			}
		}
		want += 5
	}
	got := map[string]int{}
	fetch := func() error {
		leases, err := b.Fetch(ctx, queue.FetchRequest{N: 3, Lease: time.Minute})
		for _, l := range leases {
			got[l.Job.Queue]++
		}
		return err
	}
	// The first fetches may meet the stalled master (and mark it).
	for range 2 {
		_ = fetch()
	}
	rec.reset()
	for i := range 6 {
		if err := fetch(); err != nil {
			t.Errorf("fetch %d after the stalled master was found: %v", i+3, err)
		}
	}
	sent, by := rec.count(addrOf(paused))
	resume()
	if sent > 0 {
		t.Errorf("6 fetches after the stalled master was found sent it %d commands (%v): each waits for it", sent, by)
	}
	taken := 0
	for i, q := range names {
		if i != stalled {
			taken += got[q]
		}
	}
	if taken != want {
		t.Errorf("fetched %d of the %d jobs of the masters answering (%v)", taken, want, got)
	}
	if got[names[stalled]] != 0 {
		t.Fatalf("fetched %d jobs of the stalled master's queue: the pause did not take", got[names[stalled]])
	}
	// Back, its queue is fetched again.
	var leases []queue.Lease
	deadline := time.Now().Add(10 * time.Second)
	for len(leases) == 0 && time.Now().Before(deadline) {
		ls, _ := b.Fetch(ctx, queue.FetchRequest{N: 1, Lease: time.Minute, Queues: []string{names[stalled]}})
		leases = ls
		time.Sleep(50 * time.Millisecond)
	}
	if len(leases) != 1 {
		t.Errorf("the resumed master's queue: %d jobs fetched, want its 1", len(leases))
	}
}

// TestClusterFetchWithWakeMasterPaused (review fail30 F1): with the master
// of the wake-up list stalled, a fetcher waiting for jobs does not block
// on the list again once it has found its master failing (each wait held
// it for a command timeout past its own), and takes jobs of the other
// masters' queues as they come.
func TestClusterFetchWithWakeMasterPaused(t *testing.T) {
	c, b, svc, rec := watchedCluster(t)
	ctx := context.Background()
	wake := c.MasterFor(redisbroker.DefaultPrefix + "wake")
	index := c.MasterFor(redisbroker.DefaultPrefix + "queues")
	q := ""
	for i, name := range queuePerMaster(t, c) {
		if n := c.Nodes()[i]; n != wake && n != index {
			q = name
		}
	}
	if q == "" {
		for i, name := range queuePerMaster(t, c) {
			if c.Nodes()[i] != wake {
				q = name
			}
		}
	}
	if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: q}, queue.SourceAPI); err != nil {
		t.Fatal(err)
	}
	if ls, err := b.Fetch(ctx, queue.FetchRequest{N: 1, Lease: time.Minute}); err != nil || len(ls) != 1 {
		t.Fatalf("fetch before the pause: %d jobs, %v", len(ls), err)
	}
	resume := wake.PauseUntil(t)
	// No job pending: the fetch waits on the wake-up list, and fails.
	_, _ = b.Fetch(ctx, queue.FetchRequest{N: 1, Lease: time.Minute, Wait: time.Second})
	rec.reset()
	for i := range 3 {
		if _, err := b.Fetch(ctx, queue.FetchRequest{N: 1, Lease: time.Minute, Wait: time.Second}); err != nil {
			t.Errorf("waiting fetch %d after the wake-up list's master was found stalled: %v", i+2, err)
		}
	}
	if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: q}, queue.SourceAPI); err != nil {
		t.Fatal(err)
	}
	ls, err := b.Fetch(ctx, queue.FetchRequest{N: 1, Lease: time.Minute, Wait: time.Second})
	sent, by := rec.count(addrOf(wake))
	resume()
	if err != nil || len(ls) != 1 {
		t.Errorf("a waiting fetch with a job of %s pending: %d jobs, %v", q, len(ls), err)
	}
	if by["blpop"] > 0 {
		t.Errorf("4 waiting fetches after the wake-up list's master was found stalled blocked on it %d times (%d commands in all: %v)", by["blpop"], sent, by)
	}
}

// TestClusterTickWithAnotherMasterPaused (review fail30 F1): ticks leave a
// stalled master alone once one found it failing: each tick's pipeline
// waited a command timeout for it, holding up the scheduled jobs and
// retries of every other master's queues.
func TestClusterTickWithAnotherMasterPaused(t *testing.T) {
	c, b, svc, rec := watchedCluster(t)
	ctx := context.Background()
	index := c.MasterFor(redisbroker.DefaultPrefix + "queues")
	names := queuePerMaster(t, c)
	stalled := -1
	for i, n := range c.Nodes() {
		if n != index {
			stalled = i
		}
	}
	for _, q := range names {
		if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: q}, queue.SourceAPI); err != nil {
			t.Fatal(err)
		}
	}
	paused := c.Nodes()[stalled]
	resume := paused.PauseUntil(t)
	_, _ = b.Tick(ctx) // may meet it, and mark it
	rec.reset()
	for i := range 3 {
		if _, err := b.Tick(ctx); err != nil {
			t.Errorf("tick %d after the stalled master was found: %v", i+2, err)
		}
	}
	sent, by := rec.count(addrOf(paused))
	resume()
	if sent > 0 {
		t.Errorf("3 ticks after the stalled master was found sent it %d commands (%v)", sent, by)
	}
}

// TestClusterRunNextOfAQueueOnAFailingMaster (review code30 C4): a fetch of
// queues the caller names, whose master is marked failing, answers an
// error, not "none pending": run-next of such a queue answered 404 "no
// pending job" while it held one.
func TestClusterRunNextOfAQueueOnAFailingMaster(t *testing.T) {
	c, b, svc, _ := watchedCluster(t)
	ctx := context.Background()
	names := queuePerMaster(t, c)
	stalled := plainMaster(t, c)
	q := names[stalled]
	if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: q}, queue.SourceAPI); err != nil {
		t.Fatal(err)
	}
	resume := c.Nodes()[stalled].PauseUntil(t)
	defer resume()
	_, _ = b.Fetch(ctx, queue.FetchRequest{N: 1, Lease: time.Minute}) // meets the paused master, and marks it
	_, err := svc.RunNext(ctx, q)
	if code := core.ErrorCode(err); code != core.CodeUnavailable {
		t.Errorf("run-next of %s, its master paused and marked failing: %v (code %q), want unavailable", q, err, code)
	}
}

// TestClusterWorkerSetPastAFailingMaster (wq40): a worker pool's fetch of
// its queue set (WORKER_QUEUES: FetchRequest.Only), one of whose queues is
// on a master marked failing, passes that queue over as a fetch of every
// queue does: it takes the other queues' jobs and, with none pending,
// answers no error, where the error of a named fetch (run-next's) made the
// pool back off from every queue of its set while the master was down.
func TestClusterWorkerSetPastAFailingMaster(t *testing.T) {
	c, b, svc, _ := watchedCluster(t)
	ctx := context.Background()
	names := queuePerMaster(t, c)
	stalled := plainMaster(t, c)
	q := names[stalled]
	other := names[(stalled+1)%len(names)]
	if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: q}, queue.SourceAPI); err != nil {
		t.Fatal(err)
	}
	resume := c.Nodes()[stalled].PauseUntil(t)
	defer resume()
	_, _ = b.Fetch(ctx, queue.FetchRequest{N: 1, Lease: time.Minute}) // meets the paused master, and marks it
	set := queue.FetchRequest{Queues: []string{q, other}, N: 1, Lease: time.Minute, Ordered: true, Only: true}
	if ls, err := b.Fetch(ctx, set); err != nil || len(ls) != 0 {
		t.Errorf("fetch of the set, none pending on the live master: %d jobs, %v; want none, no error", len(ls), err)
	}
	j, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: other}, queue.SourceAPI)
	if err != nil {
		t.Fatal(err)
	}
	if ls, err := b.Fetch(ctx, set); err != nil || len(ls) != 1 || ls[0].Job.ID != j.ID {
		t.Errorf("fetch of the set: %d jobs, %v; want %s's job %s", len(ls), err, other, j.ID)
	}
}

// TestClusterFetchPastABrokenQueue: an error that is an answer about one
// queue (its pending list replaced by a string: WRONGTYPE) neither stops a
// fetch before the other queues nor marks its master failing, so the jobs
// of the master's other queues are taken at every fetch.
func TestClusterFetchPastABrokenQueue(t *testing.T) {
	c, b, svc, _ := watchedCluster(t)
	ctx := context.Background()
	node := c.Nodes()[0]
	var same []string
	for i := 0; len(same) < 2; i++ {
		if q := fmt.Sprintf("b%d", i); c.MasterFor(redisbroker.DefaultPrefix+"q:{"+q+"}:pending") == node {
			same = append(same, q)
		}
	}
	broken, healthy := same[0], same[1]
	if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: broken}, queue.SourceAPI); err != nil {
		t.Fatal(err)
	}
	if ls, err := b.Fetch(ctx, queue.FetchRequest{N: 1, Lease: time.Minute, Queues: []string{broken}}); err != nil || len(ls) != 1 {
		t.Fatalf("fetch of %s: %d jobs, %v", broken, len(ls), err)
	}
	direct := redis.NewClient(&redis.Options{Addr: node.Addr()})
	defer direct.Close()
	if err := direct.Set(ctx, redisbroker.DefaultPrefix+"q:{"+broken+"}:pending", "not a list", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: healthy}, queue.SourceAPI); err != nil {
			t.Fatal(err)
		}
		ls, err := b.Fetch(ctx, queue.FetchRequest{N: 1, Lease: time.Minute})
		if len(ls) != 1 || ls[0].Job.Queue != healthy {
			t.Errorf("fetch %d with %s broken: %d jobs (%v), want the job of %s on the same master", i, broken, len(ls), err, healthy)
		}
	}
}

// TestFetchPastABrokenQueue is TestClusterFetchPastABrokenQueue on one
// server: a queue whose keys answer an error (WRONGTYPE) is passed over,
// and the fetch takes the other queues' jobs; it ended the fetch.
func TestFetchPastABrokenQueue(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: "brk:"})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	svc := queue.NewService(queue.Deps{Broker: b}, queue.Config{})
	for _, q := range []string{"a", "b"} {
		if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: q}, queue.SourceAPI); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.Set(ctx, "brk:q:{a}:pending", "not a list", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if i > 0 {
			if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: "b"}, queue.SourceAPI); err != nil {
				t.Fatal(err)
			}
		}
		ls, err := b.Fetch(ctx, queue.FetchRequest{N: 1, Lease: time.Minute})
		if len(ls) != 1 || ls[0].Job.Queue != "b" {
			t.Errorf("fetch %d with queue a broken: %d jobs (%v), want b's", i, len(ls), err)
		}
	}
}

// TestClusterFinishWithAnotherMasterPaused (review fail30b N2): once a
// master is found failing, the outcomes of its queues are answered
// unwritten without being sent, and the others' are written: each batch
// that held one waited a command timeout for it, and the pool's outcome
// writer fell behind until every worker waited on it.
func TestClusterFinishWithAnotherMasterPaused(t *testing.T) {
	c, b, svc, rec := watchedCluster(t)
	ctx := context.Background()
	names := queuePerMaster(t, c)
	stalled := plainMaster(t, c)
	healthy := (stalled + 1) % len(names)
	for _, q := range []string{names[stalled], names[healthy], names[healthy], names[healthy]} {
		if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", Queue: q}, queue.SourceAPI); err != nil {
			t.Fatal(err)
		}
	}
	var held, ok []queue.Lease
	for _, q := range []string{names[stalled], names[healthy]} {
		ls, err := b.Fetch(ctx, queue.FetchRequest{N: 3, Lease: time.Minute, Queues: []string{q}})
		if err != nil {
			t.Fatal(err)
		}
		if q == names[stalled] {
			held = ls
		} else {
			ok = ls
		}
	}
	if len(held) != 1 || len(ok) != 3 {
		t.Fatalf("fetched %d and %d jobs, want 1 and 3", len(held), len(ok))
	}
	outcome := func(l queue.Lease) queue.Outcome { return queue.Outcome{Ref: l.Ref(), Result: []byte(`"pong"`)} }
	paused := c.Nodes()[stalled]
	resume := paused.PauseUntil(t)
	defer resume()
	_, _ = b.Finish(ctx, []queue.Outcome{outcome(held[0]), outcome(ok[0])}) // meets it, and marks it
	rec.reset()
	for i := 1; i < 3; i++ {
		to, err := b.Finish(ctx, []queue.Outcome{outcome(held[0]), outcome(ok[i])})
		var fe *queue.FinishError
		if !errors.As(err, &fe) || !fe.Unwritten[0] || fe.Unwritten[1] || to[1] != queue.StatusSucceeded {
			t.Errorf("finish %d: %v, %v; want the paused master's outcome unwritten and the other succeeded", i, to, err)
		}
	}
	if sent, by := rec.count(addrOf(paused)); sent > 0 {
		t.Errorf("2 finishes after the paused master was found sent it %d commands (%v)", sent, by)
	}
}
