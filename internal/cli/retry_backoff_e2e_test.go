package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestE2ERunOverRedisRetriesByTheDaemonsBackoff: `jobs run ID --redis`
// runs a failing job in the CLI and schedules its retry by the backoff the
// daemons on that Redis publish (JOB_RETRY_BASE, JOB_RETRY_MAX), not by
// this shell's; with no daemon there, by this shell's. Before backoff36 the
// CLI retried after 100ms doubling, whatever the daemons were set to. Each
// retry is read from the job's run_at against the moment its attempt
// failed, between its started_at and the CLI's return: no waiting.
func TestE2ERunOverRedisRetriesByTheDaemonsBackoff(t *testing.T) {
	t.Parallel()
	weekCap := [][2]time.Duration{{48 * time.Minute, 72 * time.Minute}, {96 * time.Minute, 144 * time.Minute}}
	tests := []struct {
		name      string
		daemonEnv []string // nil: no daemon
		shellEnv  map[string]string
		want      [][2]time.Duration
	}{
		{"the daemons' backoff, not the shell's", []string{"JOB_RETRY_BASE=1h", "JOB_RETRY_MAX=168h"},
			map[string]string{"JOB_RETRY_BASE": "10ms", "JOB_RETRY_MAX": "20ms"}, weekCap},
		{"the shell's backoff without a daemon", nil,
			map[string]string{"JOB_RETRY_BASE": "1h", "JOB_RETRY_MAX": "168h"}, weekCap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := redistest.Start(t)
			if tt.daemonEnv != nil {
				startDaemon(t, append([]string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=bo:"}, tt.daemonEnv...), "--workers", "0")
				rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
				defer rdb.Close()
				for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
					if b, ok, err := redisbroker.PublishedBackoff(context.Background(), rdb, "bo:"); err == nil && ok && b.Base == time.Hour {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("the daemon published no retry backoff within 15 s")
					}
				}
			}
			env := map[string]string{"REFRAKT_REDIS": r.URL(), "REFRAKT_PREFIX": "bo:", "XDG_STATE_HOME": t.TempDir()}
			for k, v := range tt.shellEnv {
				env[k] = v
			}
			var job struct{ ID string }
			out := mustCLI(t, env, "jobs", "enqueue", "fail", "--max-retries", "2", "-o", "json")
			if err := json.Unmarshal([]byte(out), &job); err != nil || job.ID == "" {
				t.Fatalf("jobs enqueue: %q (%v)", out, err)
			}
			for i, want := range tt.want {
				out := mustCLI(t, env, "jobs", "run", job.ID, "-o", "json")
				returned := time.Now()
				var got struct {
					Status    string    `json:"status"`
					Retries   int       `json:"retries"`
					StartedAt time.Time `json:"started_at"`
					RunAt     time.Time `json:"run_at"`
				}
				if err := json.Unmarshal([]byte(out), &got); err != nil {
					t.Fatalf("jobs run: %q (%v)", out, err)
				}
				if got.Status != "failed" || got.Retries != i+1 {
					t.Fatalf("run %d: status %s, retries %d; want failed, %d: %s", i+1, got.Status, got.Retries, i+1, strings.TrimSpace(out))
				}
				lo, hi := got.StartedAt.Add(want[0]-time.Millisecond), returned.Add(want[1])
				if got.RunAt.Before(lo) || got.RunAt.After(hi) {
					t.Errorf("retry %d: run_at %s after started_at; want a delay in [%s, %s]", i+1, got.RunAt.Sub(got.StartedAt), want[0], want[1])
				}
			}
		})
	}
}
