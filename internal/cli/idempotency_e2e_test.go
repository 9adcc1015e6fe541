package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestE2EEnqueueIdempotencyKey: the binary's `jobs enqueue --idempotency-key
// K`, over a real daemon's API and straight over its Redis, enqueues once:
// run again it prints the same job (its id when piped, the job with -o
// json) and says on stderr that the job already existed, exit 0; a key made
// over one driver replays over the other; the key with another payload
// exits 1 with one line naming the key's job; a bad key exits 2; the queue
// holds the one job.
func TestE2EEnqueueIdempotencyKey(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=ik:"}, "--workers", "0")
	envs := drivers(t, d, r, "ik:")
	shared := ""
	for _, de := range envs {
		t.Run(de.name, func(t *testing.T) {
			q := "idem-" + de.name
			args := []string{"jobs", "enqueue", "echo", "--payload", `{"n":1}`, "--queue", q, "--idempotency-key", "order-1"}
			code, out, errOut := binCLI(t, de.env, args...)
			id := strings.TrimSpace(out)
			if code != ExitOK || len(id) != 22 || errOut != "" {
				t.Fatalf("first: exit %d, stdout %q, stderr %q; want 0 and a new job's id", code, out, errOut)
			}
			wantLine := "refrakt: job " + id + " already existed for this idempotency key (type echo, queue " + q + ", pending): nothing enqueued.\n"
			code, out, errOut = binCLI(t, de.env, args...)
			if code != ExitOK || out != id+"\n" || errOut != wantLine {
				t.Errorf("again: exit %d, stdout %q, stderr %q; want 0, %q, %q", code, out, errOut, id+"\n", wantLine)
			}
			code, out, errOut = binCLI(t, de.env, append(args, "-o", "json")...)
			var j queue.Job
			if err := json.Unmarshal([]byte(out), &j); code != ExitOK || err != nil || j.ID != id || errOut != wantLine {
				t.Errorf("again, -o json: exit %d, %v, stdout %q, stderr %q; want job %s and the line", code, err, out, errOut, id)
			}

			code, out, errOut = binCLI(t, de.env, "jobs", "enqueue", "echo", "--payload", `{"n":2}`, "--queue", q, "--idempotency-key", "order-1")
			if code != ExitFailed || out != "" || strings.Count(errOut, "\n") != 1 ||
				!strings.Contains(errOut, `idempotency key "order-1" was already used, for job `+id) {
				t.Errorf("another payload: exit %d, stdout %q, stderr %q; want 1 and one line naming job %s", code, out, errOut, id)
			}
			code, out, errOut = binCLI(t, de.env, "jobs", "enqueue", "ping", "--idempotency-key", "order 1")
			if code != ExitUsage || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "--idempotency-key") {
				t.Errorf("a bad key: exit %d, stdout %q, stderr %q; want 2 and one line", code, out, errOut)
			}
			if ids := listIDs(t, de.env, "--queue", q); len(ids) != 1 || ids[0] != id {
				t.Errorf("jobs of %s: %v, want only %s", q, ids, id)
			}

			// One key across the drivers: the other's replays the first's.
			sharedArgs := []string{"jobs", "enqueue", "ping", "--queue", "idem-shared", "--idempotency-key", "both"}
			code, out, _ = binCLI(t, de.env, sharedArgs...)
			if code != ExitOK {
				t.Fatalf("shared key: exit %d", code)
			}
			if shared == "" {
				shared = strings.TrimSpace(out)
			} else if got := strings.TrimSpace(out); got != shared {
				t.Errorf("the key made over the other driver: job %s, want %s", got, shared)
			}
		})
	}
}

// TestEnqueueIdempotencyKeyEarlierDaemon: a daemon of an earlier version
// refuses the body's idempotency_key as an unknown field (400): the CLI
// says in one line that the daemon does not know idempotency keys, and
// what to do, exit 2.
func TestEnqueueIdempotencyKeyEarlierDaemon(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"code":"invalid","message":"unknown field \"idempotency_key\""}}`)
	}))
	defer srv.Close()
	env := map[string]string{"REFRAKT_SERVER": srv.URL, "REFRAKT_TOKEN": "x", "XDG_STATE_HOME": t.TempDir()}
	wantFail(t, env, ExitUsage, "does not know idempotency keys (it is of an earlier version): enqueue without --idempotency-key, over Redis with --redis, or upgrade the daemon",
		"jobs", "enqueue", "ping", "--idempotency-key", "k")
}
