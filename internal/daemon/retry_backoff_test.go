package daemon

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/daemontest"
)

// TestRetryBackoffFromSettings: a real daemon (memory backend, manual mode)
// schedules a failed job's retry by JOB_RETRY_BASE and JOB_RETRY_MAX: Base
// doubled per retry up to the cap, ±20%, never past the cap. Each retry is
// read from the job's run_at against the moment its attempt failed, which
// lies between its started_at and the answer of `run ID`: no waiting. The
// start-up line shows both settings. Before backoff36 the base and the cap
// were fixed at 100ms and 1h.
func TestRetryBackoffFromSettings(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		name string
		env  []string
		logs []string
		// want[i] is the range of the delay before retry i+1.
		want [][2]time.Duration
	}{
		{"an hour's base, a week's cap", []string{"JOB_RETRY_BASE=1h", "JOB_RETRY_MAX=168h"},
			[]string{"job_retry_base=1h0m0s", "job_retry_max=168h0m0s"},
			[][2]time.Duration{{48 * time.Minute, 72 * time.Minute}, {96 * time.Minute, 144 * time.Minute}}},
		{"an hour's base at the default cap", []string{"JOB_RETRY_BASE=1h"},
			[]string{"job_retry_base=1h0m0s", "job_retry_max=1h0m0s"},
			[][2]time.Duration{{48 * time.Minute, 60 * time.Minute}, {48 * time.Minute, 60 * time.Minute}}},
		{"10ms doubling to a 20ms cap", []string{"JOB_RETRY_BASE=10ms", "JOB_RETRY_MAX=20ms"},
			[]string{"job_retry_base=10ms", "job_retry_max=20ms"},
			[][2]time.Duration{{8 * ms, 12 * ms}, {16 * ms, 20 * ms}, {16 * ms, 20 * ms}, {16 * ms, 20 * ms}, {16 * ms, 20 * ms}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := daemontest.Start(t, tt.env, "--workers", "0")
			d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
			for _, w := range tt.logs {
				if !strings.Contains(d.Log(), w) {
					t.Errorf("the start-up log lacks %s:\n%s", w, d.Log())
				}
			}
			resp, b := d.Call(http.MethodPost, "/api/dev/jobs/enqueue", `{"type":"fail","queue":"backoff","max_retries":`+strconv.Itoa(len(tt.want))+`}`)
			var job struct{ ID string }
			if err := json.Unmarshal(b, &job); err != nil || resp.StatusCode != http.StatusAccepted || job.ID == "" {
				t.Fatalf("enqueue: %d %s", resp.StatusCode, b)
			}
			for i, want := range tt.want {
				resp, b := d.Call(http.MethodPost, "/api/dev/jobs/"+job.ID+"/run", "")
				answered := time.Now()
				var got struct {
					Status    string    `json:"status"`
					Retries   int       `json:"retries"`
					StartedAt time.Time `json:"started_at"`
					RunAt     time.Time `json:"run_at"`
				}
				if err := json.Unmarshal(b, &got); err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("run %d: %d %s", i+1, resp.StatusCode, b)
				}
				if got.Status != "failed" || got.Retries != i+1 {
					t.Fatalf("run %d: status %s, retries %d; want failed, %d: %s", i+1, got.Status, got.Retries, i+1, b)
				}
				// The attempt failed at some moment in [started_at,
				// answered]; run_at is that moment plus the delay
				// (truncated to the millisecond).
				lo, hi := got.StartedAt.Add(want[0]-ms), answered.Add(want[1])
				if got.RunAt.Before(lo) || got.RunAt.After(hi) {
					t.Errorf("retry %d: run_at %s after started_at, answered %s after it; want a delay in [%s, %s]",
						i+1, got.RunAt.Sub(got.StartedAt), answered.Sub(got.StartedAt), want[0], want[1])
				}
			}
		})
	}
}

// TestRetryBackoffKeepsTheJitter (rvbackoff36 M2): the settings give the
// base and the cap; the ±20% jitter, which spreads jobs failing together,
// stays (the daemon test above reads one job's delays, which a backoff
// without jitter would pass too).
func TestRetryBackoffKeepsTheJitter(t *testing.T) {
	cfg := config.Default()
	cfg.JobRetryBase, cfg.JobRetryMax = 2*time.Second, time.Minute
	want := queue.Backoff{Base: 2 * time.Second, Cap: time.Minute, Jitter: 0.2}
	if got := RetryBackoff(cfg); got != want {
		t.Fatalf("RetryBackoff = %+v, want %+v", got, want)
	}
	spread := map[time.Duration]bool{}
	for range 50 {
		spread[RetryBackoff(cfg).Delay(1)] = true
	}
	if len(spread) < 10 {
		t.Errorf("50 first delays took %d values: the retries of jobs failing together are not spread", len(spread))
	}
}
