package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/presence"
	"github.com/refrakt/refrakt/internal/core/queue"
)

// TestE2EWorkerQueues (wq40): the binary's `serve --worker-queues a` on
// the memory backend runs the jobs of queue a and leaves those of b
// pending (b's enqueued first, so a rotation over every queue would have
// taken them), and `jobs daemons` shows its set: -o json as queues and
// queue_order, the table with a last QUEUES column.
func TestE2EWorkerQueues(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, nil, "--worker-queues", "a", "--workers", "2")
	env := map[string]string{"REFRAKT_SERVER": d.URL, "REFRAKT_TOKEN": d.Token, "XDG_STATE_HOME": t.TempDir()}
	b := strings.TrimSpace(mustCLI(t, env, "jobs", "enqueue", "ping", "--queue", "b"))
	for range 3 {
		a := strings.TrimSpace(mustCLI(t, env, "jobs", "enqueue", "ping", "--queue", "a"))
		deadline := time.Now().Add(10 * time.Second)
		for jobJSON(t, env, "jobs", "get", a).Status != queue.StatusSucceeded {
			if time.Now().After(deadline) {
				t.Fatalf("a's job %s not succeeded within 10s:\n%s", a, d.Log())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if j := jobJSON(t, env, "jobs", "get", b); j.Status != queue.StatusPending || j.Attempts != 0 {
		t.Errorf("b's job after three of a's ran: %s, %d attempts; want pending, never started", j.Status, j.Attempts)
	}

	code, out, errOut := binCLI(t, env, "jobs", "daemons", "-o", "json")
	var l presence.List
	if err := json.Unmarshal([]byte(out), &l); code != ExitOK || errOut != "" || err != nil || len(l.Daemons) != 1 {
		t.Fatalf("jobs daemons -o json: exit %d, %v, stdout %q, stderr %q", code, err, out, errOut)
	}
	got := l.Daemons[0]
	if diff := cmp.Diff([]queue.WorkerQueue{{Name: "a", Weight: 1}}, got.Queues); diff != "" || got.QueueOrder != queue.OrderWeighted {
		t.Errorf("daemon's queues (-want +got):\n%s\norder %q, want weighted", diff, got.QueueOrder)
	}
	if !strings.Contains(out, `"queues": [`) || !strings.Contains(out, `"queue_order": "weighted"`) {
		t.Errorf("-o json lacks queues or queue_order:\n%s", out)
	}
	rows := strings.Split(strings.TrimSpace(mustCLI(t, env, "jobs", "daemons")), "\n")
	if f := strings.Split(rows[0], "\t"); len(rows) != 1 || len(f) != len(daemonColumns)+1 || f[len(f)-1] != "a" {
		t.Errorf("jobs daemons, piped: %q; want one row, QUEUES a last", rows)
	}
}
