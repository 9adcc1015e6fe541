package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestJobsRequeueAllDeadFlags: `jobs requeue` takes a job ID, or --queue Q
// with --all-dead; every other mix is refused with exit 2 and one line,
// before any daemon is asked (the server here is a closed port, which would
// exit 3).
func TestJobsRequeueAllDeadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want *JobsRequeueOptions
		code int
		line string // in the one line of stderr, when refused
	}{
		{"an id", []string{"abc"}, &JobsRequeueOptions{ID: "abc"}, ExitOK, ""},
		{"all dead of a queue", []string{"--queue", "emails", "--all-dead"}, &JobsRequeueOptions{Queue: "emails", AllDead: true}, ExitOK, ""},
		{"all dead, flags the other way", []string{"--all-dead", "--queue=emails"}, &JobsRequeueOptions{Queue: "emails", AllDead: true}, ExitOK, ""},
		{"an id and --all-dead", []string{"abc", "--queue", "emails", "--all-dead"}, nil, ExitUsage, "not both"},
		{"a dash id and --all-dead", []string{"--all-dead", "--queue", "emails", "-tql6kYt3cFZ4TOR1PVd5Q"}, nil, ExitUsage, "not both"},
		{"--all-dead without --queue", []string{"--all-dead"}, nil, ExitUsage, "--all-dead needs --queue"},
		{"--queue without --all-dead", []string{"--queue", "emails"}, nil, ExitUsage, "--queue goes with --all-dead"},
		{"an id and --queue", []string{"abc", "--queue", "emails"}, nil, ExitUsage, "--queue goes with --all-dead"},
		{"nothing", nil, nil, ExitUsage, "give a job ID, or --queue Q --all-dead"},
		{"empty queue", []string{"--queue", "", "--all-dead"}, nil, ExitUsage, "names no queue"},
		{"bad queue", []string{"--queue", "a b", "--all-dead"}, nil, ExitUsage, `queue "a b": want 1-64`},
	}
	closed := daemontest.ClosedAddr(t)
	env := map[string]string{"REFRAKT_SERVER": "http://" + closed, "REFRAKT_TOKEN": "x", "XDG_STATE_HOME": t.TempDir()}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkParse(t, newJobsRequeueCmd, tt.args, tt.want, tt.code)
			if tt.code == ExitOK {
				return
			}
			code, out, errOut := runCLI(t, env, append([]string{"jobs", "requeue"}, tt.args...)...)
			if code != ExitUsage || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tt.line) {
				t.Errorf("refrakt jobs requeue %q: exit %d, stdout %q, stderr %q; want exit 2 and one line containing %q",
					tt.args, code, out, errOut, tt.line)
			}
		})
	}
}

// makeDeadCLI makes n fail jobs of queue q dead through the CLI (a daemon
// in manual mode: `jobs run ID` runs each) and returns their ids in
// the order they died.
func makeDeadCLI(t *testing.T, env map[string]string, q string, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		id := strings.TrimSpace(mustCLI(t, env, "jobs", "enqueue", "fail", "--max-retries", "0", "--queue", q))
		if j := jobJSON(t, env, "jobs", "run", id); j.ID != id || j.Status != queue.StatusDead {
			t.Fatalf("jobs run: %s %s, want %s dead", j.ID, j.Status, id)
		}
		ids = append(ids, id)
	}
	return ids
}

// listIDs runs the binary's `jobs list` with args and returns the ids it
// lists, in its order.
func listIDs(t *testing.T, env map[string]string, args ...string) []string {
	t.Helper()
	code, out, errOut := binCLI(t, env, append([]string{"jobs", "list", "-o", "json"}, args...)...)
	if code != ExitOK {
		t.Fatalf("jobs list %q: exit %d, stderr %q", args, code, errOut)
	}
	var jobs []queue.Job
	if err := json.Unmarshal([]byte(out), &jobs); err != nil {
		t.Fatalf("jobs list -o json: %v\n%s", err, out)
	}
	ids := []string{}
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	return ids
}

// TestE2ERequeueAllDead: the binary's `jobs requeue --queue Q --all-dead`,
// over a real daemon's API and straight over its Redis, moves every dead
// job of Q, and no other queue's, back to pending in the order they died,
// says how many in one line (as JSON with -o json), and a second run says
// 0; an unknown queue exits 1.
func TestE2ERequeueAllDead(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=rd:"}, "--workers", "0")
	for _, de := range drivers(t, d, r, "rd:") {
		t.Run(de.name, func(t *testing.T) {
			q, other := "mail-"+de.name, "other-"+de.name
			dead := makeDeadCLI(t, de.env, q, 3)
			otherDead := makeDeadCLI(t, de.env, other, 1)
			code, out, errOut := binCLI(t, de.env, "jobs", "requeue", "--queue", q, "--all-dead")
			if want := "requeued 3 dead jobs of queue " + q + "\n"; code != ExitOK || out != want || errOut != "" {
				t.Errorf("requeue --all-dead: exit %d, stdout %q, stderr %q; want 0, %q", code, out, errOut, want)
			}
			if d := cmp.Diff(dead, listIDs(t, de.env, "--queue", q, "--status", "pending")); d != "" {
				t.Errorf("pending jobs of %s, in the order they died (-want +got):\n%s", q, d)
			}
			if got := listIDs(t, de.env, "--queue", q, "--status", "dead"); len(got) != 0 {
				t.Errorf("dead jobs of %s left: %v", q, got)
			}
			if d := cmp.Diff(otherDead, listIDs(t, de.env, "--queue", other, "--status", "dead")); d != "" {
				t.Errorf("the other queue's dead jobs (-want +got):\n%s", d)
			}
			code, out, _ = binCLI(t, de.env, "jobs", "requeue", "--queue", q, "--all-dead")
			if want := "requeued 0 dead jobs of queue " + q + "\n"; code != ExitOK || out != want {
				t.Errorf("second run: exit %d, stdout %q; want 0, %q", code, out, want)
			}

			more := makeDeadCLI(t, de.env, q, 1)
			code, out, errOut = binCLI(t, de.env, "jobs", "requeue", "--queue", q, "--all-dead", "-o", "json")
			var v RequeuedDeadView
			if err := json.Unmarshal([]byte(out), &v); code != ExitOK || err != nil {
				t.Fatalf("-o json: exit %d, %v, stdout %q, stderr %q", code, err, out, errOut)
			}
			if v.Before <= 0 {
				t.Errorf("-o json: before %d, want the cut in unix ms", v.Before)
			}
			want := RequeuedDeadView{Queue: q, Requeued: 1, IDs: more, Remaining: 0, Before: v.Before}
			if d := cmp.Diff(want, v); d != "" {
				t.Errorf("-o json (-want +got):\n%s", d)
			}
			if got := fmt.Sprint(listIDs(t, de.env, "--queue", q, "--status", "pending")); got != fmt.Sprint(append(dead, more...)) {
				t.Errorf("pending after the json run: %s", got)
			}
			wantFail(t, de.env, ExitFailed, "queue nope-"+de.name+" not found", "jobs", "requeue", "--queue", "nope-"+de.name, "--all-dead")
		})
	}
}

// TestRequeueAllDeadEarlierDaemon: a daemon of an earlier version has no
// requeue-dead route and answers 404 (in its own JSON, or the plain mux
// page of older ones): the CLI says so in one line, suggesting --redis or
// an upgrade, and exits 1, as for other API errors.
func TestRequeueAllDeadEarlierDaemon(t *testing.T) {
	forEachEarlierDaemon(t, func(t *testing.T, env map[string]string) {
		wantFail(t, env, ExitFailed, "earlier version): requeue over Redis with --redis, or upgrade the daemon",
			"jobs", "requeue", "--queue", "mail", "--all-dead")
	})
}

// forEachEarlierDaemon runs f against a stand-in for a daemon of an earlier
// version, which answers 404 to every route (a route it predates): in its
// own JSON error, and in the plain page of the mux of older ones. env
// points the CLI at it.
func forEachEarlierDaemon(t *testing.T, f func(t *testing.T, env map[string]string)) {
	for name, answer := range map[string]func(http.ResponseWriter, *http.Request){
		"json 404": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":{"code":"not_found","message":"no route %s %s"}}`, r.Method, r.URL.Path)
		},
		"plain 404": http.NotFound,
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(answer))
			defer srv.Close()
			f(t, map[string]string{"REFRAKT_SERVER": srv.URL, "REFRAKT_TOKEN": "x", "XDG_STATE_HOME": t.TempDir()})
		})
	}
}

// TestE2ERequeueAllDeadWithWorkers: with workers running, the requeued
// `fail` jobs die again at once; `jobs requeue --all-dead` takes each once
// (those that died before it started), ends, and says how many; the jobs
// are dead again after, each once in the dead list.
func TestE2ERequeueAllDeadWithWorkers(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=rw:"}, "--workers", "4")
	for _, de := range drivers(t, d, r, "rw:") {
		t.Run(de.name, func(t *testing.T) {
			q := "flaky-" + de.name
			var ids []string
			for range 20 {
				ids = append(ids, strings.TrimSpace(mustCLI(t, de.env, "jobs", "enqueue", "fail", "--max-retries", "0", "--queue", q)))
			}
			deadSoon := func(what string) []string {
				t.Helper()
				var got []string
				for deadline := time.Now().Add(10 * time.Second); len(got) != len(ids); time.Sleep(20 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("%s: %d of %d jobs dead after 10 s", what, len(got), len(ids))
					}
					got = listIDs(t, de.env, "--queue", q, "--status", "dead")
				}
				return got
			}
			deadSoon("the first deaths")
			code, out, errOut := binCLI(t, de.env, "jobs", "requeue", "--queue", q, "--all-dead")
			if want := "requeued 20 dead jobs of queue " + q + "\n"; code != ExitOK || out != want || errOut != "" {
				t.Errorf("requeue --all-dead: exit %d, stdout %q, stderr %q; want 0, %q", code, out, errOut, want)
			}
			got := deadSoon("the second deaths")
			slices.Sort(got)
			slices.Sort(ids)
			if d := cmp.Diff(ids, got); d != "" {
				t.Errorf("dead again, each once (-want +got):\n%s", d)
			}
			for _, id := range ids[:3] {
				if j := jobJSON(t, de.env, "jobs", "get", id); j.Attempts != 2 {
					t.Errorf("job %s: %d attempts, want 2 (run once more)", id, j.Attempts)
				}
			}
		})
	}
}

// TestRequeueAllDeadPartialThroughADaemon: a daemon whose requeue-dead
// failed part way answers a 503 naming the jobs it moved (details: ids,
// before); the binary says how many moved, on stdout (or as JSON, with
// the ids) above the error, and exits as for the daemon's outage.
func TestRequeueAllDeadPartialThroughADaemon(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":{"code":"unavailable","message":"the job queue is unavailable","details":{"requeued":2,"ids":["idA","idB"],"before":1795780000000}}}`)
	}))
	defer srv.Close()
	env := map[string]string{"REFRAKT_SERVER": srv.URL, "REFRAKT_TOKEN": "x", "XDG_STATE_HOME": t.TempDir()}
	code, out, errOut := binCLI(t, env, "jobs", "requeue", "--queue", "mail", "--all-dead")
	if want := "requeued 2 dead jobs of queue mail\n"; code != ExitUnreachable || out != want || !strings.Contains(errOut, "unavailable") {
		t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q and the error", code, out, errOut, ExitUnreachable, want)
	}
	code, out, _ = binCLI(t, env, "jobs", "requeue", "--queue", "mail", "--all-dead", "-o", "json")
	var v RequeuedDeadView
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != ExitUnreachable {
		t.Fatalf("-o json: exit %d, %v, stdout %q", code, err, out)
	}
	if want := (RequeuedDeadView{Queue: "mail", Requeued: 2, IDs: []string{"idA", "idB"}, Before: 1795780000000}); !cmp.Equal(v, want) {
		t.Errorf("-o json: %+v, want %+v", v, want)
	}
}
