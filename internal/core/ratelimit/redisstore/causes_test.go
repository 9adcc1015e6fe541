package redisstore_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/memstore"
	"github.com/refrakt/refrakt/internal/core/ratelimit/redisstore"
	"github.com/refrakt/refrakt/internal/core/ratelimit/storetest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestBackendCausesLogged: when Redis refuses the limiter (here a user
// denied writes, scripts, the reads of the overrides and every channel), the
// log says why (the NOPERM), while the caller's message names the operation
// only. The lines said "the rate-limit backend (redis) is unavailable: list
// overrides"; a failed SUBSCRIBE and a failed override change logged nothing.
func TestBackendCausesLogged(t *testing.T) {
	srv := redistest.Start(t)
	rdb := newClientURL(t, srv.ACLUser(t, "denied", "denied-pw-0123", "~*", "+@all", "-@write", "-@scripting", "-hscan", "-hgetall", "resetchannels"))
	logs := &syncBuffer{}
	clock := storetest.NewClock()
	l, err := ratelimit.New(ratelimit.DefaultConfig(), ratelimit.Deps{Store: newStore(t, rdb, redisstore.Options{}), Local: memstore.New(clock), Clock: clock,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var errs []error
	errs = append(errs, l.RefreshOverrides(ctx))
	_, err = l.SetOverride(ctx, ratelimit.Override{Target: "run:ip:192.0.2.1", Capacity: 1, Window: time.Minute}, 0)
	errs = append(errs, err, l.DeleteOverride(ctx, "run:ip:192.0.2.1"), l.Reset(ctx, "run:ip:192.0.2.1"))
	for _, err := range errs {
		if err == nil {
			t.Fatal("a refused command succeeded")
		}
		if msg := core.ErrorMessage(err); strings.Contains(msg, "NOPERM") {
			t.Errorf("the caller's message %q carries Redis's words", msg)
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(runCtx) }()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "cannot watch the overrides") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done

	lines := strings.Split(logs.String(), "\n")
	for _, msg := range []string{"cannot read the overrides", "cannot set the override", "cannot remove the override", "cannot reset the bucket", "cannot watch the overrides"} {
		var line string
		for _, l := range lines {
			if strings.Contains(l, msg) {
				line = l
				break
			}
		}
		if !strings.Contains(line, "level=WARN") || !strings.Contains(line, `cause="NOPERM`) {
			t.Errorf("%q: line %q, want a warning with cause=\"NOPERM…\"; log:\n%s", msg, line, logs)
		}
	}
}

// TestTakeErrorKeepsConnectionCause: when the client cannot get a
// connection (here its password was changed and its connections killed, so
// every new one is refused with WRONGPASS), a decision's error carries that
// cause, whether the decision went alone or in a pipeline with the
// recently-active index's update (a key's first decision). The pipeline's
// commands were never sent, and the error was "unexpected script reply
// %!q(<nil>)", an internal error that hid the cause.
func TestTakeErrorKeepsConnectionCause(t *testing.T) {
	srv := redistest.Start(t)
	rdb := newClientURL(t, srv.ACLUser(t, "rotated", "old-pw-0123", "~*", "&*", "+@all"))
	s := newStore(t, rdb, redisstore.Options{Timeout: 2 * time.Second})
	ctx := context.Background()
	rules := ratelimit.DefaultConfig().Rules()
	take := func(key string) error {
		bs := []ratelimit.Bucket{{Key: []byte(key), Capacity: 5, Interval: 12_000_000, Window: 60_000_000}}
		return s.Take(ctx, &rules, bs, make([]ratelimit.Result, 1))
	}
	if err := take("run:ip:192.0.2.1"); err != nil {
		t.Fatalf("before the password change: %v", err)
	}
	if _, err := redistest.Do(srv.Addr(), "ACL", "SETUSER", "rotated", "resetpass", ">new-pw-0123"); err != nil {
		t.Fatal(err)
	}
	if _, err := redistest.Do(srv.Addr(), "CLIENT", "KILL", "USER", "rotated"); err != nil {
		t.Fatal(err)
	}
	// A key decided a moment ago goes alone; a new key rides with its index
	// update in a pipeline.
	for _, key := range []string{"run:ip:192.0.2.1", "run:ip:192.0.2.2"} {
		err := take(key)
		if err == nil {
			t.Fatalf("%s: a decision succeeded with a refused password", key)
		}
		if !strings.Contains(err.Error(), "WRONGPASS") || strings.Contains(err.Error(), "unexpected script reply") {
			t.Errorf("%s: error %q, want the connection's cause (WRONGPASS)", key, err)
		}
	}
}

// TestWatchRefusedIsForbidden: a subscription to override changes that
// Redis refuses (NOPERM: a user without the channel's rights) fails with
// the forbidden code, which Limiter.Run backs off from; one that finds no
// Redis fails as unavailable, which Run tries again every interval.
func TestWatchRefusedIsForbidden(t *testing.T) {
	srv := redistest.Start(t)
	rdb := newClientURL(t, srv.ACLUser(t, "nochannels", "pw-0123456789", "~*", "resetchannels", "+@all"))
	s := newStore(t, rdb, redisstore.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.WatchOverrides(ctx, func(bool) {})
	if core.ErrorCode(err) != core.CodeForbidden || !strings.Contains(err.Error()+core.CauseAttr(err).Value.String(), "NOPERM") {
		t.Errorf("refused subscription: %v (code %q), want forbidden with Redis's NOPERM as its cause", err, core.ErrorCode(err))
	}
	srv.Stop()
	err = s.WatchOverrides(ctx, func(bool) {})
	if core.ErrorCode(err) != core.CodeUnavailable {
		t.Errorf("subscription with Redis gone: %v (code %q), want unavailable", err, core.ErrorCode(err))
	}
}
