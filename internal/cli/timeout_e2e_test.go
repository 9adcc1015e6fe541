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

// timedJob is what these tests read of a job's JSON.
type timedJob struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error"`
	TimeoutMS int64  `json:"timeout_ms"`
}

func mustBinJob(t *testing.T, env map[string]string, args ...string) timedJob {
	t.Helper()
	code, out, errOut := binCLI(t, env, append(args, "-o", "json")...)
	var j timedJob
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil {
		t.Fatalf("refrakt %s: exit %d, %q, stderr %q", strings.Join(args, " "), code, out, errOut)
	}
	return j
}

// TestE2EJobTimeout: the real binary, a real daemon (workers on, Redis)
// and a real redis-server. `jobs enqueue --timeout` stores the job's
// timeout_ms, which `jobs get` shows (JSON and piped); the daemon's worker
// cuts the run at it, and the job is dead with "timed out after 300ms"
// well before its 10s sleep would end. `jobs run --redis` (the CLI runs
// the handler) is bounded too: by the job's timeout_ms, else (no daemon
// under that prefix) by this shell's JOB_TIMEOUT. Before timeout37 --timeout was an unknown flag and
// the runs took the whole 10s.
func TestE2EJobTimeout(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=tmo:", "JOB_TIMEOUT=1h"}, "--workers", "1")
	api := map[string]string{"REFRAKT_SERVER": d.URL, "REFRAKT_TOKEN": d.Token, "XDG_STATE_HOME": t.TempDir()}

	start := time.Now()
	j := mustBinJob(t, api, "jobs", "enqueue", "sleep", "--payload", `{"ms":10000}`, "--timeout", "300ms", "--max-retries", "0")
	if j.TimeoutMS != 300 {
		t.Errorf("enqueue answered timeout_ms %d, want 300", j.TimeoutMS)
	}
	for deadline := time.Now().Add(8 * time.Second); j.Status != "dead"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon's worker did not cut the job at its timeout: %+v", j)
		}
		j = mustBinJob(t, api, "jobs", "get", j.ID)
	}
	if took := time.Since(start); j.LastError != "timed out after 300ms" || j.TimeoutMS != 300 || took > 9*time.Second {
		t.Errorf("the job after its run: %+v, %s after its enqueue; want dead, timed out after 300ms", j, took)
	}
	if code, out, _ := binCLI(t, api, "jobs", "get", j.ID); code != 0 || !strings.Contains(out, "timeout\t300ms\n") {
		t.Errorf("jobs get (piped) lacks the timeout line: exit %d\n%s", code, out)
	}

	// Under a prefix of their own, out of the daemon's workers' reach.
	direct := map[string]string{"REFRAKT_REDIS": r.URL(), "REFRAKT_PREFIX": "cli:", "JOB_TIMEOUT": "250ms", "XDG_STATE_HOME": t.TempDir()}
	for _, tt := range []struct {
		name, want string
		flags      []string
	}{
		{"the job's timeout_ms", "timed out after 400ms", []string{"--timeout", "400ms"}},
		{"the shell's JOB_TIMEOUT", "timed out after 250ms", nil},
	} {
		args := append([]string{"jobs", "enqueue", "sleep", "--payload", `{"ms":10000}`, "--max-retries", "1"}, tt.flags...)
		j := mustBinJob(t, direct, args...)
		start := time.Now()
		got := mustBinJob(t, direct, "jobs", "run", j.ID)
		if took := time.Since(start); got.Status != "failed" || got.Attempts != 1 || got.LastError != tt.want || took > 9*time.Second {
			t.Errorf("%s: jobs run --redis answered %+v after %s; want failed, %q", tt.name, got, took, tt.want)
		}
	}
}

// TestE2ERunOverRedisBoundByTheDaemonsTimeout: `jobs run ID --redis` bounds
// a job without a timeout_ms of its own by the JOB_TIMEOUT the daemons on
// that Redis publish, not by this shell's (as it takes their retry
// backoff): a daemon (manual mode) with JOB_TIMEOUT 300ms, a shell with
// 1h, and the CLI cuts a 10s sleep at 300ms. Before, the shell's bound
// (or its 30m default) applied.
func TestE2ERunOverRedisBoundByTheDaemonsTimeout(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=pt:", "JOB_TIMEOUT=300ms"}, "--workers", "0")
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if d, ok, err := redisbroker.PublishedJobTimeout(context.Background(), rdb, "pt:"); err == nil && ok && d == 300*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon published no JOB_TIMEOUT within 15 s")
		}
	}
	direct := map[string]string{"REFRAKT_REDIS": r.URL(), "REFRAKT_PREFIX": "pt:", "JOB_TIMEOUT": "1h", "XDG_STATE_HOME": t.TempDir()}
	j := mustBinJob(t, direct, "jobs", "enqueue", "sleep", "--payload", `{"ms":10000}`)
	start := time.Now()
	got := mustBinJob(t, direct, "jobs", "run", j.ID)
	if took := time.Since(start); got.Status != "failed" || got.LastError != "timed out after 300ms" || took > 9*time.Second {
		t.Errorf("jobs run --redis answered %+v after %s; want failed, timed out after 300ms (the daemon's)", got, took)
	}
}
