package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

func TestJobsPauseResumeFlags(t *testing.T) {
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
	}{
		{"a queue", []string{"emails"}, ExitOK},
		{"none", nil, ExitUsage},
		{"two", []string{"a", "b"}, ExitUsage},
		{"empty", []string{""}, ExitUsage},
		{"blank", []string{"  "}, ExitUsage},
		{"bad", []string{"bad queue"}, ExitUsage},
		{"unknown flag", []string{"emails", "--all"}, ExitUsage},
	} {
		t.Run("pause/"+tt.name, func(t *testing.T) {
			var want *JobsPauseOptions
			if tt.wantCode == ExitOK {
				want = &JobsPauseOptions{Queue: tt.args[0], Paused: true}
			}
			checkParse(t, newJobsPauseCmd, tt.args, want, tt.wantCode)
		})
		t.Run("resume/"+tt.name, func(t *testing.T) {
			var want *JobsPauseOptions
			if tt.wantCode == ExitOK {
				want = &JobsPauseOptions{Queue: tt.args[0], Paused: false}
			}
			checkParse(t, newJobsResumeCmd, tt.args, want, tt.wantCode)
		})
	}
}

// TestE2EPauseResume: the binary's `jobs pause Q` and `jobs resume Q`,
// over a real daemon's API (its workers running) and straight over its
// Redis, say what they did in one line (the answer as JSON with -o json);
// while Q is paused its jobs are enqueued but stay pending and `jobs run
// --next --queue Q` exits 1 saying so, and once resumed the daemon's
// workers run them; an unknown queue exits 1, a bad name 2, an
// unreachable daemon 3.
func TestE2EPauseResume(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=pz:"}, "--workers", "2")
	for _, de := range drivers(t, d, r, "pz:") {
		t.Run(de.name, func(t *testing.T) {
			q := "mail-" + de.name
			line := func(want string, args ...string) {
				t.Helper()
				code, out, errOut := binCLI(t, de.env, args...)
				if code != ExitOK || out != want+"\n" || errOut != "" {
					t.Errorf("refrakt %s: exit %d, stdout %q, stderr %q; want 0, %q", strings.Join(args, " "), code, out, errOut, want)
				}
			}
			settled := func(what string, status queue.Status, n int) {
				t.Helper()
				for deadline := time.Now().Add(10 * time.Second); len(listIDs(t, de.env, "--queue", q, "--status", string(status))) != n; time.Sleep(20 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("%s: not %d %s jobs within 10s", what, n, status)
					}
				}
			}
			mustCLI(t, de.env, "jobs", "enqueue", "ping", "--queue", q) // the queue exists
			settled("the first job", queue.StatusSucceeded, 1)

			line("queue "+q+" paused", "jobs", "pause", q)
			line("queue "+q+" was already paused", "jobs", "pause", q)
			code, out, _ := binCLI(t, de.env, "jobs", "pause", q, "-o", "json")
			var v PausedQueueView
			if err := json.Unmarshal([]byte(out), &v); code != ExitOK || err != nil {
				t.Fatalf("pause -o json: exit %d, %v, stdout %q", code, err, out)
			}
			if d := cmp.Diff(PausedQueueView{Queue: q, Paused: true, Changed: false}, v); d != "" {
				t.Errorf("pause -o json (-want +got):\n%s", d)
			}
			for range 3 {
				mustCLI(t, de.env, "jobs", "enqueue", "ping", "--queue", q)
			}
			time.Sleep(500 * time.Millisecond) // the workers fetch meanwhile
			if got := listIDs(t, de.env, "--queue", q, "--status", "pending"); len(got) != 3 {
				t.Errorf("pending jobs of the paused queue: %v, want the 3 enqueued", got)
			}
			wantFail(t, de.env, ExitFailed, "queue "+q+" is paused: resume it (refrakt jobs resume "+q+")",
				"jobs", "run", "--next", "--queue", q)

			line("queue "+q+" resumed", "jobs", "resume", q)
			settled("the held jobs after the resume", queue.StatusSucceeded, 4)
			line("queue "+q+" was not paused", "jobs", "resume", q)

			wantFail(t, de.env, ExitFailed, "queue nope-"+de.name+" not found", "jobs", "pause", "nope-"+de.name)
			wantFail(t, de.env, ExitFailed, "queue nope-"+de.name+" not found", "jobs", "resume", "nope-"+de.name)
			wantFail(t, de.env, ExitUsage, `queue "a b"`, "jobs", "pause", "a b")
		})
	}
	closed := daemontest.ClosedAddr(t)
	wantFail(t, map[string]string{"REFRAKT_SERVER": "http://" + closed, "REFRAKT_TOKEN": "x", "XDG_STATE_HOME": t.TempDir()},
		ExitUnreachable, "", "jobs", "pause", "mail")
}

// TestPauseEarlierDaemon: a daemon of an earlier version has no pause or
// resume route and answers 404 (in its own JSON, or the plain mux page):
// the CLI says in one line that the daemon is too old, and exits 1.
func TestPauseEarlierDaemon(t *testing.T) {
	forEachEarlierDaemon(t, func(t *testing.T, env map[string]string) {
		for _, verb := range []string{"pause", "resume"} {
			wantFail(t, env, ExitFailed, "earlier version, too old to "+verb+" a queue): "+verb+" over Redis with --redis, or upgrade the daemon",
				"jobs", verb, "mail")
		}
	})
}
