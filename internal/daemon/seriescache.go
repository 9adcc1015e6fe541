package daemon

import (
	"maps"
	"sync"
	"sync/atomic"
)

// seriesCache keeps the Prometheus series (counters, observers) of each
// label set seen, so the hot path looks them up in a plain map instead of
// hashing label values in the vector on every request. Reads take no lock:
// the map is immutable and replaced by a copy when a new label set shows
// up, which stops once each one has been seen (the label sets are bounded:
// route patterns, status codes, limit and scope names).
type seriesCache[K comparable, V any] struct {
	build func(K) V
	mu    sync.Mutex
	seen  atomic.Pointer[map[K]V]
}

func newSeriesCache[K comparable, V any](build func(K) V) *seriesCache[K, V] {
	c := &seriesCache[K, V]{build: build}
	c.seen.Store(&map[K]V{})
	return c
}

// get returns k's series, creating it the first time.
func (c *seriesCache[K, V]) get(k K) V {
	if v, ok := (*c.seen.Load())[k]; ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.seen.Load()
	if v, ok := old[k]; ok {
		return v
	}
	v := c.build(k)
	next := make(map[K]V, len(old)+1)
	maps.Copy(next, old)
	next[k] = v
	c.seen.Store(&next)
	return v
}
