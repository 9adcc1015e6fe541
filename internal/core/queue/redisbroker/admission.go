package redisbroker

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// admissionKey holds the admission bounds (QUEUE_MAX_PENDING,
// QUEUE_MAX_AGE_SECONDS) a daemon on this Redis last published (see
// PublishSettings).
func admissionKey(prefix string) string { return prefix + "queue-admission" }

// publishedAdmission is the value under admissionKey.
type publishedAdmission struct {
	MaxPending int   `json:"max_pending"`
	MaxAgeMS   int64 `json:"max_age_ms"`
}

// PublishedAdmission returns the admission bounds a daemon on rdb last
// published, and false when none did within its TTL (or the value is not
// one PublishSettings writes). Only MaxPending and MaxAge are set.
func PublishedAdmission(ctx context.Context, rdb redis.UniversalClient, prefix string) (queue.AdmissionConfig, bool, error) {
	b, found, err := getPublished(ctx, rdb, admissionKey(prefix))
	var p publishedAdmission
	if !found || json.Unmarshal(b, &p) != nil || p.MaxPending < 0 || p.MaxAgeMS < 0 {
		return queue.AdmissionConfig{}, false, err
	}
	return queue.AdmissionConfig{MaxPending: p.MaxPending, MaxAge: time.Duration(p.MaxAgeMS) * time.Millisecond}, true, nil
}

// getPublished reads what a daemon published under key (see
// PublishSettings): found false, with no error, when nothing is there
// within its TTL.
func getPublished(ctx context.Context, rdb redis.UniversalClient, key string) (b []byte, found bool, err error) {
	b, err = rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	return b, err == nil, err
}
