package redisbroker

import (
	"context"
	"encoding/json"
	"errors"
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
	v, err := rdb.Get(ctx, backoffKey(prefix)).Bytes()
	if errors.Is(err, redis.Nil) {
		return queue.Backoff{}, false, nil
	}
	if err != nil {
		return queue.Backoff{}, false, err
	}
	var p publishedBackoff
	// Only what a daemon's settings could be: anything else (another
	// program's value, an earlier format) is no backoff to follow.
	if err := json.Unmarshal(v, &p); err != nil || p.BaseNS < int64(queue.MinBackoffBase) || p.MaxNS < p.BaseNS || p.MaxNS > int64(queue.MaxBackoffCap) {
		return queue.Backoff{}, false, nil
	}
	return queue.Backoff{Base: time.Duration(p.BaseNS), Cap: time.Duration(p.MaxNS), Jitter: queue.DefaultBackoff.Jitter}, true, nil
}
