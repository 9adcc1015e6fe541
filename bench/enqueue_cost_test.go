// The cost of one enqueue from one caller, next to the floor: a bare PING
// round trip from go-redis. Each sub-benchmark reports, besides ns/op, the
// round trips and Redis commands per op (INFO stats; calls inside scripts
// included) and redis-server's CPU per op (user+sys), so the share of the
// server and of the round trip can be told apart.
//
//	cd bench && go test -run '^$' -bench 'EnqueueCost' -benchtime 20000x -count 3

package bench

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
)

func BenchmarkEnqueueCost(b *testing.B) {
	b.Run("impl=ping", func(b *testing.B) {
		addr := queueServer(b)
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		defer rdb.Close()
		ctx := context.Background()
		measureCost(b, addr, func(int) error { return rdb.Ping(ctx).Err() })
	})
	b.Run("impl=asynq", func(b *testing.B) {
		addr := queueServer(b)
		queueFlush(b, addr, asynqDB).Close()
		client := asynq.NewClient(asynq.RedisClientOpt{Addr: addr, DB: asynqDB})
		defer client.Close()
		measureCost(b, addr, func(i int) error {
			_, err := client.Enqueue(asynq.NewTask("task", queuePayload(i)))
			return err
		})
	})
	b.Run("impl=refrakt", func(b *testing.B) {
		addr := queueServer(b)
		svc, rdb := newRefraktQueue(b, addr, 0, nil)
		defer rdb.Close()
		ctx := context.Background()
		measureCost(b, addr, func(i int) error {
			_, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "echo", Payload: queuePayload(i)}, queue.SourceAPI)
			return err
		})
	})
}

// measureCost runs op b.N times after one warm-up call (connections made,
// scripts loaded, queue known) and reports ops/s, round-trips/op (the
// server's read events: one per request or pipeline that arrives whole),
// redis-calls/op (every command the server ran, those inside scripts
// included) and redis-cpu-us/op.
func measureCost(b *testing.B, addr string, op func(i int) error) {
	b.Helper()
	if err := op(-1); err != nil {
		b.Fatal(err)
	}
	admin := redis.NewClient(&redis.Options{Addr: addr})
	defer admin.Close()
	cpu0 := redisCPU(b, addr)
	before := serverStats(b, admin)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := op(i); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	after := serverStats(b, admin)
	cpu := redisCPU(b, addr) - cpu0
	n := float64(b.N)
	b.ReportMetric(n/b.Elapsed().Seconds(), "ops/s")
	// The second INFO of admin is one read and one command of its own.
	b.ReportMetric(float64(after["total_reads_processed"]-before["total_reads_processed"]-1)/n, "round-trips/op")
	b.ReportMetric(float64(after["total_commands_processed"]-before["total_commands_processed"]-1)/n, "redis-calls/op")
	b.ReportMetric(cpu*1e6/n, "redis-cpu-us/op")
}

// serverStats returns the integer fields of INFO stats.
func serverStats(b *testing.B, rdb *redis.Client) map[string]int64 {
	b.Helper()
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				out[k] = n
			}
		}
	}
	return out
}
