package redisbroker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// backoffKey holds the retry backoff (JOB_RETRY_BASE, JOB_RETRY_MAX) a
// daemon on this Redis last published (see PublishSettings).
func backoffKey(prefix string) string { return prefix + "job-retry" }

// publishedBackoff is the value under backoffKey, in nanoseconds: a base
// need not be a whole number of milliseconds.
type publishedBackoff struct {
	BaseNS int64 `json:"base_ns"`
	MaxNS  int64 `json:"max_ns"`
}

// PublishedBackoff returns the retry backoff a daemon on rdb last
// published, with queue.DefaultBackoff's jitter, and false when none did
// within its TTL (or the value is not one PublishSettings writes): the CLI
// over Redis, which runs jobs itself, retries a failed one as the daemons
// would.
func PublishedBackoff(ctx context.Context, rdb redis.UniversalClient, prefix string) (queue.Backoff, bool, error) {
	b, found, err := getPublished(ctx, rdb, backoffKey(prefix))
	if !found {
		return queue.Backoff{}, false, err
	}
	bo, ok := backoffFrom(b)
	return bo, ok, nil
}

// backoffFrom decodes a published backoff: only what a daemon's settings
// could be; anything else (another program's value, an earlier format) is
// no backoff to follow.
func backoffFrom(b []byte) (queue.Backoff, bool) {
	var p publishedBackoff
	if json.Unmarshal(b, &p) != nil || p.BaseNS < int64(queue.MinBackoffBase) || p.MaxNS < p.BaseNS || p.MaxNS > int64(queue.MaxBackoffCap) {
		return queue.Backoff{}, false
	}
	return queue.Backoff{Base: time.Duration(p.BaseNS), Cap: time.Duration(p.MaxNS), Jitter: queue.DefaultBackoff.Jitter}, true
}
