package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// queuesJSON runs the binary's `jobs queues -o json` with args and returns
// what it printed, decoded twice: as the API's queue objects, and as
// generic objects (every field it printed, none unknown to queue.Stats
// lost), with each oldest_pending_seconds checked (positive exactly when
// jobs are pending) and then zeroed: it grows between two reads.
func queuesJSON(t *testing.T, env map[string]string, args ...string) ([]queue.Stats, []map[string]any) {
	t.Helper()
	code, out, errOut := binCLI(t, env, append([]string{"jobs", "queues", "-o", "json"}, args...)...)
	if code != ExitOK || errOut != "" {
		t.Fatalf("jobs queues -o json %q: exit %d, stderr %q", args, code, errOut)
	}
	return decodeQueues(t, []byte(out))
}

func decodeQueues(t *testing.T, raw []byte) ([]queue.Stats, []map[string]any) {
	t.Helper()
	var stats []queue.Stats
	var generic []map[string]any
	if err := json.Unmarshal(raw, &stats); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	for i, s := range stats {
		if (s.Pending > 0) != (s.OldestPendingSec > 0) {
			t.Errorf("queue %s: %d pending, oldest_pending_seconds %v", s.Queue, s.Pending, s.OldestPendingSec)
		}
		stats[i].OldestPendingSec = 0
		generic[i]["oldest_pending_seconds"] = 0.0
	}
	return stats, generic
}

// TestE2EJobsQueues: the binary's `jobs queues`, over a real daemon's API
// with an operator token (GET /api/obs/jobs) and straight over its Redis,
// prints the same JSON, that of the daemon's GET /api/obs/jobs "queues":
// one object per queue, by name, for queues with pending, scheduled and
// dead jobs and a paused queue. --queue Q shows Q alone, an unknown Q exits
// 1 (not found); no queue at all is an empty array (piped: nothing), exit
// 0; piped rows are tab-separated; an unreachable daemon exits 3.
func TestE2EJobsQueues(t *testing.T) {
	const opToken = "op-token-for-queues-0123456789"
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=qs:", "REFRAKT_OPERATOR_TOKEN=" + opToken}, "--workers", "0")
	envs := drivers(t, d, r, "qs:")
	dev, rd := envs[0].env, envs[1].env
	op := map[string]string{"REFRAKT_SERVER": d.URL, "REFRAKT_TOKEN": opToken, "XDG_STATE_HOME": t.TempDir()}
	ways := []driverEnv{{"operator token", op}, {"redis", rd}}

	// No queue yet: an empty array, nothing piped, exit 0.
	for _, w := range ways {
		for _, tt := range []struct {
			args []string
			want string
		}{
			{[]string{"jobs", "queues", "-o", "json"}, "[]\n"},
			{[]string{"jobs", "queues"}, ""},
		} {
			code, out, errOut := binCLI(t, w.env, tt.args...)
			if code != ExitOK || out != tt.want || errOut != "" {
				t.Errorf("%s, no queue: refrakt %s: exit %d, stdout %q, stderr %q; want 0, %q", w.name, strings.Join(tt.args, " "), code, out, errOut, tt.want)
			}
		}
	}

	mustCLI(t, dev, "jobs", "enqueue", "ping", "--queue", "q-pending")
	mustCLI(t, rd, "jobs", "enqueue", "echo", "--queue", "q-pending")
	mustCLI(t, dev, "jobs", "enqueue", "ping", "--queue", "q-sched", "--delay", "1h")
	makeDeadCLI(t, dev, "q-dead", 2)
	mustCLI(t, rd, "jobs", "enqueue", "ping", "--queue", "q-paused")
	mustCLI(t, dev, "jobs", "pause", "q-paused")

	want := []queue.Stats{
		{Queue: "q-dead", Dead: 2, Enqueued: 2, Started: 2, Failed: 2},
		{Queue: "q-paused", Pending: 1, Enqueued: 1, Paused: true},
		{Queue: "q-pending", Pending: 2, Enqueued: 2},
		{Queue: "q-sched", Scheduled: 1, Enqueued: 1},
	}
	opStats, opJSON := queuesJSON(t, op)
	if d := cmp.Diff(want, opStats); d != "" {
		t.Errorf("over the daemon with an operator token (-want +got):\n%s", d)
	}
	rdStats, rdJSON := queuesJSON(t, rd)
	if d := cmp.Diff(opJSON, rdJSON); d != "" {
		t.Errorf("JSON over the daemon and over Redis differ (-daemon +redis):\n%s", d)
	}
	if d := cmp.Diff(want, rdStats); d != "" {
		t.Errorf("over Redis (-want +got):\n%s", d)
	}

	// The daemon's own answer, read with the operator token, holds the same
	// objects.
	req, _ := http.NewRequest(http.MethodGet, d.URL+"/api/obs/jobs", nil)
	req.Header.Set("Authorization", "Bearer "+opToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ov struct {
		Queues json.RawMessage `json:"queues"`
	}
	if err := json.Unmarshal(body, &ov); resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("GET /api/obs/jobs: %d %v %s", resp.StatusCode, err, body)
	}
	_, apiJSON := decodeQueues(t, ov.Queues)
	if d := cmp.Diff(apiJSON, opJSON); d != "" {
		t.Errorf("jobs queues -o json is not GET /api/obs/jobs's queues (-api +cli):\n%s", d)
	}

	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			one, _ := queuesJSON(t, w.env, "--queue", "q-paused")
			if d := cmp.Diff(want[1:2], one); d != "" {
				t.Errorf("--queue q-paused (-want +got):\n%s", d)
			}
			wantFail(t, w.env, ExitFailed, "queue nope not found", "jobs", "queues", "--queue", "nope")
			wantFail(t, w.env, ExitUsage, `queue "a b"`, "jobs", "queues", "--queue", "a b")

			// Piped: one tab-separated row a queue, by name, no header.
			code, out, errOut := binCLI(t, w.env, "jobs", "queues")
			if code != ExitOK || errOut != "" {
				t.Fatalf("jobs queues: exit %d, stderr %q", code, errOut)
			}
			var got [][]string
			for l := range strings.Lines(out) {
				f := strings.Split(strings.TrimSuffix(l, "\n"), "\t")
				if len(f) != len(queueColumns) {
					t.Fatalf("row %q: %d fields, want %d", l, len(f), len(queueColumns))
				}
				f[6] = map[bool]string{true: "age", false: ""}[f[6] != ""] // the oldest pending age grows
				got = append(got, f)
			}
			wantRows := [][]string{
				{"q-dead", "0", "0", "0", "0", "2", "", "", "2", "0", "2"},
				{"q-paused", "1", "0", "0", "0", "0", "age", "yes", "1", "0", "0"},
				{"q-pending", "2", "0", "0", "0", "0", "age", "", "2", "0", "0"},
				{"q-sched", "0", "0", "1", "0", "0", "", "", "1", "0", "0"},
			}
			if d := cmp.Diff(wantRows, got); d != "" {
				t.Errorf("piped rows (-want +got):\n%s", d)
			}
		})
	}

	closed := daemontest.ClosedAddr(t)
	wantFail(t, map[string]string{"REFRAKT_SERVER": "http://" + closed, "REFRAKT_TOKEN": "x", "XDG_STATE_HOME": t.TempDir()},
		ExitUnreachable, "", "jobs", "queues")
}
