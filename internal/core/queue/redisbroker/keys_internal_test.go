package redisbroker

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestKeyCacheHoldsOnlyIndexedQueues: asking about a queue name (List,
// Fetch, Stats) does not grow the key cache; a queue of the index is cached.
func TestKeyCacheHoldsOnlyIndexedQueues(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer rdb.Close()
	b := New(rdb, Options{Prefix: "kc:"})
	if k := b.keys("asked"); k.pending != "kc:q:{asked}:pending" || k.enqueue[4] != "kc:wake" {
		t.Fatalf("keys(asked) = %+v", k)
	}
	if _, ok := b.keyCache.Load("asked"); ok {
		t.Error("a queue only asked about was cached")
	}
	b.markKnown("indexed")
	if _, ok := b.keyCache.Load("indexed"); !ok {
		t.Error("a queue of the index was not cached")
	}
	if k := b.keys("indexed"); b.keys("indexed") != k {
		t.Error("keys of an indexed queue built again")
	}
}
