package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/redis/go-redis/v9"
	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core/presence"
	"github.com/refrakt/refrakt/internal/core/snapshot"
	"github.com/refrakt/refrakt/internal/redistest"
)

// startHeartbeatServer is a started server of testConfig on the Redis at
// rawURL, beating every every, logging into the buffer it returns; stopped
// at cleanup (a second Stop is harmless).
func startHeartbeatServer(t *testing.T, rawURL string, every time.Duration, mutate ...func(*config.Config)) (*Server, *syncBuffer) {
	t.Helper()
	client, kind, err := OpenRedis(context.Background(), rawURL, "auto")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	logs := &syncBuffer{}
	cfg := testConfig(mutate...)
	s, err := NewServer(Deps{Config: cfg, Logger: slog.New(slog.NewTextHandler(logs, nil)), ListenAddr: "127.0.0.1:9",
		HeartbeatEvery: every, Backend: &Backend{Kind: kind, Redis: client, Prefix: cfg.Prefix}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s, logs
}

// daemons reads GET /api/obs/daemons of s with token.
func daemons(t *testing.T, s *Server) presence.List {
	t.Helper()
	rec := raw(t, s, "GET", "/api/obs/daemons", opToken, "")
	if rec.Code != 200 {
		t.Fatalf("GET /api/obs/daemons: %d %s", rec.Code, rec.Body)
	}
	var l presence.List
	if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil {
		t.Fatal(err)
	}
	return l
}

func daemonIDs(l presence.List) []string {
	out := []string{}
	for _, d := range l.Daemons {
		out = append(out, d.ID)
	}
	return out
}

// waitDaemons polls s's list until cond holds, within 10 s.
func waitDaemons(t *testing.T, s *Server, what string, cond func(presence.List) bool) presence.List {
	t.Helper()
	var l presence.List
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if l = daemons(t, s); cond(l) {
			return l
		}
	}
	t.Fatalf("%s: never; last list %+v", what, l)
	return l
}

// TestDaemonsAuth: the route takes an operator or a developer token.
func TestDaemonsAuth(t *testing.T) {
	s := newTestServer(t)
	for _, tt := range []struct {
		token string
		code  int
	}{{"", 401}, {"nope", 401}, {opToken, 200}, {devToken, 200}} {
		if rec := raw(t, s, "GET", "/api/obs/daemons", tt.token, ""); rec.Code != tt.code {
			t.Errorf("token %q: %d %s, want %d", tt.token, rec.Code, rec.Body, tt.code)
		}
	}
	if rec := raw(t, s, "POST", "/api/obs/daemons", opToken, ""); rec.Code != 405 {
		t.Errorf("POST: %d, want 405", rec.Code)
	}
}

// TestDaemonsMemoryShape: on the memory backend the list is the daemon
// itself, marked self, with every field of the JSON shape.
func TestDaemonsMemoryShape(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) { c.WorkerConcurrency = 3 })
	rec := raw(t, s, "GET", "/api/obs/daemons", devToken, "")
	var shape map[string][]map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &shape); err != nil {
		t.Fatal(err)
	}
	if len(shape["daemons"]) != 1 {
		t.Fatalf("daemons: %s", rec.Body)
	}
	var keys []string
	for k := range shape["daemons"][0] {
		keys = append(keys, k)
	}
	want := []string{"abandoned", "addr", "backend", "busy", "dead", "failed", "go_version", "host", "id", "last_seen", "pid",
		"seen_seconds", "self", "started_at", "status", "succeeded", "up_seconds", "version", "workers"}
	if diff := cmp.Diff(want, keys, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	d := daemons(t, s).Daemons[0]
	if !d.Self || d.Status != presence.StatusRunning || d.Backend != BackendMemory || d.Workers != 3 || d.ID != s.hb.id ||
		!strings.HasPrefix(d.ID, d.Host+":") || d.PID == 0 || d.GoVersion == "" {
		t.Errorf("the daemon: %+v", d)
	}
}

// TestDaemonsTwoOnRedis: two daemons on one Redis each list both, the
// answering one marked self; one's graceful stop removes it at once.
func TestDaemonsTwoOnRedis(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	a, _ := startHeartbeatServer(t, r.URL(), time.Hour, func(c *config.Config) { c.WorkerConcurrency = 2 })
	b, _ := startHeartbeatServer(t, r.URL(), time.Hour)
	l := daemons(t, a)
	if diff := cmp.Diff([]string{a.hb.id, b.hb.id}, daemonIDs(l)); diff != "" {
		t.Fatalf("listed by a (-want +got):\n%s", diff)
	}
	if !l.Daemons[0].Self || l.Daemons[1].Self {
		t.Errorf("a's list marks self: %+v", l.Daemons)
	}
	if d := l.Daemons[0]; d.Workers != 2 || d.Backend != BackendRedis || d.Addr != "127.0.0.1:9" || d.Status != presence.StatusRunning || d.LastSeen.IsZero() {
		t.Errorf("a: %+v", d)
	}
	if l := daemons(t, b); !l.Daemons[1].Self || l.Daemons[0].Self {
		t.Errorf("b's list marks self: %+v", l.Daemons)
	}
	b.Stop(context.Background())
	if diff := cmp.Diff([]string{a.hb.id}, daemonIDs(daemons(t, a))); diff != "" {
		t.Errorf("after b's stop (-want +got):\n%s", diff)
	}
}

// TestDaemonsKilledExpire: a daemon whose heartbeat stops without removing
// its record (as a killed one) is listed until its TTL (3 beats), never
// after, while the other stays listed.
func TestDaemonsKilledExpire(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	every := 100 * time.Millisecond
	a, _ := startHeartbeatServer(t, r.URL(), every)
	b, _ := startHeartbeatServer(t, r.URL(), every)
	waitDaemons(t, a, "both listed", func(l presence.List) bool { return len(l.Daemons) == 2 })
	b.hb.stopLoop(context.Background())
	killed := time.Now()
	l := waitDaemons(t, a, "b gone", func(l presence.List) bool {
		for _, d := range l.Daemons {
			if d.ID == b.hb.id {
				if time.Since(killed) > every*heartbeatTTLs+300*time.Millisecond {
					t.Fatalf("b listed %v after its last beat, past its TTL %v", time.Since(killed), every*heartbeatTTLs)
				}
				return false
			}
		}
		return true
	})
	if diff := cmp.Diff([]string{a.hb.id}, daemonIDs(l)); diff != "" {
		t.Errorf("after b's kill (-want +got):\n%s", diff)
	}
	if time.Since(killed) < every {
		t.Errorf("b gone %v after its last beat: before its TTL", time.Since(killed))
	}
}

// TestDaemonsBusyAndStopping: a sleep job running is a busy worker; once
// the stop began the daemon is listed "stopping" while the job runs on,
// and it is gone once its workers are done.
func TestDaemonsBusyAndStopping(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	every := 50 * time.Millisecond
	s, _ := startHeartbeatServer(t, r.URL(), every, func(c *config.Config) {
		c.WorkerConcurrency = 2
		c.ShutdownTimeout = 10 * time.Second
	})
	other, _ := startHeartbeatServer(t, r.URL(), every)
	self := func(l presence.List) presence.Daemon {
		for _, d := range l.Daemons {
			if d.ID == s.hb.id {
				return d
			}
		}
		return presence.Daemon{}
	}
	// A short run first, so that the stopping record below must count it.
	if resp, j := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"sleep","payload":{"ms":1}}`); resp.StatusCode != 202 {
		t.Fatalf("enqueue: %d %v", resp.StatusCode, j)
	}
	waitDaemons(t, other, "one run succeeded", func(l presence.List) bool { d := self(l); return d.Succeeded == 1 && d.Busy == 0 })
	if resp, j := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"sleep","payload":{"ms":1500}}`); resp.StatusCode != 202 {
		t.Fatalf("enqueue: %d %v", resp.StatusCode, j)
	}
	waitDaemons(t, other, "one busy worker", func(l presence.List) bool { return self(l).Busy == 1 })

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		s.stopTakingJobs()
		s.Stop(context.Background())
	}()
	d := self(waitDaemons(t, other, "stopping", func(l presence.List) bool { return self(l).Status == presence.StatusStopping }))
	if d.Busy != 1 {
		t.Errorf("stopping with its job running: %+v", d)
	}
	<-stopped
	if diff := cmp.Diff([]string{other.hb.id}, daemonIDs(daemons(t, other))); diff != "" {
		t.Errorf("after the stop (-want +got):\n%s", diff)
	}
	// The run it finished was counted, the one running not yet; read
	// before the stop removed the record.
	if d.Succeeded != 1 || d.Failed != 0 || d.Dead != 0 {
		t.Errorf("runs counted while stopping: %+v, want 1 succeeded", d)
	}
}

// TestDaemonsRecordHoldsNoSecret: the record a daemon writes holds neither
// its tokens nor its Redis URL or password; written as README's ACL user.
func TestDaemonsRecordHoldsNoSecret(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	aclURL := r.ReadmeACLUser(t, "refrakt:")
	u, _ := url.Parse(aclURL)
	password, _ := u.User.Password()
	s, _ := startHeartbeatServer(t, aclURL, time.Hour, func(c *config.Config) { c.RedisURL = aclURL })
	got, err := redistest.Do(r.Addr(), "HGETALL", "refrakt:daemons:{d}:"+s.hb.id)
	if err != nil || !strings.Contains(got, s.hb.id) {
		t.Fatalf("the raw record: %q, %v", got, err)
	}
	for _, secret := range []string{devToken, opToken, password, aclURL, r.Addr()} {
		if strings.Contains(got, secret) {
			t.Errorf("the record holds %q: %s", secret, got)
		}
	}
	if l := daemons(t, s); len(l.Daemons) != 1 {
		t.Errorf("listed as the ACL user: %+v", l)
	}
}

// TestHeartbeatOutageLoggedThrottled: with Redis down the heartbeat fails
// at every beat, and says so once in 3 s (at most once per backendLogEvery,
// 10 s); the daemon runs on.
func TestHeartbeatOutageLoggedThrottled(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	s, logs := startHeartbeatServer(t, r.URL(), 20*time.Millisecond)
	r.Stop()
	const warning = "cannot write the daemon's heartbeat"
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), warning); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no warning in 10 s of failed beats:\n%s", logs)
		}
	}
	time.Sleep(3 * time.Second) // more failed beats (each waits out its dials)
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Errorf("%d warnings in 3 s, want 1 (at most one per %v):\n%s", n, backendLogEvery, logs)
	}
	if rec := raw(t, s, "GET", "/healthz", "", ""); rec.Code != 200 {
		t.Errorf("healthz: %d", rec.Code)
	}
}

// TestSnapshotCountsDaemons: on Redis the snapshot sums the daemons alive
// (top's header); in memory it has no "daemons" (the snapshot's shape as
// before).
func TestSnapshotCountsDaemons(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	a, _ := startHeartbeatServer(t, r.URL(), time.Hour, func(c *config.Config) { c.WorkerConcurrency = 2 })
	startHeartbeatServer(t, r.URL(), time.Hour, func(c *config.Config) { c.WorkerConcurrency = 3 })
	var snap struct {
		Daemons *snapshot.Daemons `json:"daemons"`
	}
	rec := raw(t, a, "GET", "/api/obs/snapshot", opToken, "")
	if err := json.Unmarshal(rec.Body.Bytes(), &snap); err != nil || rec.Code != 200 {
		t.Fatalf("snapshot: %d %s", rec.Code, rec.Body)
	}
	if diff := cmp.Diff(&snapshot.Daemons{Alive: 2, Workers: 5}, snap.Daemons); diff != "" {
		t.Errorf("daemons (-want +got):\n%s", diff)
	}
	rec = raw(t, newTestServer(t), "GET", "/api/obs/snapshot", opToken, "")
	if strings.Contains(rec.Body.String(), `"daemons"`) {
		t.Errorf("memory snapshot has daemons: %s", rec.Body)
	}
}

// TestDaemonsListedUntilWorkersDone: stopped as Run stops it (the workers
// told to stop taking jobs in a goroutine of their own, then Stop), a
// daemon stays listed while its job runs on, and is gone once it ended.
func TestDaemonsListedUntilWorkersDone(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	every := 50 * time.Millisecond
	s, _ := startHeartbeatServer(t, r.URL(), every, func(c *config.Config) { c.WorkerConcurrency = 2; c.ShutdownTimeout = 10 * time.Second })
	other, _ := startHeartbeatServer(t, r.URL(), every)
	if resp, j := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"sleep","payload":{"ms":2000}}`); resp.StatusCode != 202 {
		t.Fatalf("enqueue: %d %v", resp.StatusCode, j)
	}
	waitDaemons(t, other, "busy", func(l presence.List) bool { return len(l.Daemons) == 2 && l.Daemons[0].Busy+l.Daemons[1].Busy == 1 })
	stopped := make(chan struct{})
	go s.stopTakingJobs() // as Run does
	go func() { defer close(stopped); s.Stop(context.Background()) }()
	time.Sleep(500 * time.Millisecond)
	select {
	case <-stopped:
		t.Fatal("stopped before its job ended")
	default:
	}
	if diff := cmp.Diff([]string{s.hb.id, other.hb.id}, daemonIDs(daemons(t, other))); diff != "" {
		t.Errorf("listed while its job runs on (-want +got):\n%s", diff)
	}
	<-stopped
	if diff := cmp.Diff([]string{other.hb.id}, daemonIDs(daemons(t, other))); diff != "" {
		t.Errorf("after the stop (-want +got):\n%s", diff)
	}
}

// holdBeats makes the heartbeat writes of client (the publish script's
// EVALSHA or EVAL, 3 arguments) wait, as a write already on the wire
// does, until the returned release is called; entered is closed when
// the first one waits.
func holdBeats(client redis.UniversalClient) (entered <-chan struct{}, release func()) {
	in, out := make(chan struct{}), make(chan struct{})
	var once sync.Once
	client.AddHook(holdHook{hold: func(cmd redis.Cmder) bool {
		name, args := cmd.Name(), cmd.Args()
		if (name != "evalsha" && name != "eval") || len(args) != 8 {
			return false
		}
		once.Do(func() { close(in) })
		<-out
		return true
	}})
	var rel sync.Once
	return in, func() { rel.Do(func() { close(out) }) }
}

type holdHook struct{ hold func(redis.Cmder) bool }

func (holdHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h holdHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.hold(cmd) {
			// On the wire already: its context's end no longer stops it.
			ctx = context.WithoutCancel(ctx)
		}
		return next(ctx, cmd)
	}
}
func (holdHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestHeartbeatBeatInFlightAtStop: a beat held in flight when the stop
// begins (kicked by the stop, or the ticker's) lands before the removal:
// the stop waits for it, and no record is left behind.
func TestHeartbeatBeatInFlightAtStop(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	// Beats every 200 ms: a record written after the removal lives 600 ms,
	// past the check below.
	s, _ := startHeartbeatServer(t, r.URL(), 200*time.Millisecond)
	entered, release := holdBeats(s.backend.Redis)
	defer release()
	<-entered
	stopped := make(chan struct{})
	go func() { defer close(stopped); s.Stop(context.Background()) }()
	time.Sleep(300 * time.Millisecond)
	release()
	<-stopped
	time.Sleep(50 * time.Millisecond) // the held beat lands, when the stop did not wait for it
	if got, err := redistest.Do(r.Addr(), "EXISTS", s.hb.store.RecordKey(s.hb.id)); err != nil || got != "0" {
		t.Errorf("the record after the stop: EXISTS %q %v, want 0", got, err)
	}
	if got, err := redistest.Do(r.Addr(), "ZSCORE", s.hb.store.IndexKey(), s.hb.id); err != nil || got != "" {
		t.Errorf("the index entry after the stop: %q %v, want none", got, err)
	}
}

// TestHeartbeatForcedStopRedisHung: with Redis hung (SIGSTOP) and the
// stop's time run out (a second signal, SHUTDOWN_TIMEOUT over), the
// heartbeat's stop ends within README's half a second, beat in flight or
// not: the record's TTL does the rest.
func TestHeartbeatForcedStopRedisHung(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		every time.Duration
	}{{"loop idle", time.Hour}, {"beat in flight", 30 * time.Millisecond}} {
		t.Run(tt.name, func(t *testing.T) {
			r := redistest.Start(t)
			s, _ := startHeartbeatServer(t, r.URL(), tt.every)
			time.Sleep(100 * time.Millisecond)
			r.Pause()
			defer r.Resume()
			time.Sleep(50 * time.Millisecond)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			t0 := time.Now()
			s.Stop(ctx)
			if took := time.Since(t0); took > 500*time.Millisecond {
				t.Errorf("Stop with its time run out, Redis hung: %v, want at most half a second", took)
			}
		})
	}
}

// TestHeartbeatStopCutBySecondSignal: with Redis hung (SIGSTOP) and the
// heartbeat's stop begun with time to spare, a second signal (its ctx
// cancelled 100 ms in) cuts the stop to a forced stop's budget. It used to
// keep the budget fixed at the stop's start: 2 s.
func TestHeartbeatStopCutBySecondSignal(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	s, _ := startHeartbeatServer(t, r.URL(), time.Hour)
	var stop func(context.Context) error
	for _, c := range s.components {
		if c.name == "heartbeat" {
			stop = c.stop
		}
	}
	if stop == nil {
		t.Fatal("no heartbeat component")
	}
	r.Pause()
	defer r.Resume()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(100*time.Millisecond, cancel)
	t0 := time.Now()
	_ = stop(ctx)
	if took := time.Since(t0); took > time.Second {
		t.Errorf("the heartbeat's stop, Redis hung, a second signal at 100ms: %v, want well under 1s", took)
	}
}

// TestHeartbeatStoppingAtOnce: the "stopping" status is written when the
// stop begins, not at the next beat (an hour away here).
func TestHeartbeatStoppingAtOnce(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	s, _ := startHeartbeatServer(t, r.URL(), time.Hour)
	if d := daemons(t, s).Daemons[0]; d.Status != presence.StatusRunning {
		t.Fatalf("before the stop: %+v", d)
	}
	s.stopTakingJobs()
	waitDaemons(t, s, "stopping written at once", func(l presence.List) bool { return l.Daemons[0].Status == presence.StatusStopping })
}

// TestHeartbeatIndexExpires: the index of the daemons has a TTL, so that
// it leaves the keyspace with the last record.
func TestHeartbeatIndexExpires(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	s, _ := startHeartbeatServer(t, r.URL(), time.Hour)
	got, err := redistest.Do(r.Addr(), "PTTL", s.hb.store.IndexKey())
	if err != nil {
		t.Fatal(err)
	}
	if ms, err := strconv.Atoi(got); err != nil || ms <= 0 {
		t.Errorf("PTTL of the index: %q, want > 0", got)
	}
}

// TestDaemonsUpByRedisClock: a daemon whose clock is an hour behind
// Redis's shows the UP of a fresh daemon: its start is Redis TIME, as
// its last_seen and every reader's now.
func TestDaemonsUpByRedisClock(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	client, kind, err := OpenRedis(context.Background(), r.URL(), "auto")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	cfg := testConfig()
	s, err := NewServer(Deps{Config: cfg, Logger: slog.New(slog.DiscardHandler), HeartbeatEvery: time.Hour,
		Clock:   func() time.Time { return time.Now().Add(-time.Hour) }, // the host's clock an hour behind
		Backend: &Backend{Kind: kind, Redis: client, Prefix: cfg.Prefix}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	if d := daemons(t, s).Daemons[0]; d.UpSeconds > 60 || d.StartedAt.After(d.LastSeen) {
		t.Errorf("a fresh daemon, its clock an hour behind: up_seconds %.0f, started_at %v, last_seen %v", d.UpSeconds, d.StartedAt, d.LastSeen)
	}
}
