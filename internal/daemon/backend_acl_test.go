package daemon

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestRestrictedUserConnects: a user without the @dangerous commands (so
// without INFO, which detects a Cluster) connects as to a single server, with
// one warning naming REDIS_CLUSTER; it looped on "backend not reachable"
// for ever.
func TestRestrictedUserConnects(t *testing.T) {
	r := redistest.Start(t)
	var logged syncBuffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	cfg := config.Default()
	cfg.RedisURL = r.ACLUser(t, "app", "app-pw-0123", "~*", "&*", "+@all", "-@dangerous")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := connectBackend(ctx, cfg, log, nil)
	if err != nil {
		t.Fatalf("connect: %v; log:\n%s", err, logged.String())
	}
	defer b.Close()
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
			if _, err := connectBackend(ctx, cfg, slog.New(slog.NewTextHandler(&logged, nil)), nil); err == nil {
				t.Fatal("connected")
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
