package cli

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/daemontest"
)

// TestJobsQueuesFlags: `jobs queues` takes no argument and an optional
// --queue, checked as every command checks it; a bad one, an empty one or
// an argument is refused with exit 2 and one line, before any daemon is
// asked (the server is a closed port, which would exit 3).
func TestJobsQueuesFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want *JobsQueuesOptions
		code int
		line string // the one line of stderr, when refused
	}{
		{"none", nil, &JobsQueuesOptions{}, ExitOK, ""},
		{"a queue", []string{"--queue", "emails"}, &JobsQueuesOptions{Queue: "emails"}, ExitOK, ""},
		{"a queue with =", []string{"--queue=emails"}, &JobsQueuesOptions{Queue: "emails"}, ExitOK, ""},
		{"an argument", []string{"emails"}, nil, ExitUsage, `refrakt: unknown command "emails" for "refrakt jobs queues"`},
		{"empty queue", []string{"--queue", ""}, nil, ExitUsage,
			`refrakt: --queue "" names no queue: give a queue name (1-64 letters, digits, and _ . : -), or leave --queue out for every queue`},
		{"blank queue", []string{"--queue", "  "}, nil, ExitUsage,
			`refrakt: --queue "  " names no queue: give a queue name (1-64 letters, digits, and _ . : -), or leave --queue out for every queue`},
		{"bad queue", []string{"--queue", "bad queue"}, nil, ExitUsage, `refrakt: queue "bad queue": want 1-64 letters, digits, and _ . : -`},
		{"unknown flag", []string{"--all"}, nil, ExitUsage, "refrakt: unknown flag: --all"},
	}
	closed := daemontest.ClosedAddr(t)
	env := map[string]string{"REFRAKT_SERVER": "http://" + closed, "REFRAKT_TOKEN": "x", "XDG_STATE_HOME": t.TempDir()}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkParse(t, newJobsQueuesCmd, tt.args, tt.want, tt.code)
			if tt.code == ExitOK {
				return
			}
			code, out, errOut := runCLI(t, env, append([]string{"jobs", "queues"}, tt.args...)...)
			if code != ExitUsage || out != "" || errOut != tt.line+"\n" {
				t.Errorf("refrakt jobs queues %q: exit %d, stdout %q, stderr %q; want exit 2 and the line %q",
					tt.args, code, out, errOut, tt.line)
			}
		})
	}
}

// fixtureQueues are the gauges of three queues, in no order: a paused one
// with pending jobs, one with nothing at all, one with scheduled, retrying
// and dead jobs whose oldest pending job is 3m4s old.
func fixtureQueues() []queue.Stats {
	return []queue.Stats{
		{Queue: "slow", Pending: 1, Running: 2, Scheduled: 3, Retry: 1, Dead: 4, OldestPendingSec: 184.25,
			Enqueued: 40, Started: 35, Succeeded: 27, Failed: 9},
		{Queue: "emails", Pending: 12, OldestPendingSec: 7.5, Enqueued: 12, Paused: true},
		{Queue: "default"},
	}
}

func TestJobsQueuesOutputGolden(t *testing.T) {
	sorted, err := pickQueues(fixtureQueues(), "")
	if err != nil {
		t.Fatal(err)
	}
	goldenModes(t, "jobs_queues", func(p *Printer) error { return printQueues(p, sorted) })
	goldenModes(t, "jobs_queues_empty", func(p *Printer) error { return printQueues(p, nil) })
}

// TestPickQueues: the queues come sorted by name; --queue keeps one, and a
// name no queue has is not_found (exit 1) in pause's and remove-queue's
// words.
func TestPickQueues(t *testing.T) {
	names := func(stats []queue.Stats) []string {
		out := []string{}
		for _, s := range stats {
			out = append(out, s.Queue)
		}
		return out
	}
	all, err := pickQueues(fixtureQueues(), "")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"default", "emails", "slow"}, names(all)); d != "" {
		t.Errorf("every queue (-want +got):\n%s", d)
	}
	one, err := pickQueues(fixtureQueues(), "emails")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(fixtureQueues()[1:2], one); d != "" {
		t.Errorf("--queue emails (-want +got):\n%s", d)
	}
	_, err = pickQueues(fixtureQueues(), "nope")
	if core.ErrorCode(err) != core.CodeNotFound || core.ErrorMessage(err) != "queue nope not found" || exitCode(err) != ExitFailed {
		t.Errorf("--queue nope: %v (code %s, exit %d), want not_found %q, exit 1", err, core.ErrorCode(err), exitCode(err), "queue nope not found")
	}
	if _, err := pickQueues(nil, "default"); core.ErrorCode(err) != core.CodeNotFound {
		t.Errorf("--queue default with no queue at all: %v, want not_found", err)
	}
}

// TestQueuesOldestCell: the oldest pending age is "-" (piped: empty) for a
// queue with nothing pending, whatever age the gauge carries, and is read
// from the seconds the API serves.
func TestQueuesOldestCell(t *testing.T) {
	tty, pipe := &Printer{TTY: true}, &Printer{}
	for _, tt := range []struct {
		s         queue.Stats
		tty, pipe string
	}{
		{queue.Stats{}, "-", ""},
		{queue.Stats{OldestPendingSec: 5}, "-", ""},
		{queue.Stats{Pending: 1}, "0ms", "0"},
		{queue.Stats{Pending: 1, OldestPendingSec: 4.25}, "4.2s", "4"},
		{queue.Stats{Pending: 1, OldestPendingSec: 184.9}, "3m04s", "184"},
	} {
		if got := tty.oldestCell(tt.s); got != tt.tty {
			t.Errorf("tty %+v: %q, want %q", tt.s, got, tt.tty)
		}
		if got := pipe.oldestCell(tt.s); got != tt.pipe {
			t.Errorf("pipe %+v: %q, want %q", tt.s, got, tt.pipe)
		}
	}
}
