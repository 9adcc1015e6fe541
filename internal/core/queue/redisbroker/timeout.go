package redisbroker

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/redispipe"
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
	b, found, err := getPublished(ctx, rdb, jobTimeoutKey(prefix))
	if !found {
		return 0, false, err
	}
	d, ok := jobTimeoutFrom(b)
	return d, ok, nil
}

// jobTimeoutFrom decodes a published JOB_TIMEOUT: only one a daemon's
// settings could give.
func jobTimeoutFrom(b []byte) (time.Duration, bool) {
	var p publishedJobTimeout
	if json.Unmarshal(b, &p) != nil || p.TimeoutNS < int64(queue.MinJobTimeout) || p.TimeoutNS > int64(queue.MaxJobTimeout) {
		return 0, false
	}
	return time.Duration(p.TimeoutNS), true
}

// JobSettings are the daemons' settings the CLI over Redis follows when it
// runs jobs itself: JOB_HISTORY (the scripts trim each queue's history to
// it), the retry backoff and JOB_TIMEOUT.
type JobSettings struct {
	History    int
	Backoff    queue.Backoff
	JobTimeout time.Duration
}

// PublishedJobSettings returns own with each setting the daemons on rdb
// published (within its TTL, and a value a daemon's settings could give)
// in place of own's, read in one round trip: PublishedHistoryLimit,
// PublishedBackoff and PublishedJobTimeout together.
func PublishedJobSettings(ctx context.Context, rdb redis.UniversalClient, prefix string, own JobSettings) (JobSettings, error) {
	pipe := rdb.Pipeline()
	history := pipe.Get(ctx, historyLimitKey(prefix))
	backoff := pipe.Get(ctx, backoffKey(prefix))
	timeout := pipe.Get(ctx, jobTimeoutKey(prefix))
	if _, err := redispipe.Exec(ctx, pipe); err != nil && !errors.Is(err, redis.Nil) {
		return own, err
	}
	for _, c := range []*redis.StringCmd{history, backoff, timeout} {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return own, err
		}
	}
	if n, ok := historyFrom(history.Val()); ok {
		own.History = n
	}
	if bo, ok := backoffFrom([]byte(backoff.Val())); ok {
		own.Backoff = bo
	}
	if d, ok := jobTimeoutFrom([]byte(timeout.Val())); ok {
		own.JobTimeout = d
	}
	return own, nil
}
