package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestReadyzRefusesWhatCannotWork: /readyz is 503 on a Redis the daemon
// can reach but not work with, naming why: a read-only replica (its URL
// given for the master's) and a user denied scripts. A PING passed both,
// so a load balancer kept such a daemon while every enqueue got 503.
func TestReadyzRefusesWhatCannotWork(t *testing.T) {
	ctx := context.Background()
	master, replica, _ := masterAndReplica(t)
	noScripts := master.ACLUser(t, "noscripts", "pw", "~*", "&*", "+@all", "-@scripting")
	for _, tt := range []struct {
		name, url string
		status    int
		message   string
	}{
		{"master", master.URL(), 200, ""},
		{"replica", replica.URL(), 503, "read-only replica"},
		{"user denied scripts", noScripts, 503, "refuses this daemon's user (permission denied)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client, kind, err := OpenRedis(ctx, tt.url, "auto")
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			cfg := testConfig()
			s, err := NewServer(Deps{Config: cfg, Backend: &Backend{Kind: kind, Redis: client, Prefix: cfg.Prefix}})
			if err != nil {
				t.Fatal(err)
			}
			var resp int
			var msg string
			// The replica answers as one once it has synced with its
			// master (LOADING before: "not reachable").
			deadline := time.Now().Add(5 * time.Second)
			for {
				r, body := do(t, s, "GET", "/readyz", "", "")
				resp, msg = r.StatusCode, errMessage(body)
				if resp == tt.status && strings.Contains(msg, tt.message) || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if resp != tt.status || !strings.Contains(msg, tt.message) {
				t.Errorf("/readyz %d %q, want %d naming %q", resp, msg, tt.status, tt.message)
			}
		})
	}
}

// masterAndReplica starts a Redis server and a replica of it, with a
// client of the replica (closed when the test ends).
func masterAndReplica(t *testing.T) (master, replica *redistest.Server, rc *redis.Client) {
	t.Helper()
	master, replica = redistest.Start(t), redistest.Start(t)
	rc = redis.NewClient(&redis.Options{Addr: replica.Addr()})
	t.Cleanup(func() { rc.Close() })
	host, port, _ := strings.Cut(master.Addr(), ":")
	if err := rc.ReplicaOf(context.Background(), host, port).Err(); err != nil {
		t.Fatal(err)
	}
	return master, replica, rc
}

// TestNotReadyNamesAWrappedReadOnlyError: a replica's READONLY names the
// replica in /readyz's message when the probe's error wraps it too (it
// was told by the text's prefix, which a wrapped error does not have:
// review cr32b 7).
func TestNotReadyNamesAWrappedReadOnlyError(t *testing.T) {
	ctx := context.Background()
	_, _, rc := masterAndReplica(t)
	err := rc.Set(ctx, "k", "v", 0).Err()
	if !redis.IsReadOnlyError(err) {
		t.Fatalf("a write on the replica: %v, want READONLY", err)
	}
	for _, e := range []error{err, fmt.Errorf("probe: %w", err)} {
		if msg := notReady("redis", e); !strings.Contains(msg, "read-only replica") {
			t.Errorf("notReady(%q) = %q, want it to name a read-only replica", e, msg)
		}
	}
}

// TestReadyzOnAClusterWithAMasterPaused (fail30 F4): on a Redis Cluster
// /readyz probes every master and stays 200 while one of them passes,
// naming those that do not; it is 503 only when none passes. It probed one
// fixed key, so readiness followed whichever master held its slot: every
// daemon left the load balancer with that one master down (and stayed in
// with another down).
//
// Anyone may call /readyz (sec31 LOW 4): without a token, or with a wrong
// one, it counts the masters and the failing ones and says what each does,
// but holds no host:port; with an operator or developer token it names
// their addresses too.
func TestReadyzOnAClusterWithAMasterPaused(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, "--cluster-node-timeout", "60000")
	s, _ := newURLServer(t, c.URL(), func(c *config.Config) { c.RateLimitEnabled = false })
	failing := func(body map[string]any) (out []string, masters, count int) {
		list, _ := body["failing_masters"].([]any)
		masters, count = num(body, "masters"), num(body, "masters_failing")
		if d, ok := body["error"].(map[string]any); ok {
			details, _ := d["details"].(map[string]any)
			list, _ = details["failing_masters"].([]any)
			masters, count = num(details, "masters"), num(details, "masters_failing")
		}
		for _, m := range list {
			m, _ := m.(map[string]any)
			if server, ok := m["server"]; ok {
				out = append(out, fmt.Sprint(server, ": ", m["problem"]))
			} else {
				out = append(out, fmt.Sprint(m["problem"]))
			}
		}
		slices.Sort(out)
		return out, masters, count
	}
	hostPort := regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+|:\d{4,5}\b`)
	// readyz asks without a token, with a wrong one, and with each role's:
	// check gets the answer, and whether it may name addresses.
	readyz := func(check func(token string, named bool, status int, body map[string]any)) {
		t.Helper()
		for _, tt := range []struct {
			token string
			named bool
		}{{"", false}, {"not-a-token-0123456789", false}, {opToken, true}, {devToken, true}} {
			resp, body := do(t, s, "GET", "/readyz", tt.token, "")
			if raw, _ := json.Marshal(body); !tt.named && hostPort.Match(raw) {
				t.Errorf("/readyz with token %q: %s, want no host:port", tt.token, raw)
			}
			check(tt.token, tt.named, resp.StatusCode, body)
		}
	}
	readyz(func(token string, _ bool, status int, body map[string]any) {
		if list, _, _ := failing(body); status != 200 || len(list) > 0 {
			t.Fatalf("/readyz with every master up, token %q: %d %v, want 200 naming none", token, status, body)
		}
	})

	// The master of the single-server probe key's slot.
	held := c.MasterFor("refrakt:ready-probe")
	held.Pause()
	defer held.Resume()
	readyz(func(token string, named bool, status int, body map[string]any) {
		want := []string{"not answering"}
		if named {
			want = []string{held.Addr() + ": not answering"}
		}
		if list, masters, count := failing(body); status != 200 || !slices.Equal(list, want) || masters != 3 || count != 1 {
			t.Errorf("/readyz with master %s paused, token %q: %d %v, want 200 counting 1 of 3 failing (%q)", held.Addr(), token, status, body, want)
		}
	})

	var all, anonymous []string
	for _, n := range c.Nodes() {
		if n != held {
			n.Pause()
			defer n.Resume()
		}
		all = append(all, n.Addr()+": not answering")
		anonymous = append(anonymous, "not answering")
	}
	slices.Sort(all)
	readyz(func(token string, named bool, status int, body map[string]any) {
		want := anonymous
		if named {
			want = all
		}
		if list, masters, count := failing(body); status != 503 || errMessage(body) != "backend redis-cluster is not reachable" ||
			!slices.Equal(list, want) || masters != 3 || count != 3 {
			t.Errorf("/readyz with every master paused, token %q: %d %v, want 503 counting 3 of 3 failing (%q)", token, status, body, want)
		}
	})
}
