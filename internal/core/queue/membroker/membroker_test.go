package membroker_test

import (
	"testing"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/brokertest"
	"github.com/refrakt/refrakt/internal/core/queue/membroker"
)

func TestConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, o brokertest.Options) queue.Broker {
		return membroker.New(membroker.Options{Clock: o.Clock, HistoryLimit: o.HistoryLimit})
	})
}

// BenchmarkEndToEnd: 10 workers draining no-op jobs from the memory broker,
// the pool's own cost with no round trips (redisbroker has the same on
// Redis).
func BenchmarkEndToEnd(b *testing.B) {
	brokertest.EndToEnd(b, func(reg *queue.Registry) *queue.Service {
		return queue.NewService(queue.Deps{Broker: membroker.New(membroker.Options{}), Registry: reg}, queue.Config{Concurrency: 10})
	})
}
