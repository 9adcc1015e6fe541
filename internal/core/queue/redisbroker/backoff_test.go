package redisbroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
)

// TestPublishedBackoff (rvbackoff36 M1): the CLI over Redis follows only a
// backoff a daemon's settings could give (1ms ≤ base ≤ cap ≤ 168h), as
// PublishSettings writes it; anything else under the key (garbage, another
// program's value, a cap that made the doubling overflow) is no backoff,
// and the CLI falls back to its own settings.
func TestPublishedBackoff(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	const prefix, key = "pb:", "pb:job-retry"
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: prefix})
	if _, ok, err := redisbroker.PublishedBackoff(ctx, rdb, prefix); ok || err != nil {
		t.Fatalf("nothing published: ok %v, %v; want none", ok, err)
	}
	want := queue.Backoff{Base: time.Hour, Cap: queue.MaxBackoffCap, Jitter: queue.DefaultBackoff.Jitter}
	if err := b.PublishSettings(ctx, queue.AdmissionConfig{}, want, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := redisbroker.PublishedBackoff(ctx, rdb, prefix); !ok || err != nil || got != want {
		t.Fatalf("published %+v: got %+v, ok %v, %v", want, got, ok, err)
	}
	for _, bad := range []string{
		`not json`,
		`{"base_ns":0,"max_ns":1000000}`,
		`{"base_ns":1,"max_ns":2}`,                               // under 1ms
		`{"base_ns":3600000000000,"max_ns":60000000000}`,         // cap under the base
		`{"base_ns":3600000000000,"max_ns":9223372036854775807}`, // past 168h
		`{"base_ns":-5,"max_ns":-1}`,
	} {
		if err := rdb.Set(ctx, key, bad, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := redisbroker.PublishedBackoff(ctx, rdb, prefix); ok || err != nil {
			t.Errorf("%s under the key: %+v, ok %v, %v; want none followed", bad, got, ok, err)
		}
	}
}

// TestPublishedJobTimeout (timeout37): a daemon's JOB_TIMEOUT is published
// with its other settings, and the CLI over Redis follows only a value a
// daemon's settings could give (1ms to 168h); a publish without one (0)
// publishes none.
func TestPublishedJobTimeout(t *testing.T) {
	_, rdb := newClient(t)
	ctx := context.Background()
	const prefix, key = "pt:", "pt:job-timeout"
	if err := redisbroker.New(rdb, redisbroker.Options{Prefix: prefix}).PublishSettings(ctx, queue.AdmissionConfig{}, queue.DefaultBackoff, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	if d, ok, err := redisbroker.PublishedJobTimeout(ctx, rdb, prefix); ok || err != nil {
		t.Fatalf("a publish without a JOB_TIMEOUT published %s (ok %v, %v); want none", d, ok, err)
	}
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: prefix})
	if err := b.PublishSettings(ctx, queue.AdmissionConfig{}, queue.DefaultBackoff, 90*time.Second, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := redisbroker.PublishedJobTimeout(ctx, rdb, prefix); !ok || err != nil || got != 90*time.Second {
		t.Fatalf("published 1m30s: got %s, ok %v, %v", got, ok, err)
	}
	for _, bad := range []string{`not json`, `{"timeout_ns":0}`, `{"timeout_ns":999999}`, `{"timeout_ns":604800000000001}`, `{"timeout_ns":-1}`} {
		if err := rdb.Set(ctx, key, bad, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := redisbroker.PublishedJobTimeout(ctx, rdb, prefix); ok || err != nil {
			t.Errorf("%s under the key: %s, ok %v, %v; want none followed", bad, got, ok, err)
		}
	}
}

// TestPublishedJobSettings: the CLI over Redis reads the daemons'
// JOB_HISTORY, backoff and JOB_TIMEOUT in one round trip, each in place of
// its own only when a daemon published one it could have (garbage under a
// key leaves that one setting its own).
func TestPublishedJobSettings(t *testing.T) {
	_, rdb := newClient(t)
	hook := &cmdHook{}
	rdb.AddHook(hook)
	ctx := context.Background()
	const prefix = "pj:"
	own := redisbroker.JobSettings{History: 7, Backoff: queue.DefaultBackoff, JobTimeout: time.Minute}
	var got redisbroker.JobSettings
	var err error
	_, trips := costOf(t, rdb, hook, func() { got, err = redisbroker.PublishedJobSettings(ctx, rdb, prefix, own) })
	if err != nil || got != own || trips != 1 {
		t.Fatalf("nothing published: %+v, %v in %d round trips; want its own, in 1", got, err, trips)
	}
	bo := queue.Backoff{Base: time.Second, Cap: time.Hour, Jitter: queue.DefaultBackoff.Jitter}
	b := redisbroker.New(rdb, redisbroker.Options{Prefix: prefix, HistoryLimit: 50})
	if err := b.PublishSettings(ctx, queue.AdmissionConfig{}, bo, 90*time.Second, time.Minute); err != nil {
		t.Fatal(err)
	}
	_, trips = costOf(t, rdb, hook, func() { got, err = redisbroker.PublishedJobSettings(ctx, rdb, prefix, own) })
	if want := (redisbroker.JobSettings{History: 50, Backoff: bo, JobTimeout: 90 * time.Second}); err != nil || got != want || trips != 1 {
		t.Fatalf("published: %+v, %v in %d round trips; want %+v, in 1", got, err, trips, want)
	}
	if err := rdb.Set(ctx, prefix+"job-retry", `not json`, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := redisbroker.PublishedJobSettings(ctx, rdb, prefix, own); err != nil || got.Backoff != own.Backoff || got.History != 50 {
		t.Errorf("garbage backoff: %+v, %v; want its own backoff, the daemons' history", got, err)
	}
}
