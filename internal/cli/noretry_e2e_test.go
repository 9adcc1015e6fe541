package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestE2EFailNoRetry: the binary's `jobs enqueue fail --payload
// '{"retry":false}' --max-retries 5`, over a real daemon's API and straight
// over its Redis (where `jobs run` runs the handler in the CLI itself),
// makes a job that goes dead at its first attempt; `jobs get` and `jobs
// list --status dead` show it with its last_error, `jobs requeue` brings
// it back with its retries reset. A daemon with workers does the same. A
// fail payload the type refuses exits 2 with one line, storing nothing.
func TestE2EFailNoRetry(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=nr:"}, "--workers", "0")
	const lastErr = "fail: this job always fails (not retried)"
	for _, de := range drivers(t, d, r, "nr:") {
		t.Run(de.name, func(t *testing.T) {
			q := "final-" + de.name
			code, out, errOut := binCLI(t, de.env, "jobs", "enqueue", "fail", "--payload", `{"retry":false}`, "--max-retries", "5", "--queue", q)
			id := strings.TrimSpace(out)
			if code != ExitOK || id == "" {
				t.Fatalf("jobs enqueue: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			j := jobJSON(t, de.env, "jobs", "run", id)
			if d := cmp.Diff([4]any{queue.StatusDead, 1, 1, lastErr}, [4]any{j.Status, j.Attempts, j.Retries, j.LastError}); d != "" {
				t.Errorf("jobs run: (-want +got):\n%s", d)
			}
			code, out, errOut = binCLI(t, de.env, "jobs", "get", id)
			if code != ExitOK || !strings.Contains(out, "dead") || !strings.Contains(out, lastErr) {
				t.Errorf("jobs get: exit %d, stdout %q, stderr %q; want it dead with %q", code, out, errOut, lastErr)
			}
			if d := cmp.Diff([]string{id}, listIDs(t, de.env, "--queue", q, "--status", "dead")); d != "" {
				t.Errorf("jobs list --status dead (-want +got):\n%s", d)
			}
			if code, _, errOut := binCLI(t, de.env, "jobs", "requeue", id); code != ExitOK {
				t.Fatalf("jobs requeue: exit %d, stderr %q", code, errOut)
			}
			if j := jobJSON(t, de.env, "jobs", "get", id); j.Status != queue.StatusPending || j.Retries != 0 {
				t.Errorf("requeued: %s with %d retries, want pending with 0", j.Status, j.Retries)
			}
			for _, p := range []string{`{"retry":true}`, `{"retry":false,"x":1}`, `[1]`, `{"Retry":false}`, `{"retry":null}`, `{"retry":true,"retry":false}`} {
				code, out, errOut := binCLI(t, de.env, "jobs", "enqueue", "fail", "--payload", p, "--queue", q)
				if code != ExitUsage || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, `fail takes no payload, {} or {"retry":false}`) {
					t.Errorf("jobs enqueue fail --payload %s: exit %d, stdout %q, stderr %q; want exit 2 and one line naming the payloads", p, code, out, errOut)
				}
			}
			if got := listIDs(t, de.env, "--queue", q); len(got) != 1 {
				t.Errorf("jobs of %s: %v, want the one job (the refused stored nothing)", q, got)
			}
		})
	}

	t.Run("workers", func(t *testing.T) {
		w := startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=nrw:"})
		env := drivers(t, w, r, "nrw:")[0].env
		code, out, errOut := binCLI(t, env, "jobs", "enqueue", "fail", "--payload", `{"retry":false}`, "--max-retries", "5")
		id := strings.TrimSpace(out)
		if code != ExitOK || id == "" {
			t.Fatalf("jobs enqueue: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		var j queue.Job
		for deadline := time.Now().Add(15 * time.Second); j.Status != queue.StatusDead; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not dead in 15 s: %+v\nlog:\n%s", j, w.Log())
			}
			j = jobJSON(t, env, "jobs", "get", id)
		}
		if j.Attempts != 1 || j.LastError != lastErr {
			t.Errorf("dead after %d attempts, last_error %q; want 1, %q", j.Attempts, j.LastError, lastErr)
		}
	})
}
