package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/snapshot"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestSnapshotListsBounded checks that no list of the snapshot, nor of
// GET /api/obs/rate-limits, grows with the overrides or the queues that
// clients and operators create: at 10k overrides and 250 queues the
// snapshot lists 50 overrides (the broadest first) with the total, and 100
// queues, the 99 busiest and the rest summed under "_other".
func TestSnapshotListsBounded(t *testing.T) {
	r := redistest.Start(t)
	s, client := newRedisServer(t, r, func(c *config.Config) { c.QueueMaxPending = 3 })
	ctx := context.Background()

	// 10k overrides written straight to the store (as many daemons and
	// CLIs would have set them), two of them broad.
	const overrides = 10_000
	pipe := client.Pipeline()
	key := s.cfg.Prefix + "rl:overrides"
	stored := `{"capacity":5,"window_ms":60000,"mode":"enforce","created_at_ms":1795600000000}`
	for i := range overrides - 2 {
		pipe.HSet(ctx, key, fmt.Sprintf("tenant-meta:ip:10.%d.%d.%d", i>>16&255, i>>8&255, i&255), stored)
	}
	pipe.HSet(ctx, key, "run", stored)
	pipe.HSet(ctx, key, "tenant-meta:ip", stored)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.limiter.RefreshOverrides(ctx); err != nil {
		t.Fatal(err)
	}
	// 250 queues: q000 holds 250 pending jobs, q001 249, …; q249 1 (and is
	// refused by admission control past 3).
	const queues = 250
	var reqs []queue.EnqueueRequest
	for i := range queues {
		for range queues - i {
			reqs = append(reqs, queue.EnqueueRequest{Type: "ping", Queue: fmt.Sprintf("q%03d", i)})
		}
	}
	for len(reqs) > 0 {
		n := min(len(reqs), 1000)
		if _, err := s.jobs.svc.EnqueueBatch(ctx, reqs[:n], "api"); err != nil {
			t.Fatal(err)
		}
		reqs = reqs[n:]
	}

	rec := raw(t, s, "GET", "/api/obs/snapshot", opToken, "")
	if rec.Code != 200 {
		t.Fatalf("snapshot: %d %s", rec.Code, rec.Body)
	}
	if n := rec.Body.Len(); n > 64<<10 {
		t.Errorf("snapshot is %d bytes, want at most 64 KiB", n)
	}
	var snap snapshot.Snapshot
	if err := json.Unmarshal(rec.Body.Bytes(), &snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.Overrides) != snapshot.MaxOverrides || snap.OverridesTotal != overrides {
		t.Errorf("snapshot: %d overrides of %d, want %d of %d", len(snap.Overrides), snap.OverridesTotal, snapshot.MaxOverrides, overrides)
	}
	if len(snap.Overrides) >= 2 {
		var first []string
		for _, o := range snap.Overrides[:2] {
			first = append(first, o.Target)
		}
		if diff := cmp.Diff([]string{"run", "tenant-meta:ip"}, first); diff != "" {
			t.Errorf("the broad overrides come first, by target (-want +got):\n%s", diff)
		}
	}
	if len(snap.Queues) != snapshot.MaxQueues {
		t.Fatalf("snapshot: %d queues, want %d", len(snap.Queues), snapshot.MaxQueues)
	}
	byName := map[string]snapshot.Queue{}
	for _, q := range snap.Queues {
		byName[q.Name] = q
	}
	other, ok := byName[queue.OtherQueues]
	// q099 … q249 hold 151 + 150 + … + 1 pending jobs.
	if want := int64(151 * 152 / 2); !ok || other.Pending != want || other.EnqueuedTotal != want {
		t.Errorf("%s: %+v, want pending and enqueued %d", queue.OtherQueues, other, want)
	}
	if !other.Admission.Refusing || other.Admission.Reason != queue.ReasonMaxPending {
		t.Errorf("%s admission %+v: its queues over the limit are refused, so is it", queue.OtherQueues, other.Admission)
	}
	if q, ok := byName["q098"]; !ok || q.Pending != 152 {
		t.Errorf("q098, the 99th busiest queue, is listed on its own: %+v", q)
	}

	rec = raw(t, s, "GET", "/api/obs/rate-limits?limit=20", opToken, "")
	if rec.Code != 200 {
		t.Fatalf("rate-limits: %d %s", rec.Code, rec.Body)
	}
	if n := rec.Body.Len(); n > 16<<10 {
		t.Errorf("rate-limits?limit=20 is %d bytes, want at most 16 KiB", n)
	}
	var rl rateLimitsSnapshot
	if err := json.Unmarshal(rec.Body.Bytes(), &rl); err != nil {
		t.Fatal(err)
	}
	if len(rl.Overrides) != 20 || rl.OverridesTotal != overrides {
		t.Errorf("rate-limits?limit=20: %d overrides of %d, want 20 of %d", len(rl.Overrides), rl.OverridesTotal, overrides)
	}
}

// TestSnapshotShowsBannedKeys: a banned key stays in the snapshot (first)
// after more than a snapshot's worth of other clients made a request each;
// listing only the most recently active pushed it out, so `top` showed no
// trace of the abuser an operator looks for.
func TestSnapshotShowsBannedKeys(t *testing.T) {
	r := redistest.Start(t)
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			var s *Server
			if backend == "memory" {
				s = newTestServer(t)
			} else {
				s, _ = newRedisServer(t, r)
			}
			get := func(ip string) int {
				resp, _ := send(t, s, request{path: "/api/public/tenant-meta?tenant=t1", peer: ip + ":1234"})
				return resp.StatusCode
			}
			for range 75 {
				get("192.0.2.77")
			}
			if code := get("192.0.2.77"); code != 429 {
				t.Fatalf("the abuser's request: %d, want 429", code)
			}
			for i := range 2 * snapshot.MaxBuckets {
				get(fmt.Sprintf("198.20.%d.%d", i/250, i%250))
			}
			rec := raw(t, s, "GET", "/api/obs/snapshot", opToken, "")
			var snap snapshot.Snapshot
			if err := json.Unmarshal(rec.Body.Bytes(), &snap); err != nil {
				t.Fatal(err)
			}
			if len(snap.Buckets) != snapshot.MaxBuckets {
				t.Errorf("%d buckets, want %d", len(snap.Buckets), snapshot.MaxBuckets)
			}
			if len(snap.Buckets) == 0 || snap.Buckets[0].Key != "tenant-meta:ip:192.0.2.77" || snap.Buckets[0].BannedUntil == nil {
				t.Errorf("the first bucket is not the banned key: %+v", snap.Buckets[:min(1, len(snap.Buckets))])
			}
			if snap.PenalizedTotal != 1 {
				t.Errorf("penalized_total %d, want 1", snap.PenalizedTotal)
			}
		})
	}
}

// TestSnapshotBannedKeyAmongManyStruck: more keys with strikes than a
// snapshot lists do not push a banned key out. A strike given now ends
// after a ban given earlier (here: strikes decay over 10 minutes, a ban
// lasts 60 s), and the stores picked their penalized keys by recency
// (memory) or by penalty end (Redis). Found by a code review.
func TestSnapshotBannedKeyAmongManyStruck(t *testing.T) {
	r := redistest.Start(t)
	longDecay := func(c *config.Config) { c.PenaltyDecay = 10 * time.Minute }
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			var s *Server
			if backend == "memory" {
				s = newTestServer(t, longDecay)
			} else {
				s, _ = newRedisServer(t, r, longDecay)
			}
			get := func(ip string) int {
				resp, _ := send(t, s, request{path: "/api/public/tenant-meta?tenant=t1", peer: ip + ":1234"})
				return resp.StatusCode
			}
			for range 75 {
				get("203.0.113.77")
			}
			// 60 other addresses, one strike each (61 requests: the 61st
			// is refused).
			for i := range 60 {
				for range 61 {
					get(fmt.Sprintf("198.21.0.%d", i))
				}
			}
			var snap snapshot.Snapshot
			if err := json.Unmarshal(raw(t, s, "GET", "/api/obs/snapshot", opToken, "").Body.Bytes(), &snap); err != nil {
				t.Fatal(err)
			}
			if snap.PenalizedTotal != 61 {
				t.Errorf("penalized_total %d, want 61", snap.PenalizedTotal)
			}
			if len(snap.Buckets) == 0 || snap.Buckets[0].Key != "tenant-meta:ip:203.0.113.77" || snap.Buckets[0].BannedUntil == nil {
				t.Errorf("the first bucket is not the banned key: %+v", snap.Buckets[:min(1, len(snap.Buckets))])
			}
		})
	}
}
