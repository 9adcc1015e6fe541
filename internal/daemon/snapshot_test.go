package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core/snapshot"
	"github.com/refrakt/refrakt/internal/redistest"
	"github.com/refrakt/refrakt/internal/version"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// raw sends one request from a fixed peer and returns the recorder.
func raw(t *testing.T, s *Server, method, path, token, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.RemoteAddr = "192.0.2.10:4242"
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

// TestSnapshotGolden pins the JSON shape of GET /api/obs/snapshot, which
// `refrakt top` and scripts read.
func TestSnapshotGolden(t *testing.T) {
	s, clock := newLimitServer(t, func(c *config.Config) { c.QueueMaxPending = 100 })
	for i := 0; i < 3; i++ {
		if rec := raw(t, s, "POST", "/run", "", `{"type":"ping"}`); rec.Code != 202 {
			t.Fatalf("POST /run: %d %s", rec.Code, rec.Body)
		}
	}
	// A first snapshot starts the rate window.
	if rec := raw(t, s, "GET", "/api/obs/snapshot", devToken, ""); rec.Code != 200 {
		t.Fatalf("snapshot: %d %s", rec.Code, rec.Body)
	}
	if rec := raw(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"fail","max_retries":0}`); rec.Code >= 300 {
		t.Fatalf("enqueue fail: %d %s", rec.Code, rec.Body)
	}
	clock.Advance(2 * time.Second)
	for i := 0; i < 4; i++ { // the three pings succeed, the fail job dies
		raw(t, s, "POST", "/api/dev/jobs/run-next", devToken, `{}`)
	}
	for i := 0; i < 2; i++ {
		raw(t, s, "GET", "/api/dev/rl-test", devToken, "")
	}
	if rec := raw(t, s, "POST", "/api/dev/rate-limits/config", devToken, `{"target":"run:ip","capacity":5,"window_seconds":60,"ttl_seconds":300}`); rec.Code >= 300 {
		t.Fatalf("set override: %d %s", rec.Code, rec.Body)
	}
	for i := 0; i < 2; i++ {
		raw(t, s, "POST", "/run", "", `{"type":"echo","payload":{"n":1}}`)
	}
	clock.Advance(time.Second)
	rec := raw(t, s, "GET", "/api/obs/snapshot", opToken, "")
	if rec.Code != 200 {
		t.Fatalf("snapshot: %d %s", rec.Code, rec.Body)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, rec.Body.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	got := regexp.MustCompile(`"id": "[A-Za-z0-9_-]{20,}"`).ReplaceAllString(pretty.String(), `"id": "<id>"`)
	got = strings.ReplaceAll(got, `"version": "`+version.Get().Version+`"`, `"version": "<version>"`)
	golden := "testdata/snapshot.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("snapshot (-want +got)\n%s", diff)
	}
	if rec := raw(t, s, "GET", "/api/obs/snapshot", "", ""); rec.Code != 401 {
		t.Errorf("snapshot without a token: %d, want 401", rec.Code)
	}
}

// TestSnapshotTimesByTheBackendsClock: on Redis, bans and dead jobs are
// stamped by Redis TIME, so the snapshot's generated_at is too. Stamped
// with the daemon's clock, 90 s ahead of Redis here, a key Redis bans for
// a minute showed as not banned (its ban ended before generated_at) and a
// job dead a moment ago as dead for 90 s.
func TestSnapshotTimesByTheBackendsClock(t *testing.T) {
	r := redistest.Start(t)
	client, kind, err := OpenRedis(t.Context(), r.URL(), "auto")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	cfg := testConfig(func(c *config.Config) { c.BanAfterStrikes = 1; c.BanDuration = time.Minute })
	ahead := func() time.Time { return time.Now().Add(90 * time.Second) }
	s, err := NewServer(Deps{Config: cfg, Clock: ahead, Backend: &Backend{Kind: kind, Redis: client, Prefix: cfg.Prefix}})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 { // rl-test allows 3 a minute: strikes, then a ban
		raw(t, s, "GET", "/api/dev/rl-test", devToken, "")
	}
	if rec := raw(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"fail","max_retries":0}`); rec.Code >= 300 {
		t.Fatalf("enqueue fail: %d %s", rec.Code, rec.Body)
	}
	if rec := raw(t, s, "POST", "/api/dev/jobs/run-next", devToken, `{}`); rec.Code >= 300 {
		t.Fatalf("run-next: %d %s", rec.Code, rec.Body)
	}
	rec := raw(t, s, "GET", "/api/obs/snapshot", opToken, "")
	if rec.Code != 200 {
		t.Fatalf("snapshot: %d %s", rec.Code, rec.Body)
	}
	var snap snapshot.Snapshot
	if err := json.Unmarshal(rec.Body.Bytes(), &snap); err != nil {
		t.Fatal(err)
	}
	var banned []string
	for _, b := range snap.Buckets {
		if b.BannedUntil != nil && b.BannedUntil.After(snap.GeneratedAt) {
			banned = append(banned, b.Key)
		}
	}
	if diff := cmp.Diff([]string{"rl-test:ip:192.0.2.10"}, banned); diff != "" {
		t.Errorf("keys banned at generated_at %s (-want +got):\n%s\nbuckets: %+v", snap.GeneratedAt, diff, snap.Buckets)
	}
	if len(snap.DeadJobs) != 1 {
		t.Fatalf("dead jobs: %+v, want 1", snap.DeadJobs)
	}
	if ago := snap.GeneratedAt.Sub(snap.DeadJobs[0].FinishedAt); ago < 0 || ago > 30*time.Second {
		t.Errorf("the job dead a moment ago shows as dead for %s", ago)
	}
}

// TestSnapshotNotReadyAsksNoTime (code30 C5): when the readiness probe
// found Redis not answering, the snapshot takes the daemon's clock and
// sends no TIME. It sent one all the same, with no deadline, and waited
// out the read timeout and go-redis's retries: with Redis stalled, a
// snapshot took 6.5 s instead of 3.5 s.
func TestSnapshotNotReadyAsksNoTime(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	s, client := newRedisServer(t, r)
	times := &countCommands{name: "time"}
	client.(*redis.Client).AddHook(times)
	r.Pause()
	defer r.Resume()
	if _, err := s.snapshot(context.Background()); err == nil {
		t.Fatal("snapshot with Redis paused: no error")
	}
	if n := times.n.Load(); n != 0 {
		t.Errorf("TIME sent %d times after the probe found Redis not answering, want 0", n)
	}
}

// TestSnapshotTimeReadBounded (code30 C5): the snapshot's read of Redis
// TIME has a deadline of its own, so Redis stalling between the probe and
// the read costs it backendTimeWait and the daemon's clock, not the read
// timeout (3 s) and its retries.
func TestSnapshotTimeReadBounded(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	s, _ := newRedisServer(t, r)
	r.Pause()
	defer r.Resume()
	local := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	start := time.Now()
	got := s.backendNow(context.Background(), local)
	took := time.Since(start)
	if !got.Equal(local) {
		t.Errorf("backendNow with Redis paused: %s, want the daemon's clock %s", got, local)
	}
	if took >= 3*time.Second { // the read timeout: generous, it proves the bound
		t.Errorf("backendNow with Redis paused took %s, want less than the read timeout", took)
	}
}

// countCommands is a hook counting the commands called name.
type countCommands struct {
	name string
	n    atomic.Int64
}

func (c *countCommands) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *countCommands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == c.name {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (c *countCommands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
