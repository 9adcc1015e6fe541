package daemon

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestDeadJobsLogged: a job whose last attempt fails is logged at WARN with
// its id, queue, type, attempts and error, on both backends. The history
// keeps a dead job only among its queue's last JOB_HISTORY finished jobs, so
// on a busy queue it is soon gone (a runbook drill: `jobs list --status
// dead` found none of 10 after 300 successes); the log line stays.
func TestDeadJobsLogged(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var env []string
			if backend == "redis" {
				env = append(env, "QUEUE_URL="+redistest.Start(t).URL())
			}
			d := daemontest.Start(t, env)
			d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
			resp, err := http.Post(d.URL+"/run", "application/json", strings.NewReader(`{"type":"fail","queue":"doomed","max_retries":1}`))
			if err != nil {
				t.Fatal(err)
			}
			var job struct{ ID string }
			err = json.NewDecoder(resp.Body).Decode(&job)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusAccepted || job.ID == "" {
				t.Fatalf("POST /run: %d, %v", resp.StatusCode, err)
			}
			want := []string{"level=WARN", `msg="job dead: retries exhausted"`, "id=" + job.ID, "queue=doomed", "type=fail", "attempts=2", "error="}
			var line string
			for deadline := time.Now().Add(15 * time.Second); line == ""; time.Sleep(50 * time.Millisecond) {
				line = grep(d.Log(), "job dead")
				if line == "" && time.Now().After(deadline) {
					r, _ := http.Get(d.URL + "/run/" + job.ID)
					b, _ := io.ReadAll(r.Body)
					r.Body.Close()
					t.Fatalf("no dead job logged in 15 s; the job: %s\nlog:\n%s", b, d.Log())
				}
			}
			for _, w := range want {
				if !strings.Contains(line, w) {
					t.Errorf("the dead job's line lacks %q: %s", w, line)
				}
			}
		})
	}
}
