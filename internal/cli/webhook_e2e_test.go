package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue/webhook"
	"github.com/refrakt/refrakt/internal/redistest"
)

// hookedJob is what these tests read of a job's JSON.
type hookedJob struct {
	ID       string          `json:"id"`
	Status   string          `json:"status"`
	Attempts int             `json:"attempts"`
	Result   json.RawMessage `json:"result"`
	LastErr  string          `json:"last_error"`
}

// compact is the JSON of raw without its indentation.
func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	_ = json.Compact(&b, raw)
	return b.String()
}

// TestE2EWebhookJobs: the real binary and a real redis-server. A daemon
// with JOB_WEBHOOKS runs a job `jobs enqueue --redis` stored (the CLI
// taking the type from its own JOB_WEBHOOKS), delivered signed to the
// test's receiver; `jobs run --redis ID` with the same environment delivers
// one from the CLI; without it, the CLI refuses the type at enqueue and
// refuses to run such a job, exit 2, the job left untouched (no attempt).
func TestE2EWebhookJobs(t *testing.T) {
	t.Parallel()
	const secret = "whsec-e2e-0123456789abcdef"
	delivered := make(chan http.Header, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if webhook.Verify(r.Header.Get("Refrakt-Signature"), []byte(secret), body, time.Now(), time.Minute) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		delivered <- r.Header.Clone()
		io.WriteString(w, `{"reported":`+string(body)+`}`)
	}))
	t.Cleanup(srv.Close)
	hooks := "report=" + srv.URL + "/jobs/report"
	r := redistest.Start(t)
	startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=hook:", "JOB_WEBHOOKS=" + hooks, "JOB_WEBHOOK_SECRET=" + secret}, "--workers", "1")

	env := map[string]string{"REFRAKT_REDIS": r.URL(), "REFRAKT_PREFIX": "hook:", "JOB_WEBHOOKS": hooks, "JOB_WEBHOOK_SECRET": secret, "XDG_STATE_HOME": t.TempDir()}
	job := func(env map[string]string, args ...string) hookedJob {
		t.Helper()
		code, out, errOut := binCLI(t, env, append(args, "-o", "json")...)
		var j hookedJob
		if code != 0 || json.Unmarshal([]byte(out), &j) != nil {
			t.Fatalf("refrakt %s: exit %d, %q, stderr %q", strings.Join(args, " "), code, out, errOut)
		}
		return j
	}
	j := job(env, "jobs", "enqueue", "report", "--payload", `{"n":1}`)
	for deadline := time.Now().Add(10 * time.Second); j.Status != "succeeded"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not deliver the job: %+v", j)
		}
		j = job(env, "jobs", "get", j.ID)
	}
	if compact(j.Result) != `{"reported":{"n":1}}` || j.Attempts != 1 {
		t.Errorf("job run by the daemon: %+v", j)
	}
	if h := <-delivered; h.Get("Refrakt-Job-Id") != j.ID {
		t.Errorf("delivered job %q, want %s", h.Get("Refrakt-Job-Id"), j.ID)
	}

	// The CLI runs one itself, under a prefix no daemon serves.
	direct := maps.Clone(env)
	direct["REFRAKT_PREFIX"] = "cli:"
	j = job(direct, "jobs", "enqueue", "report", "--payload", `[2]`)
	j = job(direct, "jobs", "run", j.ID)
	if j.Status != "succeeded" || compact(j.Result) != `{"reported":[2]}` || j.Attempts != 1 {
		t.Errorf("job run by the CLI: %+v", j)
	}
	if h := <-delivered; h.Get("Refrakt-Job-Id") != j.ID || h.Get("Refrakt-Job-Queue") != "default" || h.Get("Refrakt-Job-Attempt") != "1" {
		t.Errorf("delivery from the CLI: %v", h)
	}

	// Without JOB_WEBHOOKS the CLI knows no such type.
	bare := maps.Clone(direct)
	delete(bare, "JOB_WEBHOOKS")
	if code, _, errOut := binCLI(t, bare, "jobs", "enqueue", "report"); code != 2 || !strings.Contains(errOut, `unknown job type "report"`) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("enqueue without JOB_WEBHOOKS: exit %d, %q; want 2, one line", code, errOut)
	}
	j = job(direct, "jobs", "enqueue", "report")
	code, _, errOut := binCLI(t, bare, "jobs", "run", j.ID)
	if code != 2 || !strings.Contains(errOut, `is of type "report", which this process has no handler for`) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("run without JOB_WEBHOOKS: exit %d, %q; want 2, one line", code, errOut)
	}
	if got := job(direct, "jobs", "get", j.ID); got.Status != "pending" || got.Attempts != 0 {
		t.Errorf("the job after the refused run: %+v; want pending, no attempt", got)
	}
	// --next takes it (the only job pending under this prefix), finds no
	// handler, and hands it back unrun: the same message, exit 2, and
	// neither an attempt spent nor a retry scheduled (rvhook38 M3).
	code, _, errOut = binCLI(t, bare, "jobs", "run", "--next")
	if code != 2 || !strings.Contains(errOut, `job `+j.ID+` is of type "report", which this process has no handler for`) ||
		!strings.Contains(errOut, "nothing was run") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("run --next without JOB_WEBHOOKS: exit %d, %q; want 2, one line", code, errOut)
	}
	if got := job(direct, "jobs", "get", j.ID); got.Status != "pending" || got.Attempts != 0 || got.LastErr != "" {
		t.Errorf("the job after the refused run --next: %+v; want pending, no attempt, no error", got)
	}
	// Handed back, it is still runnable: by a shell that has the type.
	if got := job(direct, "jobs", "run", "--next"); got.ID != j.ID || got.Status != "succeeded" || got.Attempts != 1 {
		t.Errorf("run --next with JOB_WEBHOOKS after the hand-back: %+v", got)
	}
	select {
	case <-delivered:
	case <-time.After(5 * time.Second):
		t.Error("the job run after the hand-back was not delivered")
	}
	// A bad JOB_WEBHOOKS in the shell: exit 2, one line naming it.
	bad := maps.Clone(direct)
	bad["JOB_WEBHOOKS"] = "report=ftp://h/x"
	if code, _, errOut := binCLI(t, bad, "jobs", "list"); code != 2 || !strings.Contains(errOut, "JOB_WEBHOOKS: pair 1: the URL has a scheme other than http or https") {
		t.Errorf("bad JOB_WEBHOOKS: exit %d, %q", code, errOut)
	}
}
