package redisstore_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/redisstore"
	"github.com/refrakt/refrakt/internal/core/ratelimit/storetest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// newClient connects to srv and closes the client when the test ends.
func newClient(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	return newClientURL(t, srv.URL())
}

// newClientURL connects as url says (a user, a password), as newClient
// does, and closes the client when the test ends.
func newClientURL(t testing.TB, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opt.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// newStore returns a store on rdb, closed when the test ends. Unless the
// test sets one, round trips get a generous timeout: on a loaded machine the
// default 100ms would turn slowness into failures the test is not about.
func newStore(t testing.TB, rdb redis.UniversalClient, o redisstore.Options) *redisstore.Store {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	s := redisstore.New(rdb, o)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	rdb := newClient(t, srv)
	n := 0
	storetest.Run(t, func(t *testing.T, clock ratelimit.Clock) ratelimit.Store {
		n++
		return newStore(t, rdb, redisstore.Options{Prefix: "t" + string(rune('a'+n%26)) + string(rune('a'+n/26)) + ":", Clock: clock})
	})
}

// TestConformanceAsReadmeACLUser runs the conformance suite as the ACL user
// README.md gives, then what the suite does not reach (the overrides'
// channel, the published limits, the overrides' version): a command, key
// or channel the limiter starts using and the README does not allow fails
// here.
func TestConformanceAsReadmeACLUser(t *testing.T) {
	srv := redistest.Start(t)
	n := 0
	storetest.Run(t, func(t *testing.T, clock ratelimit.Clock) ratelimit.Store {
		n++
		prefix := fmt.Sprintf("app%d:", n)
		return newStore(t, newClientURL(t, srv.ReadmeACLUser(t, prefix)), redisstore.Options{Prefix: prefix, Clock: clock})
	})
	t.Run("WatchAndPublish", func(t *testing.T) {
		const prefix = "appw:"
		s := newStore(t, newClientURL(t, srv.ReadmeACLUser(t, prefix)), redisstore.Options{Prefix: prefix})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		changed, watched := make(chan struct{}, 2), make(chan error, 1)
		go func() {
			watched <- s.WatchOverrides(ctx, func(bool) {
				select {
				case changed <- struct{}{}:
				default:
				}
			})
		}()
		// The first change is the subscription made; the second, the
		// message the override below publishes.
		for _, step := range []string{"subscribe", "the override's message"} {
			if step != "subscribe" {
				if err := s.SetOverride(ctx, ratelimit.Override{Target: "rl-test:ip:192.0.2.1", Capacity: 1, Window: time.Minute}); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-changed:
			case err := <-watched:
				t.Fatalf("%s: the watch ended: %v", step, err)
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: nothing within 5s", step)
			}
		}
		if _, err := s.OverridesVersion(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.PublishLimits(ctx, ratelimit.LimitSet{Enabled: true}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, found, err := s.PublishedLimits(ctx); err != nil || !found {
			t.Fatalf("published limits: found %v, %v", found, err)
		}
	})
}

// TestGiveBackAfterTheCallerLeft (code30 C9): a token given back reaches
// Redis when the caller's context has ended in the meantime (a client that
// hung up while its request was being refused). The give-back ran with
// that context and was never sent, and the refused request kept the token.
func TestGiveBackAfterTheCallerLeft(t *testing.T) {
	srv := redistest.Start(t)
	store := newStore(t, newClient(t, srv), redisstore.Options{})
	r := ratelimit.DefaultConfig().Rules()
	bs := []ratelimit.Bucket{{Key: []byte("rl-test:ip:192.0.2.7"), Capacity: 3, Interval: 20_000_000, Window: 60_000_000}}
	rs := make([]ratelimit.Result, 1)
	ctx, cancel := context.WithCancel(context.Background())
	if err := store.Take(ctx, &r, bs, rs); err != nil || !rs[0].Allowed || rs[0].Remaining != 2 {
		t.Fatalf("first take: %+v, %v; want allowed with 2 left", rs, err)
	}
	cancel() // the client hangs up
	store.GiveBack(ctx, bs, rs)
	if err := store.Take(context.Background(), &r, bs, rs); err != nil || !rs[0].Allowed || rs[0].Remaining != 2 {
		t.Errorf("take after the give-back: %+v, %v; want allowed with 2 left (the first token given back)", rs, err)
	}
}

// TestScriptsReload checks the NOSCRIPT fallback after SCRIPT FLUSH (as after
// a restart) and that a key gets a TTL so idle keys vanish.
func TestScriptsReloadAndTTL(t *testing.T) {
	srv := redistest.Start(t)
	rdb := newClient(t, srv)
	clock := storetest.NewClock()
	l := storetest.NewLimiter(t, newStore(t, rdb, redisstore.Options{Clock: clock}), clock, nil)
	ctx := context.Background()
	req := ratelimit.Request{Limit: "rl-test", IP: "203.0.113.7"}
	if _, err := l.Allow(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	d, err := l.Allow(ctx, req)
	if err != nil || d.Remaining != 1 {
		t.Fatalf("after SCRIPT FLUSH: %+v, %v", d, err)
	}
	ttl, err := rdb.PTTL(ctx, "refrakt:rl:{rl-test:ip:203.0.113.7}").Result()
	if err != nil {
		t.Fatal(err)
	}
	// Two tokens spent at 20s each: the key is idle 40s from now.
	if ttl <= 39*time.Second || ttl > 40*time.Second {
		t.Errorf("PTTL = %s, want 40s", ttl)
	}
}

// TestLoadScripts: Load puts both scripts in the server's cache, so the
// first decisions after start-up need no NOSCRIPT fallback.
func TestLoadScripts(t *testing.T) {
	srv := redistest.Start(t)
	rdb := newClient(t, srv)
	ctx := context.Background()
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	store := newStore(t, rdb, redisstore.Options{})
	if err := store.Load(ctx); err != nil {
		t.Fatal(err)
	}
	var shas []string
	for _, name := range []string{"take.lua", "refund.lua"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		shas = append(shas, redis.NewScript(string(b)).Hash())
	}
	exists, err := rdb.ScriptExists(ctx, shas...).Result()
	if err != nil || len(exists) != 2 || !exists[0] || !exists[1] {
		t.Fatalf("scripts cached after Load: %v, %v; want both", exists, err)
	}
}
