package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/presence"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/redistest"
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

// TestE2EWorkerQueuesTwoDaemons (wq40): two daemons on one real Redis with
// disjoint sets (--worker-queues a, --worker-queues b): a's jobs and b's
// all succeed, each daemon running its own queue's (their runs by outcome
// in the heartbeat), and a job of c, which neither works, stays pending;
// `jobs daemons -o json` over Redis shows both sets.
func TestE2EWorkerQueuesTwoDaemons(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	env := []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=wq:"}
	da := startDaemon(t, env, "--worker-queues", "a")
	db := startDaemon(t, env, "--worker-queues", "b", "--worker-queue-order", "strict")
	cli := drivers(t, da, r, "wq:")[1].env // over Redis
	c := strings.TrimSpace(mustCLI(t, cli, "jobs", "enqueue", "ping", "--queue", "c"))
	var ids []string
	for range 3 {
		ids = append(ids, strings.TrimSpace(mustCLI(t, cli, "jobs", "enqueue", "ping", "--queue", "a")))
	}
	for range 2 {
		ids = append(ids, strings.TrimSpace(mustCLI(t, cli, "jobs", "enqueue", "ping", "--queue", "b")))
	}
	for _, id := range ids {
		deadline := time.Now().Add(10 * time.Second)
		for jobJSON(t, cli, "jobs", "get", id).Status != queue.StatusSucceeded {
			if time.Now().After(deadline) {
				t.Fatalf("job %s not succeeded within 10s:\n%s\n%s", id, da.Log(), db.Log())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if j := jobJSON(t, cli, "jobs", "get", c); j.Status != queue.StatusPending || j.Attempts != 0 {
		t.Errorf("c's job: %s, %d attempts; want pending, never started (no daemon works c)", j.Status, j.Attempts)
	}
	// The runs by outcome come with the next heartbeat (every 5 s).
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, out, errOut := binCLI(t, cli, "jobs", "daemons", "-o", "json")
		var l presence.List
		if err := json.Unmarshal([]byte(out), &l); code != ExitOK || errOut != "" || err != nil || len(l.Daemons) != 2 {
			t.Fatalf("jobs daemons -o json: exit %d, %v, stdout %q, stderr %q", code, err, out, errOut)
		}
		got := map[int]presence.Daemon{l.Daemons[0].PID: l.Daemons[0], l.Daemons[1].PID: l.Daemons[1]}
		a, b := got[da.Pid()], got[db.Pid()]
		if diff := cmp.Diff([]queue.WorkerQueue{{Name: "a", Weight: 1}}, a.Queues); diff != "" || a.QueueOrder != "weighted" {
			t.Fatalf("daemon a's queues (-want +got):\n%s\norder %q", diff, a.QueueOrder)
		}
		if diff := cmp.Diff([]queue.WorkerQueue{{Name: "b", Weight: 1}}, b.Queues); diff != "" || b.QueueOrder != "strict" {
			t.Fatalf("daemon b's queues (-want +got):\n%s\norder %q", diff, b.QueueOrder)
		}
		if a.Succeeded == 3 && b.Succeeded == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs succeeded: daemon a %d, daemon b %d; want 3 and 2", a.Succeeded, b.Succeeded)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
