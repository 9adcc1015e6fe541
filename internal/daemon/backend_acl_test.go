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
