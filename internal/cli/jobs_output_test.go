package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// goldenNow is the fixed "now" of every golden output.
var goldenNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// golden compares got with testdata/name.golden, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got)\n%s", path, diff)
	}
}

// printers are the three output modes, at goldenNow.
func printers(buf *bytes.Buffer) map[string]*Printer {
	now := func() time.Time { return goldenNow }
	return map[string]*Printer{
		"tty":  {Out: buf, TTY: true, Now: now},
		"pipe": {Out: buf, Now: now},
		"json": {Out: buf, JSON: true, Now: now},
	}
}

// goldenModes checks what print writes in each output mode against
// testdata/name_<mode>.golden, one subtest a mode.
func goldenModes(t *testing.T, name string, print func(*Printer) error) {
	t.Helper()
	for _, mode := range []string{"tty", "pipe", "json"} {
		t.Run(name+"_"+mode, func(t *testing.T) {
			var buf bytes.Buffer
			if err := print(printers(&buf)[mode]); err != nil {
				t.Fatal(err)
			}
			golden(t, name+"_"+mode, buf.Bytes())
		})
	}
}

func fixtureJobs() []*queue.Job {
	ago := func(d time.Duration) time.Time { return goldenNow.Add(-d) }
	return []*queue.Job{
		{ID: "Jb7mQk2pXw9sLr4tYv1zAa", Queue: "default", Type: "sleep", Payload: json.RawMessage(`{"ms":250}`), Status: queue.StatusScheduled,
			MaxRetries: 3, RunAt: goldenNow.Add(2 * time.Minute), EnqueuedAt: ago(3 * time.Second), Source: "cli"},
		{ID: "Kc8nRl3qYx0tMs5uZw2aBb", Queue: "slow", Type: "fail", Status: queue.StatusDead, Attempts: 2, Retries: 1, MaxRetries: 1,
			RunAt: ago(90 * time.Second), EnqueuedAt: ago(5 * time.Minute), StartedAt: ago(70 * time.Second), FinishedAt: ago(69 * time.Second),
			LastError: "fail: this job always fails", Source: "api"},
		{ID: "Ld9oSm4rZy1uNt6vAx3bCc", Queue: "default", Type: "ping", Status: queue.StatusSucceeded, Attempts: 1, MaxRetries: 3, IntervalSeconds: 60,
			RunAt: ago(2 * time.Hour), EnqueuedAt: ago(2 * time.Hour), StartedAt: ago(2 * time.Hour), FinishedAt: ago(2 * time.Hour),
			Result: json.RawMessage(`"pong"`), Source: "schedule"},
	}
}

func TestJobsOutputGolden(t *testing.T) {
	jobs := fixtureJobs()
	tests := []struct {
		name  string
		print func(*Printer) error
	}{
		{"jobs_list", func(p *Printer) error { return printJobs(p, jobs) }},
		{"jobs_list_empty", func(p *Printer) error { return printJobs(p, nil) }},
		{"jobs_get_dead", func(p *Printer) error { return printJob(p, jobs[1]) }},
		{"jobs_get_recurring", func(p *Printer) error { return printJob(p, jobs[2]) }},
		{"jobs_get_scheduled", func(p *Printer) error { return printJob(p, jobs[0]) }},
		// timeout37: a job's own timeout shows after its interval.
		{"jobs_get_timeout", func(p *Printer) error {
			j := *jobs[1]
			j.TimeoutMS, j.LastError = 30_000, "timed out after 30s"
			return printJob(p, &j)
		}},
		{"jobs_enqueue", func(p *Printer) error { return printEnqueued(p, jobs[0]) }},
		{"jobs_tick", func(p *Printer) error { return printTick(p, TickView{Scheduled: 2, Retried: 1, RecoveredDead: 1}) }},
		{"jobs_tick_dead", func(p *Printer) error {
			return printTick(p, TickView{Recovered: 1, RecoveredDead: 2, Dead: []queue.DeadJob{
				{ID: "Kc8nRl3qYx0tMs5uZw2aBb", Queue: "slow", Type: "sleep", Attempts: 2, LastError: "lease expired"},
				{ID: "Ld9oSm4rZy1uNt6vAx3bCc", Queue: "default", Type: "echo", Attempts: 1, LastError: "lease expired"},
			}})
		}},
	}
	for _, tt := range tests {
		goldenModes(t, tt.name, tt.print)
	}
}

// TestJobPipedOneLinePerField: piped, a job is one "field<TAB>value" line
// a field, even when its payload was stored over several lines.
func TestJobPipedOneLinePerField(t *testing.T) {
	var buf bytes.Buffer
	p := &Printer{Out: &buf, Now: func() time.Time { return goldenNow }}
	j := &queue.Job{ID: "Jb7mQk2pXw9sLr4tYv1zAa", Payload: json.RawMessage("{\n  \"a\": [1, 2]\n}"), IntervalSeconds: 90}
	if err := printJob(p, j); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(got) != 16 {
		t.Errorf("%d lines, want 16:\n%s", len(got), buf.String())
	}
	for _, want := range []string{"interval\t90", "payload\t{\"a\":[1,2]}", "result\t", "last_error\t", "started\t"} {
		if !slices.Contains(got, want) {
			t.Errorf("no line %q in:\n%s", want, buf.String())
		}
	}
}

// TestJobListSaysWhenCut: a listing as long as its limit ends, on a
// terminal, with a line saying more may match (a table of exactly 50 rows
// read as all there is); a shorter one, piped output and JSON do not.
func TestJobListSaysWhenCut(t *testing.T) {
	jobs := fixtureJobs()
	for _, tt := range []struct {
		mode  string
		limit int
		want  string // "" for no such line
	}{
		{"tty", len(jobs), "more may match: --limit up to 1000 shows more"},
		{"tty", len(jobs) + 1, ""},
		{"pipe", len(jobs), ""},
		{"json", len(jobs), ""},
	} {
		var buf bytes.Buffer
		if err := printJobList(printers(&buf)[tt.mode], jobs, 0, tt.limit, false); err != nil {
			t.Fatal(err)
		}
		got := strings.Contains(buf.String(), "more may match")
		if got != (tt.want != "") || (tt.want != "" && !strings.Contains(buf.String(), tt.want)) {
			t.Errorf("%s, limit %d: %q, want the line %q", tt.mode, tt.limit, buf.String(), tt.want)
		}
	}
}

// TestJobListFooterNamesTheNextPage: a full page on a terminal of a
// listing that pages (one queue, one status) names the --offset of the next
// page (the offset it was read from plus its rows), and says where the
// bound stops it when the next one would reach past queue.MaxListDepth; a
// full listing that does not page says how to make it one.
func TestJobListFooterNamesTheNextPage(t *testing.T) {
	jobs := fixtureJobs()
	full := make([]*queue.Job, queue.MaxListLimit)
	for i := range full {
		full[i] = jobs[i%len(jobs)]
	}
	n := len(jobs)
	for _, tt := range []struct {
		name          string
		jobs          []*queue.Job
		offset, limit int
		pageable      bool
		want          string
	}{
		{"first page", jobs, 0, n, true, fmt.Sprintf("%d shown, the limit; more may match: --limit up to %d shows more, --offset %d the next page\n", n, queue.MaxListLimit, n)},
		{"a later page", jobs, 40, n, true, fmt.Sprintf("--offset %d the next page\n", 40+n)},
		{"pages of the largest limit", full, 2000, queue.MaxListLimit, true, fmt.Sprintf("%d shown, the limit; more may match: --offset %d shows the next page\n", queue.MaxListLimit, 3000)},
		{"the deepest page", jobs, queue.MaxListDepth - n, n, true, fmt.Sprintf("more may match: --offset plus --limit goes up to %d\n", queue.MaxListDepth)},
		{"a listing of every queue", jobs, 0, n, false, fmt.Sprintf("more may match: --limit up to %d shows more; with --queue and --status, --offset pages it\n", queue.MaxListLimit)},
		{"the largest listing of every queue", full, 0, queue.MaxListLimit, false, "more may match: narrow it with --queue and --status, which --offset then pages\n"},
	} {
		var buf bytes.Buffer
		if err := printJobList(printers(&buf)["tty"], tt.jobs, tt.offset, tt.limit, tt.pageable); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(buf.String(), tt.want) {
			t.Errorf("%s: output ends %q, want it to end %q", tt.name, buf.String()[max(0, buf.Len()-150):], tt.want)
		}
	}
}

// TestEnqueueReplayedOutput: an enqueue whose idempotency key had made its
// job already says so in one line on a terminal; piped it prints the job's
// id (with -o json the job), as for a new job, and the line on stderr.
func TestEnqueueReplayedOutput(t *testing.T) {
	j := &queue.Job{ID: "AAAAAAAAAAAAAAAAAAAAAA", Queue: "orders", Type: "echo", Status: queue.StatusSucceeded, Replayed: true}
	const line = "job AAAAAAAAAAAAAAAAAAAAAA already existed for this idempotency key (type echo, queue orders, succeeded): nothing enqueued.\n"
	for _, tt := range []struct {
		mode           string
		tty, json      bool
		out, errPrefix string
	}{
		{"tty", true, false, line, ""},
		{"pipe", false, false, j.ID + "\n", "refrakt: " + line},
		{"json", false, true, `"id": "AAAAAAAAAAAAAAAAAAAAAA"`, "refrakt: " + line},
	} {
		var out, errOut bytes.Buffer
		p := &Printer{Out: &out, Err: &errOut, TTY: tt.tty, JSON: tt.json, Now: func() time.Time { return goldenNow }}
		if err := printEnqueued(p, j); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), tt.out) || errOut.String() != tt.errPrefix {
			t.Errorf("%s: stdout %q, stderr %q; want stdout with %q, stderr %q", tt.mode, out.String(), errOut.String(), tt.out, tt.errPrefix)
		}
	}
}
