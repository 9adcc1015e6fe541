package redisbroker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/brokertest"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
	"github.com/refrakt/refrakt/internal/redistest"
)

// newClient starts a throwaway redis-server and returns a client of it.
func newClient(t *testing.T) (*redistest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return srv, rdb
}

func TestConformance(t *testing.T) {
	_, rdb := newClient(t)
	var n atomic.Int64
	brokertest.Run(t, func(t *testing.T, o brokertest.Options) queue.Broker {
		// Each test gets its own prefix: the same server, separate keys.
		b := redisbroker.New(rdb, redisbroker.Options{Prefix: fmt.Sprintf("t%d:", n.Add(1)), Clock: o.Clock, HistoryLimit: o.HistoryLimit})
		if err := b.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		return b
	})
}
