package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/daemon"
	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// binCLIStdin is binCLI with stdin.
func binCLIStdin(t *testing.T, env map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, daemontest.Binary(t), args...)
	cmd.WaitDelay = time.Second
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

// TestE2EEnqueueBatch: the binary's `jobs enqueue-batch`, over a real
// daemon's API and straight over its Redis, enqueues the NDJSON of a file
// (blank lines skipped) and of stdin, printing each job's line and id
// (tab-separated when piped; -o json the jobs); a line 3 that is not a JSON
// object exits 2 with one line naming line 3 and enqueues nothing, and so
// does a job the daemon refuses (named by its line); 1,001 lines go in two
// batches, and when the second fails the error says that the first
// 1,000 (lines 1-1000) are stored.
func TestE2EEnqueueBatch(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=eb:"}, "--workers", "0")
	for _, de := range drivers(t, d, r, "eb:") {
		t.Run(de.name, func(t *testing.T) {
			q := "batch-" + de.name
			file := filepath.Join(t.TempDir(), "jobs.ndjson")
			body := fmt.Sprintf(`{"type":"ping","queue":%q}`+"\n\n"+`{"type":"echo","payload":{"n":1},"queue":%q}`+"\n"+`  {"type":"ping","queue":%q,"delay_ms":60000}`+"\n", q, q, q)
			if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := binCLI(t, de.env, "jobs", "enqueue-batch", "--file", file)
			rows := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if code != ExitOK || errOut != "" || len(rows) != 3 {
				t.Fatalf("from a file: exit %d, stdout %q, stderr %q; want 3 rows", code, out, errOut)
			}
			var ids []string
			for i, want := range []string{"1\t%s\t" + q + "\tping\tpending\t", "3\t%s\t" + q + "\techo\tpending\t", "4\t%s\t" + q + "\tping\tscheduled\t"} {
				f := strings.Split(rows[i], "\t")
				if len(f) != 6 || rows[i] != fmt.Sprintf(want, f[1]) || len(f[1]) != 22 {
					t.Errorf("row %d: %q, want %q", i, rows[i], want)
					continue
				}
				ids = append(ids, f[1])
			}
			if got := listIDs(t, de.env, "--queue", q); len(got) != 3 {
				t.Errorf("jobs of %s: %v, want the batch's 3 (%v)", q, got, ids)
			}

			code, out, errOut = binCLIStdin(t, de.env, `{"type":"ping","queue":"`+q+`"}`+"\n"+`{"type":"ping","queue":"`+q+`-2"}`, "jobs", "enqueue-batch", "-o", "json")
			var js []struct {
				ID, Queue, Source string
			}
			if err := json.Unmarshal([]byte(out), &js); code != ExitOK || err != nil || len(js) != 2 || js[1].Queue != q+"-2" || js[0].Source != "cli" || errOut != "" {
				t.Fatalf("from stdin, -o json: exit %d, %v, stdout %q, stderr %q; want 2 jobs", code, err, out, errOut)
			}

			ping := `{"type":"ping","queue":"` + q + `"}` // in q, which the refused runs must leave as it was
			for _, c := range []struct{ name, input, want string }{
				{"line 3 not an object", ping + "\n" + ping + "\n" + `[1]` + "\n" + ping, "line 3 is JSON, but not an object"},
				{"line 3 not JSON", ping + "\n\n" + `{"type":` + "\n", "line 3 is not valid JSON"},
				{"line 2 refused", `{"type":"ping","queue":"` + q + `"}` + "\n" + `{"type":"nope","queue":"` + q + `"}`, "line 2: "},
				{"line 2 unknown field", `{"type":"ping","queue":"` + q + `"}` + "\n" + `{"type":"ping","queue":"` + q + `","prio":1}`, `line 2: unknown field "prio"`},
			} {
				code, out, errOut := binCLIStdin(t, de.env, c.input, "jobs", "enqueue-batch")
				if code != ExitUsage || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, c.want) {
					t.Errorf("%s: exit %d, stdout %q, stderr %q; want 2 and one line saying %q", c.name, code, out, errOut, c.want)
				}
			}
			if got := listIDs(t, de.env, "--queue", q); len(got) != 4 {
				t.Errorf("jobs of %s after the refusals: %d, want 4", q, len(got))
			}

			var many strings.Builder
			for range 1001 {
				fmt.Fprintf(&many, `{"type":"ping","queue":"many-%s"}`+"\n", de.name)
			}
			code, out, errOut = binCLIStdin(t, de.env, many.String(), "jobs", "enqueue-batch")
			if rows := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); code != ExitOK || errOut != "" || len(rows) != 1001 || !strings.HasPrefix(rows[1000], "1001\t") {
				t.Errorf("1001 lines: exit %d, %d rows, stderr %q; want 1001 rows", code, len(rows), errOut)
			}
			code, out, errOut = binCLIStdin(t, de.env, many.String()+`{"type":"nope"}`+"\n", "jobs", "enqueue-batch")
			if rows := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); code != ExitUsage || len(rows) != 1000 || strings.Count(errOut, "\n") != 1 ||
				!strings.Contains(errOut, "line 1002: ") || !strings.Contains(errOut, "the 1000 jobs before this batch are stored (lines 1-1000") {
				t.Errorf("1002 lines, the last refused: exit %d, %d rows, stderr %q; want 2, the first batch's 1000 rows and a line saying they are stored", code, len(rows), errOut)
			}
		})
	}
}

// TestEnqueueBatchEarlierDaemon: a daemon of an earlier version answers
// the batch route 404 (no route): the CLI says in one line that the daemon
// does not know it and what to do instead, exit 1.
func TestEnqueueBatchEarlierDaemon(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":{"code":"not_found","message":"no route %s %s"}}`, r.Method, r.URL.Path)
	}))
	defer srv.Close()
	env := map[string]string{"REFRAKT_SERVER": srv.URL, "REFRAKT_TOKEN": "x", "XDG_STATE_HOME": t.TempDir()}
	code, out, errOut := binCLIStdin(t, env, `{"type":"ping"}`, "jobs", "enqueue-batch")
	if code != ExitFailed || out != "" || strings.Count(errOut, "\n") != 1 ||
		!strings.Contains(errOut, "does not know POST /api/dev/jobs/enqueue-batch (it is of an earlier version)") {
		t.Errorf("earlier daemon: exit %d, stdout %q, stderr %q; want 1 and one line saying so", code, out, errOut)
	}
}

// TestBatchFailureLines: a batch that failed to store part of itself is
// told in input lines: its jobs stored, not stored and maybe stored (a
// *queue.BatchError's, by their index in the batch), and the jobs of the
// batches before it, stored; a refusal's jobs[i] becomes its line.
func TestBatchFailureLines(t *testing.T) {
	chunk := []ndjsonJob{{line: 5}, {line: 6}, {line: 7}, {line: 9}}
	done := []batchRow{{line: 1}, {line: 2}, {line: 4}}
	be := &queue.BatchError{
		Stored:      []queue.BatchRef{{Index: 0}, {Index: 1}},
		NotStored:   []queue.BatchRef{{Index: 2}},
		MaybeStored: []queue.BatchRef{{Index: 3}},
		Err:         core.Errorf(core.CodeUnavailable, "the job queue is unavailable"),
	}
	err := batchFailure(be, chunk, done)
	want := "the job queue is unavailable; of this batch, stored: lines 5-6 (printed above); of this batch, not stored: line 7; of this batch, may have been stored: line 9; the 3 jobs before this batch are stored (lines 1-2, 4, printed above)"
	if got := errorText(err); got != want {
		t.Errorf("errorText:\n got %q\nwant %q", got, want)
	}
	if exitCode(err) != ExitUnreachable {
		t.Errorf("exit code %d, want %d (the cause's)", exitCode(err), ExitUnreachable)
	}
	for _, c := range []struct{ msg, want string }{
		{"jobs[2]: unknown job type", "line 7: unknown job type; nothing was stored"},
		{`jobs 1 and 3 have the same idempotency key "jobs[0]" in queue q`, `lines 6 and 9 have the same idempotency key "jobs[0]" in queue q; nothing was stored`},
		{`jobs[1]: idempotency key "jobs 0 and 2" was already used`, `line 6: idempotency key "jobs 0 and 2" was already used; nothing was stored`},
		{`a message naming jobs[1] inside`, `a message naming jobs[1] inside; nothing was stored`},
	} {
		refused := batchFailure(core.Errorf(core.CodeInvalid, "%s", c.msg), chunk, nil)
		if got := errorText(refused); got != c.want || exitCode(refused) != ExitUsage {
			t.Errorf("refusal %q: %q (exit %d), want %q (exit 2)", c.msg, got, exitCode(refused), c.want)
		}
	}
}

// TestE2EEnqueueBatchHTMLCharacters: lines of <, > and & are sent as
// they are (not HTML-escaped, 6 bytes each), so that 4 lines of 51 KiB of
// '<' (205 KiB) are one request the daemon takes, over the API as over
// Redis, and not a body over 1 MiB (413).
func TestE2EEnqueueBatchHTMLCharacters(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=eh:"}, "--workers", "0")
	var in strings.Builder
	for range 4 {
		fmt.Fprintf(&in, `{"type":"echo","queue":"html","payload":{"s":%q}}`+"\n", strings.Repeat("<", 50<<10)+"&>")
	}
	for _, de := range drivers(t, d, r, "eh:") {
		code, out, errOut := binCLIStdin(t, de.env, in.String(), "jobs", "enqueue-batch")
		if code != ExitOK || strings.Count(out, "\n") != 4 {
			t.Errorf("%s: exit %d, stdout %d lines, stderr %q; want 0 and the 4 jobs", de.name, code, strings.Count(out, "\n"), errOut)
		}
	}
}

// TestBatchChunksFitTheBody: chunks are sized on the lines as batchBody
// encodes them, so that every chunk's body fits daemon.MaxBody, whatever
// the lines hold (<, > and &, which json.Marshal would grow sixfold; space
// that compacting drops).
func TestBatchChunksFitTheBody(t *testing.T) {
	var in strings.Builder
	for i := range 9 {
		fmt.Fprintf(&in, `{ "type" : "echo" , "payload" : {"s":%q} }`+"\n", strings.Repeat("<&>", (i+1)*20<<10))
	}
	jobs, err := readNDJSON(strings.NewReader(in.String()), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range chunks(jobs) {
		raws := make([]json.RawMessage, len(c))
		for i, j := range c {
			raws[i] = j.raw
		}
		body, err := batchBody(raws)
		if err != nil {
			t.Fatal(err)
		}
		if len(body) > daemon.MaxBody {
			t.Errorf("a chunk of %d jobs is a body of %d bytes, over %d", len(c), len(body), daemon.MaxBody)
		}
		var got struct{ Jobs []json.RawMessage }
		if err := json.Unmarshal(body, &got); err != nil || len(got.Jobs) != len(c) {
			t.Errorf("body: %v, %d jobs, want %d", err, len(got.Jobs), len(c))
		}
		n += len(c)
	}
	if n != 9 {
		t.Errorf("chunks hold %d jobs, want 9", n)
	}
}

// TestE2EEnqueueBatchPartlyStored: over the API (the daemon's details
// turned back into a *queue.BatchError) as over Redis, a batch whose queue
// b is broken (its pending list a string: its script fails running) prints
// the jobs it stored all the same, lines 1 and 3, with their ids (a table,
// and -o json), and exits 3 (unavailable) saying lines 1 and 3 are stored
// and line 2 may have been.
func TestE2EEnqueueBatchPartlyStored(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=ep:"}, "--workers", "0")
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	for _, de := range drivers(t, d, r, "ep:") {
		t.Run(de.name, func(t *testing.T) {
			ok, bad := "ok-"+de.name, "bad-"+de.name
			if err := rdb.Set(context.Background(), "ep:q:{"+bad+"}:pending", "not a list", 0).Err(); err != nil {
				t.Fatal(err)
			}
			in := fmt.Sprintf(`{"type":"ping","queue":%q}`+"\n"+`{"type":"ping","queue":%q}`+"\n"+`{"type":"echo","queue":%q}`+"\n", ok, bad, ok)
			code, out, errOut := binCLIStdin(t, de.env, in, "jobs", "enqueue-batch")
			rows := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			want := "of this batch, stored: lines 1, 3 (printed above); of this batch, may have been stored: line 2"
			if de.name == "redis" && !strings.Contains(errOut, "the job queue failed part way through the enqueue; job ") {
				t.Errorf("stderr %q, want the script told as failed part way", errOut)
			}
			if code != ExitUnreachable || len(rows) != 2 || !strings.Contains(errOut, want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 3, the 2 jobs stored and %q", code, out, errOut, want)
			}
			for i, w := range []string{"1\t%s\t" + ok + "\tping\t\t", "3\t%s\t" + ok + "\techo\t\t"} {
				f := strings.Split(rows[i], "\t")
				if len(f) != 6 || rows[i] != fmt.Sprintf(w, f[1]) || len(f[1]) != 22 {
					t.Errorf("row %d: %q, want %q", i, rows[i], w)
				}
			}
			if got := listIDs(t, de.env, "--queue", ok); len(got) != 2 || !strings.Contains(out, got[0]) || !strings.Contains(out, got[1]) {
				t.Errorf("jobs of %s: %v, want the 2 printed:\n%s", ok, got, out)
			}

			code, out, _ = binCLIStdin(t, de.env, in, "jobs", "enqueue-batch", "-o", "json")
			var js []struct{ ID, Queue, Type string }
			if err := json.Unmarshal([]byte(out), &js); code != ExitUnreachable || err != nil || len(js) != 2 || js[0].Queue != ok || js[1].Type != "echo" {
				t.Fatalf("-o json: exit %d, %v, stdout %q; want the 2 jobs stored", code, err, out)
			}
			if got := listIDs(t, de.env, "--queue", ok); len(got) != 4 || !slices.Contains(got, js[0].ID) || !slices.Contains(got, js[1].ID) {
				t.Errorf("jobs of %s: %v, want those printed, %v, among them", ok, got, js)
			}
		})
	}
}
