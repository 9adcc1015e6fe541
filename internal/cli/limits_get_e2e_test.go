package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/redistest"
)

// fillOverrides writes n per-key overrides of run:ip, and run, run:ip and
// rl-test:ip, straight into the overrides hash under prefix (as many
// daemons and CLIs would have set them over time).
func fillOverrides(t *testing.T, r *redistest.Server, prefix string, n int) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	pipe := rdb.Pipeline()
	stored := `{"capacity":5,"window_ms":60000,"mode":"enforce","origin":"cli","created_at_ms":1795600000000}`
	for i := range n {
		pipe.HSet(ctx, prefix+"rl:overrides", fmt.Sprintf("run:ip:10.%d.%d.%d", i>>16&255, i>>8&255, i&255), stored)
	}
	for _, tg := range []string{"run", "run:ip", "rl-test:ip", "run:ip:203.0.113.7"} {
		pipe.HSet(ctx, prefix+"rl:overrides", tg, stored)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

// countingBody adds the bytes read through it to n.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b countingBody) Read(p []byte) (int, error) {
	k, err := b.ReadCloser.Read(p)
	b.n.Add(int64(k))
	return k, err
}

// redisOutputBytes is what the Redis server has sent its clients so far.
func redisOutputBytes(t *testing.T, r *redistest.Server) int64 {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_net_output_bytes:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no total_net_output_bytes in INFO stats")
	return 0
}

// TestE2ELimitsGetTarget checks `limits get TARGET` among 5000 overrides
// over both drivers: the same limit and overrides as filtering the whole
// listing (the output of before), the same bytes over either driver, and
// only a few KiB from the daemon or Redis instead of the whole listing.
func TestE2ELimitsGetTarget(t *testing.T) {
	const n = 5000
	r := redistest.Start(t)
	fillOverrides(t, r, "refrakt:", n)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL()}, "--workers", "0")

	// The API driver goes through a proxy that counts the bytes it answers.
	var answered atomic.Int64
	up, err := url.Parse(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(up)
	proxy.ModifyResponse = func(resp *http.Response) error {
		resp.Body = countingBody{resp.Body, &answered}
		return nil
	}
	front := httptest.NewServer(proxy)
	defer front.Close()
	envs := drivers(t, d, r, "refrakt:")
	envs[0].env["REFRAKT_SERVER"] = front.URL

	// A second Redis that no daemon reads, so that its output is the CLI's.
	quiet := redistest.Start(t)
	fillOverrides(t, quiet, "refrakt:", n)
	envs[1].env["REFRAKT_REDIS"] = quiet.URL()

	// The daemon loads the overrides once it runs, maybe after it is ready.
	full := limitsJSON(t, envs[0].env)
	for deadline := time.Now().Add(10 * time.Second); len(full.Overrides) != n+4 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		full = limitsJSON(t, envs[0].env)
	}
	if len(full.Overrides) != n+4 {
		t.Fatalf("the daemon lists %d overrides, want %d", len(full.Overrides), n+4)
	}
	for _, target := range []string{"run:ip:203.0.113.7", "rl-test", "run:user", "run:ip:10.0.0.7"} {
		want, err := filterLimits(full, target)
		if err != nil {
			t.Fatal(err)
		}
		var tables []string
		for _, de := range envs {
			t.Run(target+" over "+de.name, func(t *testing.T) {
				answered.Store(0)
				before := redisOutputBytes(t, quiet)
				got := limitsJSON(t, de.env, target)
				sent := answered.Load()
				if de.name == "redis" {
					sent = redisOutputBytes(t, quiet) - before
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("limits get %s (-want +got):\n%s", target, diff)
				}
				if sent > 8<<10 {
					t.Errorf("limits get %s: %d bytes from the %s, want at most 8 KiB", target, sent, de.name)
				}
				tables = append(tables, mustCLI(t, de.env, "limits", "get", target))
			})
		}
		if len(tables) == 2 && tables[0] != tables[1] {
			t.Errorf("limits get %s over the API:\n%s\nover Redis:\n%s", target, tables[0], tables[1])
		}
	}
	for _, de := range envs {
		wantFail(t, de.env, ExitUsage, `unknown limit "nope" in target "nope:ip"`, "limits", "get", "nope:ip")
		wantFail(t, de.env, ExitUsage, `limit "rl-test" has no scope "user" (target "rl-test:user")`, "limits", "get", "rl-test:user")
	}
}

// TestE2ELimitsGetCanonicalTarget: `limits get` finds an override under
// the name it is stored by (an IPv6 address is keyed by its /64), however
// the target is written, over both drivers, as `limits set` and `unset`
// take it.
func TestE2ELimitsGetCanonicalTarget(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL()}, "--workers", "0")
	envs := drivers(t, d, r, "refrakt:")
	mustCLI(t, envs[0].env, "limits", "set", "run:ip:2001:db8::1", "--capacity", "3", "--window", "1m")
	for _, de := range envs {
		got := limitsJSON(t, de.env, "run:ip:2001:db8::1")
		var targets []string
		for _, o := range got.Overrides {
			targets = append(targets, o.Target)
		}
		if diff := cmp.Diff([]string{"run:ip:2001:db8::/64"}, targets); diff != "" {
			t.Errorf("limits get run:ip:2001:db8::1 over %s (-want +got):\n%s", de.name, diff)
		}
	}
}
