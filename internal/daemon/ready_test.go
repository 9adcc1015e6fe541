package daemon

import (
	"context"
	"fmt"
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
	master, replica := redistest.Start(t), redistest.Start(t)
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer rc.Close()
	host, port, _ := strings.Cut(master.Addr(), ":")
	if err := rc.ReplicaOf(ctx, host, port).Err(); err != nil {
		t.Fatal(err)
	}
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

// TestReadyzOnAClusterWithAMasterPaused (fail30 F4): on a Redis Cluster
// /readyz probes every master and stays 200 while one of them passes,
// naming those that do not; it is 503 only when none passes. It probed one
// fixed key, so readiness followed whichever master held its slot: every
// daemon left the load balancer with that one master down (and stayed in
// with another down).
func TestReadyzOnAClusterWithAMasterPaused(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, "--cluster-node-timeout", "60000")
	s, _ := newURLServer(t, c.URL(), func(c *config.Config) { c.RateLimitEnabled = false })
	failing := func(body map[string]any) []string {
		var out []string
		list, _ := body["failing_masters"].([]any)
		if d, ok := body["error"].(map[string]any); ok {
			details, _ := d["details"].(map[string]any)
			list, _ = details["failing_masters"].([]any)
		}
		for _, m := range list {
			m, _ := m.(map[string]any)
			out = append(out, fmt.Sprint(m["server"], ": ", m["problem"]))
		}
		slices.Sort(out)
		return out
	}
	if resp, body := do(t, s, "GET", "/readyz", "", ""); resp.StatusCode != 200 || len(failing(body)) > 0 {
		t.Fatalf("/readyz with every master up: %d %v, want 200 naming none", resp.StatusCode, body)
	}

	// The master of the single-server probe key's slot.
	held := c.MasterFor("refrakt:ready-probe")
	held.Pause()
	defer held.Resume()
	resp, body := do(t, s, "GET", "/readyz", "", "")
	if want := []string{held.Addr() + ": not answering"}; resp.StatusCode != 200 || !slices.Equal(failing(body), want) {
		t.Errorf("/readyz with master %s paused: %d %v, want 200 naming it (%q)", held.Addr(), resp.StatusCode, body, want)
	}

	var all []string
	for _, n := range c.Nodes() {
		if n != held {
			n.Pause()
			defer n.Resume()
		}
		all = append(all, n.Addr()+": not answering")
	}
	slices.Sort(all)
	resp, body = do(t, s, "GET", "/readyz", "", "")
	if resp.StatusCode != 503 || errMessage(body) != "backend redis-cluster is not reachable" || !slices.Equal(failing(body), all) {
		t.Errorf("/readyz with every master paused: %d %v, want 503 naming all of them", resp.StatusCode, body)
	}
}
