package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core/ratelimit/redisstore"
	"github.com/refrakt/refrakt/internal/redistest"
)

// connectLogged connects the daemon's backend to url within d, or fails the
// test, and returns it (closed when the test ends) with what it has logged.
func connectLogged(t *testing.T, url string, d time.Duration) (*Backend, *syncBuffer) {
	t.Helper()
	logged := &syncBuffer{}
	cfg := config.Default()
	cfg.RedisURL = url
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	b, err := connectBackend(ctx, cfg, slog.New(slog.NewTextHandler(logged, nil)), nil)
	if err != nil {
		t.Fatalf("connect to %s: %v; log:\n%s", config.RedactURL(url), err, logged.String())
	}
	t.Cleanup(func() { b.Close() })
	return b, logged
}

// TestRestrictedUserConnects: a user without the @dangerous commands (so
// without INFO, which detects a Cluster) connects as to a single server, with
// one warning naming REDIS_CLUSTER; it looped on "backend not reachable"
// for ever.
func TestRestrictedUserConnects(t *testing.T) {
	r := redistest.Start(t)
	b, logged := connectLogged(t, r.ACLUser(t, "app", "app-pw-0123", "~*", "&*", "+@all", "-@dangerous"), 10*time.Second)
	if b.Kind != BackendRedis {
		t.Errorf("kind %q, want %q", b.Kind, BackendRedis)
	}
	out := logged.String()
	if n := strings.Count(out, "level=WARN msg=\"INFO is denied"); n != 1 || !strings.Contains(out, "REDIS_CLUSTER=true or false") {
		t.Errorf("%d warnings about INFO, want 1 naming REDIS_CLUSTER; log:\n%s", n, out)
	}
	if strings.Contains(out, "not reachable") {
		t.Errorf("a permission problem logged as an outage:\n%s", out)
	}
}

// TestReadmeACLUserOnAnotherDatabase (a README walkthrough): the README's
// ACL user on a database other than 0, as its URL examples show
// (redis://host:6379/2). It lacked SELECT, so the daemon logged "backend
// permission denied" for ever and never became ready.
func TestReadmeACLUserOnAnotherDatabase(t *testing.T) {
	r := redistest.Start(t)
	_, logged := connectLogged(t, r.ReadmeACLUser(t, config.Default().Prefix)+"/2", 5*time.Second)
	if strings.Contains(logged.String(), "permission denied") {
		t.Errorf("the README's user was refused a command:\n%s", logged.String())
	}
}

// TestRefusedUserLoggedAsSuch: a wrong password, none, or a user denied PING
// is retried (it may be fixed on the server's side) but logged as what it
// is, at ERROR, once per interval, without the password; it was logged as
// "backend not reachable" at every attempt.
func TestRefusedUserLoggedAsSuch(t *testing.T) {
	r := redistest.Start(t)
	good := r.ACLUser(t, "app", "app-pw-0123", "~*", "&*", "+@all")
	noPing := r.ACLUser(t, "noping", "noping-pw-0123", "~*", "&*", "+@all", "-ping")
	if _, err := redistest.Do(r.Addr(), "CONFIG", "SET", "requirepass", "default-pw-0123"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, url, want string
	}{
		{"wrong password", strings.Replace(good, "app-pw-0123", "Wr0ngPass-77", 1), `level=ERROR msg="backend authentication failed; retrying"`},
		{"no password", r.URL(), `level=ERROR msg="backend authentication failed; retrying"`},
		{"no PING", noPing, `level=ERROR msg="backend permission denied; retrying"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logged syncBuffer
			cfg := config.Default()
			cfg.RedisURL = tt.url
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			attempts := 0
			if _, err := connectBackend(ctx, cfg, slog.New(slog.NewTextHandler(&logged, nil)), func(error) { attempts++ }); err == nil {
				t.Fatal("connected")
			}
			if attempts < 2 {
				t.Fatalf("%d attempts in 1.5 s: one line per interval is only tested over several", attempts)
			}
			out := logged.String()
			if n := strings.Count(out, tt.want); n != 1 || strings.Contains(out, "not reachable") {
				t.Errorf("%d lines %s, want 1 (attempts within the interval left out) and no \"not reachable\"; log:\n%s", n, tt.want, out)
			}
			for _, pw := range []string{"Wr0ngPass", "app-pw", "noping-pw", "default-pw"} {
				if strings.Contains(out, pw) {
					t.Errorf("the log shows a password:\n%s", out)
				}
			}
		})
	}
}

// TestLimiterCausesLogged: the daemon's rate-limit warnings carry Redis's
// reason (cause=NOPERM…), which their messages ("… unavailable: load
// scripts") left out; an override change the API answers with 503 is logged
// with it too, while the answer's body keeps Redis's words out.
func TestLimiterCausesLogged(t *testing.T) {
	r := redistest.Start(t)
	url := r.ACLUser(t, "denied", "denied-pw-0123", "~*", "&*", "+@all", "-@write", "-@scripting")
	client, kind, err := OpenRedis(context.Background(), url, "false")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	var logged syncBuffer
	cfg := testConfig()
	s, err := NewServer(Deps{Config: cfg, Logger: slog.New(slog.NewTextHandler(&logged, nil)), Backend: &Backend{Kind: kind, Redis: client, Prefix: cfg.Prefix}})
	if err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, s, "POST", "/api/dev/rate-limits/config", devToken, `{"target":"run:ip:192.0.2.1","capacity":5,"window_seconds":60}`)
	if resp.StatusCode != 503 || strings.Contains(fmt.Sprint(body), "NOPERM") {
		t.Errorf("override set: %d %v, want 503 without Redis's words", resp.StatusCode, body)
	}
	store := redisstore.New(client, redisstore.Options{Prefix: cfg.Prefix})
	defer store.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.publishLimits(ctx, store, time.Hour) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the failed publish logged", func() bool { return strings.Contains(logged.String(), "cannot publish the rate limits") })
	for _, msg := range []string{"cannot preload the rate-limit scripts", "cannot set the override", "cannot publish the rate limits"} {
		line, _, _ := strings.Cut(grep(logged.String(), msg), "\n") // the first
		if !strings.Contains(line, "level=WARN") || !strings.Contains(line, `cause="NOPERM`) {
			t.Errorf("%q: line %q, want a warning with cause=\"NOPERM…\"; log:\n%s", msg, line, logged.String())
		}
	}
}

// TestEvictionPolicyUncheckedWarns: when CONFIG GET is denied, the daemon
// warns that maxmemory-policy could not be checked and must be noeviction;
// it said so at debug level only.
func TestEvictionPolicyUncheckedWarns(t *testing.T) {
	r := redistest.Start(t, "--maxmemory-policy", "allkeys-lru")
	var logged syncBuffer
	cfg := config.Default()
	cfg.RedisURL = r.ACLUser(t, "noconfig", "noconfig-pw-0123", "~*", "&*", "+@all", "-config")
	b, err := connectBackend(context.Background(), cfg, slog.New(slog.NewTextHandler(&logged, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if out := logged.String(); !strings.Contains(out, `level=WARN msg="cannot check Redis's maxmemory-policy; make sure it is noeviction`) || !strings.Contains(out, "NOPERM") {
		t.Errorf("want a warning that the policy went unchecked, with the cause; log:\n%s", out)
	}
}
