package redisbroker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/brokertest"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
	"github.com/refrakt/refrakt/internal/redistest"
)

// The comparison with asynq lives in the bench module (bench/queue); these
// measure the broker alone on a throwaway redis-server.

func benchService(b *testing.B, conc int, reg *queue.Registry) *queue.Service {
	b.Helper()
	srv := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 32})
	b.Cleanup(func() { rdb.Close() })
	return queue.NewService(queue.Deps{Broker: redisbroker.New(rdb, redisbroker.Options{}), Registry: reg}, queue.Config{Concurrency: conc})
}

func BenchmarkEnqueue(b *testing.B) {
	svc := benchService(b, 0, nil)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "echo", Payload: json.RawMessage(`{"data":1}`)}, queue.SourceAPI); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

func BenchmarkEnqueueBatch100(b *testing.B) {
	svc := benchService(b, 0, nil)
	ctx := context.Background()
	reqs := make([]queue.EnqueueRequest, 100)
	for i := range reqs {
		reqs[i] = queue.EnqueueRequest{Type: "echo", Payload: json.RawMessage(`{"data":1}`)}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += len(reqs) {
		if _, err := svc.EnqueueBatch(ctx, reqs, queue.SourceAPI); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkFetchFinish takes pending jobs 10 at a time and records their
// success: the broker's share of running a job.
func BenchmarkFetchFinish(b *testing.B) {
	svc := benchService(b, 0, nil)
	ctx := context.Background()
	reqs := make([]queue.EnqueueRequest, 1000)
	for i := range reqs {
		reqs[i] = queue.EnqueueRequest{Type: "ping"}
	}
	for i := 0; i < b.N; i += len(reqs) {
		if _, err := svc.EnqueueBatch(ctx, reqs, queue.SourceAPI); err != nil {
			b.Fatal(err)
		}
	}
	br := svc.Broker()
	b.ResetTimer()
	for done := 0; done < b.N; {
		ls, err := br.Fetch(ctx, queue.FetchRequest{N: min(10, b.N-done), Lease: 30 * time.Second})
		if err != nil || len(ls) == 0 {
			b.Fatalf("fetch: %v (%d)", err, len(ls))
		}
		out := make([]queue.Outcome, len(ls))
		for i, l := range ls {
			out[i] = queue.Outcome{Ref: l.Ref(), Result: json.RawMessage(`"pong"`)}
		}
		if _, err := br.Finish(ctx, out); err != nil {
			b.Fatal(err)
		}
		done += len(ls)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkEndToEnd runs b.N no-op jobs through a pool of 10 workers, in
// one queue alone and beside 99 other queues with no job ready.
func BenchmarkEndToEnd(b *testing.B) {
	for _, queues := range []int{1, 100} {
		b.Run(fmt.Sprintf("queues=%d", queues), func(b *testing.B) { endToEnd(b, queues) })
	}
}

func endToEnd(b *testing.B, queues int) {
	brokertest.EndToEnd(b, func(reg *queue.Registry) *queue.Service {
		svc := benchService(b, 10, reg)
		addIdleQueues(b, svc, queues-1)
		return svc
	})
}

// BenchmarkPickupLatency: enqueue → handler start on an idle queue, alone
// and beside 99 other queues that hold only scheduled jobs (none ready).
func BenchmarkPickupLatency(b *testing.B) {
	for _, queues := range []int{1, 100} {
		b.Run(fmt.Sprintf("queues=%d", queues), func(b *testing.B) { pickupLatency(b, queues) })
	}
}

func pickupLatency(b *testing.B, queues int) {
	started := make(chan time.Time, 1)
	reg := queue.NewRegistry()
	_ = reg.Register("probe", queue.Handler{Run: func(context.Context, json.RawMessage) (json.RawMessage, error) {
		started <- time.Now()
		return nil, nil
	}})
	svc := benchService(b, 4, reg)
	ctx := context.Background()
	addIdleQueues(b, svc, queues-1)
	p := queue.NewPool(svc)
	p.Start()
	defer p.Shutdown(context.Background())
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		time.Sleep(5 * time.Millisecond)
		t0 := time.Now()
		if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "probe"}, queue.SourceAPI); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-started).Sub(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
}

// addIdleQueues makes n more queues, each holding one job scheduled an hour
// ahead: they exist, and none has a job ready.
func addIdleQueues(tb testing.TB, svc *queue.Service, n int) {
	tb.Helper()
	for i := range n {
		enqueuePing(tb, svc, fmt.Sprintf("idle-%d", i), 3_600_000)
	}
}

// enqueuePing enqueues a ping in queue q, delayed by delayMS (0: ready).
func enqueuePing(tb testing.TB, svc *queue.Service, q string, delayMS int64) *queue.Job {
	tb.Helper()
	j, err := svc.Enqueue(context.Background(), queue.EnqueueRequest{Type: "ping", Queue: q, DelayMS: delayMS}, queue.SourceAPI)
	if err != nil {
		tb.Fatal(err)
	}
	return j
}

// BenchmarkListFinished lists the latest succeeded job (?status=succeeded&limit=1)
// across 100 queues of 200 finished jobs each (the defaults), and in one
// queue of 100,000; and, the worst case, cancelled jobs in that queue, which
// has none. redis-cpu-µs/op is the server's CPU per listing.
func BenchmarkListFinished(b *testing.B) {
	for _, c := range []struct {
		queues, history int
		st              queue.Status
	}{{100, 200, queue.StatusSucceeded}, {1, 100_000, queue.StatusSucceeded}, {1, 100_000, queue.StatusCancelled}} {
		b.Run(fmt.Sprintf("queues=%d/history=%d/%s", c.queues, c.history, c.st), func(b *testing.B) {
			srv := redistest.Start(b)
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
			b.Cleanup(func() { rdb.Close() })
			fillHistory(b, rdb, c.queues, c.history)
			br := redisbroker.New(rdb, redisbroker.Options{HistoryLimit: c.history})
			ctx := context.Background()
			if err := br.Load(ctx); err != nil {
				b.Fatal(err)
			}
			f := queue.Filter{Status: c.st, Limit: 1}
			cpu := serverCPU(b, rdb)
			b.ResetTimer()
			for range b.N {
				jobs, err := br.List(ctx, f)
				if err != nil || len(jobs) != map[queue.Status]int{queue.StatusSucceeded: 1}[c.st] {
					b.Fatalf("List: %d jobs, %v", len(jobs), err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((serverCPU(b, rdb)-cpu).Microseconds())/float64(b.N), "redis-cpu-µs/op")
		})
	}
}

// fillHistory writes n queues of perQueue succeeded jobs each straight into
// Redis (writeFinished), one millisecond apart.
func fillHistory(tb testing.TB, rdb *redis.Client, n, perQueue int) {
	tb.Helper()
	at := time.Now().Add(-time.Hour).UnixMilli()
	for qi := range n {
		jobs := make([]finished, perQueue)
		for i := range jobs {
			at++
			jobs[i] = finished{queue.NewID(), queue.StatusSucceeded, at}
		}
		writeFinished(tb, rdb, fmt.Sprintf("hist%03d", qi), jobs)
	}
}

// finished is one job of a history written by writeFinished.
type finished struct {
	id string
	st queue.Status
	at int64 // finished_at, unix ms
}

// writeFinished writes finished jobs of queue q straight into Redis, in the
// broker's layout (scripts.go) under the default prefix: far faster than
// running them.
func writeFinished(tb testing.TB, rdb *redis.Client, q string, jobs []finished) {
	tb.Helper()
	ctx := context.Background()
	p := redisbroker.DefaultPrefix
	pipe := rdb.Pipeline()
	flush := func(force bool) {
		if force || pipe.Len() >= 3000 {
			if _, err := pipe.Exec(ctx); err != nil {
				tb.Fatal(err)
			}
		}
	}
	pipe.SAdd(ctx, p+"queues", q)
	pipe.HIncrBy(ctx, p+"q:{"+q+"}:stats", "enqueued", int64(len(jobs)))
	for _, j := range jobs {
		at := j.at
		pipe.HSet(ctx, p+"q:{"+q+"}:j:"+j.id, "id", j.id, "queue", q, "type", "ping", "status", string(j.st), "attempts", 1,
			"retries", 0, "max_retries", 3, "interval", 0, "run_at", at-5, "enqueued_at", at-5, "ready_at", at-5,
			"started_at", at-1, "finished_at", at, "result", `"pong"`, "source", "api", "token", 1)
		pipe.ZAdd(ctx, p+"q:{"+q+"}:history", redis.Z{Score: float64(at), Member: j.id})
		flush(false)
	}
	flush(true)
}

// BenchmarkGet reads a job by id (GET /run/{id}) among 100 and 10,000
// queues, one known id (in the last queue of the index's sorted order) and
// one unknown: the public endpoint's cost. redis-cpu-µs/op is the server's
// CPU per Get.
func BenchmarkGet(b *testing.B) {
	for _, queues := range []int{100, 10_000} {
		srv := redistest.Start(b)
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		b.Cleanup(func() { rdb.Close() })
		fillHistory(b, rdb, queues, 1)
		br := redisbroker.New(rdb, redisbroker.Options{})
		ctx := context.Background()
		if err := br.Load(ctx); err != nil {
			b.Fatal(err)
		}
		last := fmt.Sprintf("hist%03d", queues-1)
		known, err := br.List(ctx, queue.Filter{Queue: last, Status: queue.StatusSucceeded, Limit: 1})
		if err != nil || len(known) != 1 {
			b.Fatalf("List: %v %v", known, err)
		}
		for _, c := range []struct {
			name, id string
		}{{"known", known[0].ID}, {"unknown", queue.NewID()}} {
			b.Run(fmt.Sprintf("queues=%d/%s", queues, c.name), func(b *testing.B) {
				_, _ = br.Get(ctx, c.id) // the broker's first read of the index is not what this measures
				cpu := serverCPU(b, rdb)
				b.ResetTimer()
				for range b.N {
					_, err := br.Get(ctx, c.id)
					if (err == nil) != (c.name == "known") {
						b.Fatalf("Get: %v", err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64((serverCPU(b, rdb)-cpu).Microseconds())/float64(b.N), "redis-cpu-µs/op")
			})
		}
	}
}

// BenchmarkFirstIndexRead is a new broker's first read of an index of
// 10,000 queues (Queues): what a daemon starting on a Redis of many queues,
// or the CLI over --redis, pays once.
func BenchmarkFirstIndexRead(b *testing.B) {
	srv := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	names := make([]any, 10_000)
	for i := range names {
		names[i] = fmt.Sprintf("q%05d", i)
	}
	if err := rdb.SAdd(ctx, "refrakt:queues", names...).Err(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		qs, err := redisbroker.New(rdb, redisbroker.Options{}).Queues(ctx)
		if err != nil || len(qs) != len(names) {
			b.Fatalf("Queues: %d names, %v", len(qs), err)
		}
	}
}

// BenchmarkRequeueDead requeues a queue's 10,000 dead jobs (JOB_HISTORY
// 10,000): one op is the whole RequeueDead, 20 script calls of 500. The
// jobs die again between ops, untimed. redis-cpu-ms/op is the server's CPU
// per op, and longest-script-µs the longest one script call took
// (SLOWLOG's own measure), which is how long Redis is held at once.
func BenchmarkRequeueDead(b *testing.B) {
	srv := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	const n, q = 10000, "bench-dead"
	br := redisbroker.New(rdb, redisbroker.Options{HistoryLimit: n})
	jobs := make([]queue.NewJob, n)
	for i := range jobs {
		jobs[i] = queue.NewJob{Job: &queue.Job{ID: queue.NewID(), Queue: q, Type: "fail", Source: queue.SourceAPI}}
	}
	if err := br.Enqueue(ctx, jobs...); err != nil {
		b.Fatal(err)
	}
	kill := func() {
		ls, err := br.Fetch(ctx, queue.FetchRequest{Queues: []string{q}, N: n, Lease: time.Minute})
		if err != nil || len(ls) != n {
			b.Fatalf("fetch: %d, %v", len(ls), err)
		}
		outs := make([]queue.Outcome, n)
		for i, l := range ls {
			outs[i] = queue.Outcome{Ref: l.Ref(), Err: "x"}
		}
		if _, err := br.Finish(ctx, outs); err != nil {
			b.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // the cut is the millisecond before the call
	}
	if err := rdb.ConfigSet(ctx, "slowlog-log-slower-than", "0").Err(); err != nil {
		b.Fatal(err)
	}
	var cpu time.Duration
	var longest int64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		kill()
		rdb.SlowLogReset(ctx)
		before := serverCPU(b, rdb)
		b.StartTimer()
		r, err := br.RequeueDead(ctx, q, time.Time{}, n)
		b.StopTimer()
		cpu += serverCPU(b, rdb) - before
		if err != nil || len(r.IDs) != n {
			b.Fatalf("RequeueDead: %d, %v", len(r.IDs), err)
		}
		logs, err := rdb.SlowLogGet(ctx, 128).Result()
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range logs {
			if len(l.Args) > 0 && strings.HasPrefix(strings.ToLower(l.Args[0]), "eval") {
				longest = max(longest, l.Duration.Microseconds())
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "redis-cpu-ms/op")
	b.ReportMetric(float64(longest), "longest-script-µs")
}
