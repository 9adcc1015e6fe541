package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/refrakt/refrakt/internal/core/cron"
	"github.com/refrakt/refrakt/internal/core/queue"
)

// The output of the jobs commands. With -o json a list is a JSON array of
// jobs and everything else the job object itself, both exactly as the
// daemon's API answers them (queue.Job's JSON). On a terminal, a list is a
// table and one job a block of "Field: value" lines with human times; when
// piped, a list is tab-separated rows (RFC 3339 times, empty when unset) and
// one job "field<TAB>value" lines.

// jobColumns are the columns of `jobs list`.
var jobColumns = []string{"id", "queue", "type", "status", "attempts", "source", "enqueued", "run at"}

func printJobs(p *Printer, jobs []*queue.Job) error {
	if p.JSON {
		return p.PrintJSON(orEmpty(jobs))
	}
	if len(jobs) == 0 {
		return p.printNone("jobs")
	}
	now := p.Now()
	rows := make([][]string, len(jobs))
	for i, j := range jobs {
		rows[i] = []string{j.ID, j.Queue, j.Type, string(j.Status), strconv.Itoa(j.Attempts), j.Source,
			p.timeCell(j.EnqueuedAt, now), p.timeCell(j.RunAt, now)}
	}
	return p.Table(jobColumns, rows)
}

// printJob shows one job. On a terminal an unset field is "-"; piped, it is
// empty, like an unset time, and the interval is in seconds.
func printJob(p *Printer, j *queue.Job) error {
	if p.JSON {
		return p.PrintJSON(j)
	}
	now := p.Now()
	var interval, payload, result, lastErr string
	if p.TTY {
		interval, payload, result, lastErr = "-", rawOrDash(j.Payload), rawOrDash(j.Result), dash(j.LastError)
		if j.IntervalSeconds > 0 {
			interval = "every " + shortWindow(time.Duration(j.IntervalSeconds)*time.Second)
		}
	} else {
		payload, result, lastErr = compactRaw(j.Payload), compactRaw(j.Result), j.LastError
		if j.IntervalSeconds > 0 {
			interval = strconv.Itoa(j.IntervalSeconds)
		}
	}
	fields := []field{
		{name: "ID", value: j.ID},
		{name: "Queue", value: j.Queue},
		{name: "Type", value: j.Type},
		{name: "Status", value: string(j.Status)},
		{name: "Attempts", value: strconv.Itoa(j.Attempts)},
		{name: "Retries", value: fmt.Sprintf("%d (max %d)", j.Retries, j.MaxRetries)},
		{name: "Interval", value: interval},
		{name: "Payload", value: payload, json: len(j.Payload) > 0},
		{name: "Result", value: result, json: len(j.Result) > 0},
		{name: "Last error", value: lastErr},
		{name: "Source", value: j.Source},
		{name: "Enqueued", value: p.timeDetail(j.EnqueuedAt, now)},
		{name: "Run at", value: p.timeDetail(j.RunAt, now)},
		{name: "Started", value: p.timeDetail(j.StartedAt, now)},
		{name: "Finished", value: p.timeDetail(j.FinishedAt, now)},
	}
	if !p.TTY { // scripts get the numbers apart
		fields[5] = field{name: "Retries", value: strconv.Itoa(j.Retries)}
		fields = slices.Insert(fields, 6, field{name: "Max retries", value: strconv.Itoa(j.MaxRetries)})
	}
	if j.Cron != "" { // a cron job's schedule, and its next run in its zone
		at := slices.IndexFunc(fields, func(f field) bool { return f.name == "Interval" }) + 1
		fields = slices.Insert(fields, at, cronFields(p, j, now)...)
	}
	if j.TimeoutMS > 0 { // only a job's own: without one, its runner's JOB_TIMEOUT
		at := slices.IndexFunc(fields, func(f field) bool { return f.name == "Interval" }) + 1
		fields = slices.Insert(fields, at, field{name: "Timeout", value: (time.Duration(j.TimeoutMS) * time.Millisecond).String()})
	}
	return p.Fields(fields)
}

// cronFields are a cron job's Cron, Timezone and, while it waits for its
// next occurrence, Next run: the run_at in the job's own zone.
func cronFields(p *Printer, j *queue.Job, now time.Time) []field {
	zone := j.Timezone
	if zone == "" {
		zone = "UTC"
	}
	fs := []field{{name: "Cron", value: j.Cron}, {name: "Timezone", value: zone}}
	if j.Status != queue.StatusScheduled || j.RunAt.IsZero() {
		return fs
	}
	next := j.RunAt
	if loc, err := cron.LoadZone(j.Timezone); err == nil {
		next = next.In(loc)
	}
	v := next.Format(time.RFC3339)
	if p.TTY {
		v = next.Format("2006-01-02 15:04 MST") + " (" + Since(j.RunAt, now) + ")"
	}
	return append(fs, field{name: "Next run", value: v})
}

// printEnqueued shows a job just enqueued: one sentence on a terminal, its
// id alone when piped (so that `id=$(refrakt jobs enqueue ping)` works).
func printEnqueued(p *Printer, j *queue.Job) error {
	if j.Replayed {
		return printReplayed(p, j)
	}
	switch {
	case p.JSON:
		return p.PrintJSON(j)
	case !p.TTY:
		return p.Printf("%s\n", j.ID)
	}
	when := ""
	if j.Status == queue.StatusScheduled {
		when = ", runs " + Since(j.RunAt, p.Now())
	}
	return p.Printf("Enqueued %s job %s in queue %s: %s%s.\n", j.Type, j.ID, j.Queue, j.Status, when)
}

// tickColumns are the columns of `jobs tick`.
var tickColumns = []string{"scheduled", "retried", "recovered", "recovered dead"}

// printTick shows what a tick moved and, on a terminal, a line for each job
// it made dead (piped, the one row of counts stays; -o json lists them).
func printTick(p *Printer, r TickView) error {
	if p.JSON {
		return p.PrintJSON(r)
	}
	if err := p.Table(tickColumns, [][]string{{strconv.Itoa(r.Scheduled), strconv.Itoa(r.Retried), strconv.Itoa(r.Recovered), strconv.Itoa(r.RecoveredDead)}}); err != nil {
		return err
	}
	if !p.TTY {
		return nil
	}
	for _, d := range r.Dead {
		if err := p.Printf("Dead %s job %s in queue %s: %s (attempts %d).\n", d.Type, d.ID, d.Queue, queue.DeadLeaseExpired, d.Attempts); err != nil {
			return err
		}
	}
	return nil
}

// timeCell renders t in a table cell: relative on a terminal, RFC 3339 when
// piped, "-" or empty when unset.
func (p *Printer) timeCell(t, now time.Time) string {
	if !p.TTY {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	return Since(t, now)
}

// timeDetail renders t in a detail view: absolute and relative on a
// terminal, RFC 3339 when piped.
func (p *Printer) timeDetail(t, now time.Time) string {
	if !p.TTY || t.IsZero() {
		return p.timeCell(t, now)
	}
	return t.UTC().Format("2006-01-02 15:04:05 MST") + " (" + Since(t, now) + ")"
}

// compactRaw is JSON b on one line, for a "field<TAB>value" line; empty
// when absent.
func compactRaw(b json.RawMessage) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return string(b)
	}
	return buf.String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shortWindow renders a window or interval in its largest whole unit:
// "1m", "90s", "2h", "1.5s".
func shortWindow(d time.Duration) string {
	switch {
	case d > 0 && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d > 0 && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}

// printReplayed shows the job an enqueue's idempotency key had made
// already, when nothing was enqueued: on a terminal a line saying so;
// piped, its id (as for a new job) and, on JSON, the job, with the line on
// stderr.
func printReplayed(p *Printer, j *queue.Job) error {
	line := fmt.Sprintf("job %s already existed for this idempotency key (type %s, queue %s, %s): nothing enqueued.", j.ID, j.Type, j.Queue, j.Status)
	if p.TTY && !p.JSON {
		return p.Printf("%s\n", line)
	}
	if p.Err != nil {
		fmt.Fprintf(p.Err, "refrakt: %s\n", line)
	}
	if p.JSON {
		return p.PrintJSON(j)
	}
	return p.Printf("%s\n", j.ID)
}
