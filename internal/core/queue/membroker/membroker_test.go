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
