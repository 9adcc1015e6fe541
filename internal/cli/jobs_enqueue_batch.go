package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/daemon"
)

// JobsEnqueueBatchOptions are the inputs of `refrakt jobs enqueue-batch`.
type JobsEnqueueBatchOptions struct {
	client client

	// File is the NDJSON to read, "-" for stdin.
	File string
}

// batchChunk bounds the jobs of one request (one EnqueueBatch call): the
// route's bound. A chunk is also cut before its body would pass the API's
// 1 MiB (batchBodyRoom).
var batchChunk = queue.MaxBatch

// batchBodyRoom is what a chunk's job objects may take of a request body:
// the body limit less the {"jobs":[…]} around them.
const batchBodyRoom = daemon.MaxBody - 64

func newJobsEnqueueBatchCmd(c client, runF func(context.Context, *JobsEnqueueBatchOptions) error) *cobra.Command {
	opts := &JobsEnqueueBatchOptions{client: c}
	cmd := &cobra.Command{
		Use:   "enqueue-batch [--file PATH|-]",
		Short: "Enqueue many jobs from NDJSON, a batch per request",
		Long: "Enqueue the jobs of an NDJSON file (or stdin): one job object per line, the fields of\n" +
			"POST /api/dev/jobs/enqueue's body ({\"type\":…, \"payload\":…, \"queue\":…, \"max_retries\":…,\n" +
			"\"interval_seconds\":…, \"delay_ms\":…, \"timeout_ms\":…, \"cron\":…, \"timezone\":…,\n" +
			"\"idempotency_key\":…}), with source \"cli\". Blank lines are skipped. A line that is not a JSON\n" +
			"object exits 2 naming it, and nothing is sent. The jobs go in batches of up to " + strconv.Itoa(queue.MaxBatch) + "\n" +
			"(POST /api/dev/jobs/enqueue-batch, or one broker call over --redis), each all or nothing on\n" +
			"validation: a job the daemon refuses exits 2 naming its line. When a batch fails, the jobs of\n" +
			"the batches before it are stored (they are printed, and the error counts them and names their\n" +
			"lines); with an idempotency_key on every job, running the same command again is safe.\n" +
			"Prints each job's line, id, queue, type and status (replayed: its key's job already existed).\n" +
			"When a batch fails after storing some of its jobs, those are printed too, with their id, queue\n" +
			"and type, and no status (not read back; with -o json \"status\":\"\"); the error names their lines.",
		Example: "  refrakt jobs enqueue-batch --file jobs.ndjson\n" +
			"  printf '%s\\n' '{\"type\":\"ping\"}' '{\"type\":\"echo\",\"payload\":{\"n\":1},\"queue\":\"mail\"}' | refrakt jobs enqueue-batch\n" +
			"  refrakt jobs enqueue-batch --file jobs.ndjson -o json | jq -r '.[].id'",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return jobsEnqueueBatchRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.File, "file", "f", "-", "the NDJSON to read, - for stdin")
	return cmd
}

// ndjsonJob is one job object of the input and its line number.
type ndjsonJob struct {
	line int
	raw  json.RawMessage
}

// readNDJSON reads the job objects of r, one a line, blank lines skipped;
// a line that is not a JSON object is a usage error naming it.
func readNDJSON(r io.Reader, name string) ([]ndjsonJob, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), batchBodyRoom+1)
	var jobs []ndjsonJob
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if line[0] != '{' || !json.Valid(line) {
			what := "not valid JSON"
			if json.Valid(line) {
				what = "JSON, but not an object"
			}
			return nil, usageError{fmt.Errorf("%s: line %d is %s: each line must be one job object, such as {\"type\":\"ping\"}; nothing was sent", name, n, what)}
		}
		jobs = append(jobs, ndjsonJob{line: n, raw: encodedLine(line)})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, usageError{fmt.Errorf("%s: a line after line %d is over %d bytes, more than one request may hold; nothing was sent", name, len(jobs), batchBodyRoom)}
		}
		return nil, usageError{fmt.Errorf("%s: %v", name, err)}
	}
	if len(jobs) == 0 {
		return nil, usageError{fmt.Errorf("%s holds no job: give one job object per line", name)}
	}
	return jobs, nil
}

// encodedLine is a valid JSON line as a request carries it (batchBody):
// compacted, not HTML-escaped. Chunks are sized on it, so that no chunk's
// body passes the API's bound (a line of <, > or & does not grow).
func encodedLine(line []byte) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, line); err != nil {
		return json.RawMessage(bytes.Clone(line)) // valid JSON: not reached
	}
	return json.RawMessage(b.Bytes())
}

// chunks cuts jobs into the batches of one request each, sized on their
// encoded lines (encodedLine): a chunk's body is at most daemon.MaxBody.
func chunks(jobs []ndjsonJob) [][]ndjsonJob {
	var out [][]ndjsonJob
	for start := 0; start < len(jobs); {
		end, size := start, 0
		for end < len(jobs) && end-start < batchChunk && (end == start || size+len(jobs[end].raw)+1 <= batchBodyRoom) {
			size += len(jobs[end].raw) + 1
			end++
		}
		out = append(out, jobs[start:end])
		start = end
	}
	return out
}

func jobsEnqueueBatchRun(ctx context.Context, o *JobsEnqueueBatchOptions) error {
	in, name := o.client.f.IO.In, "stdin"
	if o.File != "-" {
		f, err := os.Open(o.File)
		if err != nil {
			return usageError{fmt.Errorf("--file: %v", err)}
		}
		defer f.Close()
		in, name = f, o.File
	}
	jobs, err := readNDJSON(in, name)
	if err != nil {
		return err
	}
	return o.client.do(ctx, func(d Driver, p *Printer) error {
		var done []batchRow
		for _, chunk := range chunks(jobs) {
			raws := make([]json.RawMessage, len(chunk))
			for i, j := range chunk {
				raws[i] = j.raw
			}
			stored, err := d.EnqueueBatch(ctx, raws)
			if err != nil {
				rows := done
				var be *queue.BatchError
				if errors.As(err, &be) {
					rows = append(slices.Clip(done), storedRows(chunk, be.Stored)...)
				}
				if len(rows) > 0 {
					if perr := printBatch(p, rows); perr != nil {
						return perr
					}
				}
				return batchFailure(err, chunk, done)
			}
			for i, j := range stored {
				done = append(done, batchRow{line: chunk[i].line, job: j})
			}
		}
		return printBatch(p, done)
	})
}

// batchRow is a job enqueued and the line it came from.
type batchRow struct {
	line int
	job  *queue.Job
}

// storedRows are the rows of the jobs a failed chunk stored all the same
// (a *queue.BatchError's Stored): their id, and the queue and type their
// line gives; their status, not read back, is left empty.
func storedRows(chunk []ndjsonJob, stored []queue.BatchRef) []batchRow {
	rows := make([]batchRow, 0, len(stored))
	for _, bj := range stored {
		if !inChunk(chunk, bj.Index) {
			continue
		}
		var f struct {
			Type  string `json:"type"`
			Queue string `json:"queue"`
		}
		_ = json.Unmarshal(chunk[bj.Index].raw, &f) // the daemon took it: an object
		if f.Queue == "" {
			f.Queue = queue.DefaultQueue
		}
		rows = append(rows, batchRow{line: chunk[bj.Index].line, job: &queue.Job{ID: bj.ID, Queue: f.Queue, Type: f.Type}})
	}
	return rows
}

// inChunk reports whether i, an index a daemon's answer names, is one of
// chunk's jobs: a malformed answer is left out, never a panic.
func inChunk(chunk []ndjsonJob, i int) bool { return i >= 0 && i < len(chunk) }

// batchColumns are the columns of `jobs enqueue-batch`.
var batchColumns = []string{"line", "id", "queue", "type", "status", "replayed"}

// printBatch shows the jobs enqueued: a table on a terminal, tab-separated
// rows when piped, with -o json an array of the jobs as the route answers
// them (each with "replayed": true when its key's job already existed).
func printBatch(p *Printer, rows []batchRow) error {
	if p.JSON {
		out := make([]daemon.BatchJob, len(rows))
		for i, r := range rows {
			out[i] = daemon.BatchJob{Job: r.job, Replayed: r.job.Replayed}
		}
		return p.PrintJSON(out)
	}
	cells := make([][]string, len(rows))
	for i, r := range rows {
		replayed := ""
		if r.job.Replayed {
			replayed = "yes"
		} else if p.TTY {
			replayed = "-"
		}
		status := string(r.job.Status)
		if status == "" && p.TTY {
			status = "-" // stored by a batch that failed: not read back
		}
		cells[i] = []string{strconv.Itoa(r.line), r.job.ID, r.job.Queue, r.job.Type, status, replayed}
	}
	return p.Table(batchColumns, cells)
}

// batchIndex finds the jobs[i] (or "jobs i and j") a batch's refusal names:
// at the start of its message (after the daemon's address, when the error
// names it), not inside it, where a quoted key or message may hold the same
// text.
var batchIndex = regexp.MustCompile(`^(\S+://\S+: )?(?:jobs\[(\d+)\]|jobs (\d+) and (\d+))`)

// batchFailure is the error of a chunk that failed: its refusal with each
// job it names as its input line, what the chunk stored and not (a
// *queue.BatchError), and the jobs of the chunks before it, which are
// stored.
func batchFailure(err error, chunk []ndjsonJob, done []batchRow) error {
	msg := batchIndex.ReplaceAllStringFunc(errorText(err), func(m string) string {
		sub := batchIndex.FindStringSubmatch(m)
		line := func(s string) string {
			i, _ := strconv.Atoi(s)
			if !inChunk(chunk, i) {
				return s
			}
			return strconv.Itoa(chunk[i].line)
		}
		if sub[2] != "" {
			return sub[1] + "line " + line(sub[2])
		}
		return sub[1] + "lines " + line(sub[3]) + " and " + line(sub[4])
	})
	var be *queue.BatchError
	if errors.As(err, &be) {
		for _, part := range []struct {
			what string
			js   []queue.BatchRef
		}{{"stored", be.Stored}, {"not stored", be.NotStored}, {"may have been stored", be.MaybeStored}} {
			if len(part.js) == 0 {
				continue
			}
			lines := make([]int, 0, len(part.js))
			for _, j := range part.js {
				if inChunk(chunk, j.Index) {
					lines = append(lines, chunk[j.Index].line)
				}
			}
			msg += fmt.Sprintf("; of this batch, %s: %s", part.what, lineRanges(lines))
			if part.what == "stored" {
				msg += " (printed above)"
			}
		}
	}
	if len(done) > 0 {
		lines := make([]int, len(done))
		for i, r := range done {
			lines[i] = r.line
		}
		msg += fmt.Sprintf("; the %d jobs before this batch are stored (%s, printed above)", len(done), lineRanges(lines))
	} else if be == nil {
		msg += "; nothing was stored"
	}
	return batchLinesError{msg: msg, err: err}
}

// lineRanges writes ascending line numbers as ranges: "lines 1-3, 5".
func lineRanges(lines []int) string {
	var parts []string
	for i := 0; i < len(lines); {
		j := i
		for j+1 < len(lines) && lines[j+1] == lines[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(lines[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", lines[i], lines[j]))
		}
		i = j + 1
	}
	word := "lines "
	if len(lines) == 1 {
		word = "line "
	}
	return word + strings.Join(parts, ", ")
}

// batchLinesError is a failed enqueue-batch told in input lines: its text
// is msg, and its exit code its cause's (errorText, exitCode).
type batchLinesError struct {
	msg string
	err error
}

func (e batchLinesError) Error() string { return e.msg }
func (e batchLinesError) Unwrap() error { return e.err }
