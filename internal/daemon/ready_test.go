package daemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
