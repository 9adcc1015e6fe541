package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/redisstore"
	"github.com/refrakt/refrakt/internal/redistest"
)

// awaitPublished reads what the daemons published under prefix, waiting up
// to 5 s for it to appear.
func awaitPublished(t *testing.T, s *redisstore.Store) ratelimit.LimitSet {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, ok, err := s.PublishedLimits(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatal("no limits published after 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPublishedLimitsMatchConfigAPI: a daemon on Redis publishes exactly
// what GET /api/dev/rate-limits/config shows of its limits, with a TTL.
func TestPublishedLimitsMatchConfigAPI(t *testing.T) {
	r := redistest.Start(t)
	s, rdb := newRedisServer(t, r, func(c *config.Config) {
		c.Prefix = "pub:"
		c.RateLimitEnabled = false
		c.RunBurst, c.AssistantPerMinute, c.PremiumMultiplier = 7, 11, 2.5
	})
	ctx := context.Background()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(ctx) })

	reader := redisstore.New(rdb, redisstore.Options{Prefix: "pub:"})
	defer reader.Close()
	pub := awaitPublished(t, reader)
	got := limitsConfigResponse{Enabled: pub.Enabled, Limits: []limitJSON{}, Overrides: []overrideJSON{}}
	for _, l := range pub.Limits {
		got.Limits = append(got.Limits, toLimitJSON(l))
	}

	req := httptest.NewRequest(http.MethodGet, "/api/dev/rate-limits/config", nil)
	req.Header.Set("Authorization", "Bearer "+devToken)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	var want limitsConfigResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &want); rec.Code != http.StatusOK || err != nil {
		t.Fatalf("GET config: %d %v\n%s", rec.Code, err, rec.Body)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("published vs GET config (-api +published)\n%s", diff)
	}
	if want.Limits[0].Burst != 7 || want.Enabled {
		t.Errorf("config %+v, want run's burst 7 and limiting off", want)
	}
	if ttl := rdb.PTTL(ctx, "pub:rl:limits").Val(); ttl <= 0 || ttl > limitsPublishTTL {
		t.Errorf("TTL %v, want within (0, %v]", ttl, limitsPublishTTL)
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestPublishLimitsLoop: the publisher writes again after the key is lost;
// while Redis stalls it logs one warning, not one per attempt, and it stops
// within one write's timeout when told.
func TestPublishLimitsLoop(t *testing.T) {
	r := redistest.Start(t)
	s, rdb := newRedisServer(t, r, func(c *config.Config) { c.Prefix = "loop:" })
	var logged syncBuffer
	s.log = slog.New(slog.NewTextHandler(&logged, nil))
	store := redisstore.New(rdb, redisstore.Options{Prefix: "loop:"})
	defer store.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.publishLimits(ctx, store, 20*time.Millisecond) }()
	defer func() { cancel(); <-done }()

	if p := awaitPublished(t, store); len(p.Limits) != 5 || !p.Enabled {
		t.Fatalf("published %+v, want the 5 built-in limits, enabled", p)
	}
	if err := rdb.Del(context.Background(), "loop:rl:limits").Err(); err != nil {
		t.Fatal(err)
	}
	awaitPublished(t, store) // written again at the next tick

	r.Pause()
	t.Cleanup(r.Resume)
	deadline := time.Now().Add(limitsPublishTimeout + 5*time.Second)
	for !strings.Contains(logged.String(), "cannot publish the rate limits") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning while Redis stalls; log:\n%s", logged.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(limitsPublishTimeout + 100*time.Millisecond) // more failed writes
	if n := strings.Count(logged.String(), "cannot publish"); n != 1 {
		t.Errorf("%d warnings while Redis stalls, want 1 per %v:\n%s", n, backendLogEvery, logged.String())
	}

	// A write in flight ends by its own deadline at the latest (go-redis
	// honours deadlines, not cancellation, on a socket).
	start := time.Now()
	cancel()
	<-done
	if took := time.Since(start); took > limitsPublishTimeout+time.Second {
		t.Errorf("stopping took %v with a write in flight, want at most about %v", took, limitsPublishTimeout)
	}
}
