package redisstore_test

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/redisstore"
	"github.com/refrakt/refrakt/internal/core/ratelimit/storetest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// newClient connects to srv and closes the client when the test ends.
func newClient(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// newStore returns a store on rdb under a prefix of its own, closed when the
// test ends.
func newStore(t testing.TB, rdb redis.UniversalClient, o redisstore.Options) *redisstore.Store {
	t.Helper()
	s := redisstore.New(rdb, o)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	rdb := newClient(t, srv)
	n := 0
	storetest.Run(t, func(t *testing.T, clock ratelimit.Clock) ratelimit.Store {
		n++
		return newStore(t, rdb, redisstore.Options{Prefix: "t" + string(rune('a'+n%26)) + string(rune('a'+n/26)) + ":", Clock: clock})
	})
}
