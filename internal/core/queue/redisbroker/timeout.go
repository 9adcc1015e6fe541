package redisbroker

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// jobTimeoutKey holds the JOB_TIMEOUT a daemon on this Redis last
// published (see PublishSettings).
func jobTimeoutKey(prefix string) string { return prefix + "job-timeout" }

// publishedJobTimeout is the value under jobTimeoutKey, in nanoseconds.
type publishedJobTimeout struct {
	TimeoutNS int64 `json:"timeout_ns"`
}

// PublishedJobTimeout returns the JOB_TIMEOUT a daemon on rdb last
// published, and false when none did within its TTL (or the value is not
// one a daemon's settings could give): the CLI over Redis, which runs
// jobs itself, bounds a job without a timeout_ms of its own as the
// daemons would.
func PublishedJobTimeout(ctx context.Context, rdb redis.UniversalClient, prefix string) (time.Duration, bool, error) {
	var p publishedJobTimeout
	if ok, err := readPublished(ctx, rdb, jobTimeoutKey(prefix), &p); !ok || p.TimeoutNS < int64(queue.MinJobTimeout) || p.TimeoutNS > int64(queue.MaxJobTimeout) {
		return 0, false, err
	}
	return time.Duration(p.TimeoutNS), true, nil
}
