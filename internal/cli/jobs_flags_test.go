package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/daemon"
)

// parseCmd runs the command newCmd builds with args, capturing the options
// its run function receives instead of running it. It returns the options
// (nil when the command failed before running) and the exit code the error
// maps to.
func parseCmd[O any](t *testing.T, newCmd func(client, func(context.Context, *O) error) *cobra.Command, args []string) (*O, int) {
	t.Helper()
	var got *O
	c := client{f: &Factory{IO: IOStreams{Out: io.Discard, ErrOut: io.Discard}, Getenv: func(string) string { return "" }}, conn: &ConnOptions{}}
	cmd := newCmd(c, func(_ context.Context, o *O) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	if err != nil {
		return got, exitCode(err)
	}
	return got, ExitOK
}

// checkParse parses args with the command newCmd builds and checks the exit
// code and the options its run function received (unexported fields
// ignored). It returns those options.
func checkParse[O any](t *testing.T, newCmd func(client, func(context.Context, *O) error) *cobra.Command, args []string, want *O, wantCode int) *O {
	t.Helper()
	got, code := parseCmd(t, newCmd, args)
	if code != wantCode {
		t.Fatalf("exit code = %d, want %d", code, wantCode)
	}
	var zero O
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(zero)); diff != "" {
		t.Errorf("options (-want +got)\n%s", diff)
	}
	return got
}

func intp(n int) *int { return &n }

func TestJobsEnqueueFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     *JobsEnqueueOptions
		wantCode int
	}{
		{"type only", []string{"ping"}, &JobsEnqueueOptions{Type: "ping"}, ExitOK},
		{"every flag", []string{"sleep", "--payload", `{"ms":5}`, "--queue", "slow", "--max-retries", "0", "--interval", "1m", "--delay", "1500ms"},
			&JobsEnqueueOptions{Type: "sleep", Payload: `{"ms":5}`, Queue: "slow", MaxRetries: intp(0), Interval: time.Minute, Delay: 1500 * time.Millisecond}, ExitOK},
		{"timeout", []string{"sleep", "--payload", `{"ms":5}`, "--timeout", "1m30s"},
			&JobsEnqueueOptions{Type: "sleep", Payload: `{"ms":5}`, Timeout: 90 * time.Second}, ExitOK},
		{"bad timeout", []string{"ping", "--timeout", "30"}, nil, ExitUsage},
		{"no type", nil, nil, ExitUsage},
		{"two types", []string{"ping", "echo"}, nil, ExitUsage},
		{"bad duration", []string{"ping", "--delay", "soon"}, nil, ExitUsage},
		{"bad retries", []string{"ping", "--max-retries", "many"}, nil, ExitUsage},
		{"unknown flag", []string{"ping", "--priority", "1"}, nil, ExitUsage},
		{"empty queue", []string{"ping", "--queue", ""}, nil, ExitUsage},
		{"blank queue", []string{"ping", "--queue", "  "}, nil, ExitUsage},
		{"empty queue with =", []string{"ping", "--queue="}, nil, ExitUsage},
		{"bad queue", []string{"ping", "--queue", "bad queue"}, nil, ExitUsage},
		{"idempotency key", []string{"ping", "--idempotency-key", "order-7"}, &JobsEnqueueOptions{Type: "ping", IdempotencyKey: "order-7"}, ExitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkParse(t, newJobsEnqueueCmd, tt.args, tt.want, tt.wantCode)
		})
	}
}

func TestJobsEnqueueRequest(t *testing.T) {
	tests := []struct {
		name     string
		opts     JobsEnqueueOptions
		stdin    string
		want     queue.EnqueueRequest
		wantCode int
	}{
		{"plain", JobsEnqueueOptions{Type: "ping"}, "", queue.EnqueueRequest{Type: "ping"}, ExitOK},
		{"payload and timing", JobsEnqueueOptions{Type: "echo", Payload: ` {"a":1} `, Queue: "q", MaxRetries: intp(2), Interval: time.Hour, Delay: 1500 * time.Millisecond},
			"", queue.EnqueueRequest{Type: "echo", Payload: []byte(`{"a":1}`), Queue: "q", MaxRetries: intp(2), IntervalSeconds: 3600, DelayMS: 1500}, ExitOK},
		{"payload from stdin", JobsEnqueueOptions{Type: "echo", Payload: "@-"}, `[1,2]` + "\n", queue.EnqueueRequest{Type: "echo", Payload: []byte(`[1,2]`)}, ExitOK},
		{"bad JSON", JobsEnqueueOptions{Type: "echo", Payload: `{"a":`}, "", queue.EnqueueRequest{}, ExitUsage},
		{"missing file", JobsEnqueueOptions{Type: "echo", Payload: "@/nonexistent/payload.json"}, "", queue.EnqueueRequest{}, ExitUsage},
		{"negative retries", JobsEnqueueOptions{Type: "ping", MaxRetries: intp(-1)}, "", queue.EnqueueRequest{}, ExitUsage},
		{"fractional interval", JobsEnqueueOptions{Type: "ping", Interval: 1500 * time.Millisecond}, "", queue.EnqueueRequest{}, ExitUsage},
		{"negative delay", JobsEnqueueOptions{Type: "ping", Delay: -time.Second}, "", queue.EnqueueRequest{}, ExitUsage},
		{"retries over the queue's bound", JobsEnqueueOptions{Type: "ping", MaxRetries: intp(queue.MaxRetriesLimit + 1)}, "", queue.EnqueueRequest{}, ExitUsage},
		{"retries at the bound", JobsEnqueueOptions{Type: "ping", MaxRetries: intp(queue.MaxRetriesLimit)}, "",
			queue.EnqueueRequest{Type: "ping", MaxRetries: intp(queue.MaxRetriesLimit)}, ExitOK},
		{"a timeout", JobsEnqueueOptions{Type: "ping", Timeout: 2500 * time.Millisecond}, "", queue.EnqueueRequest{Type: "ping", TimeoutMS: 2500}, ExitOK},
		{"a timeout of a week", JobsEnqueueOptions{Type: "ping", Timeout: queue.MaxJobTimeout}, "",
			queue.EnqueueRequest{Type: "ping", TimeoutMS: queue.MaxJobTimeout.Milliseconds()}, ExitOK},
		{"a timeout over a week", JobsEnqueueOptions{Type: "ping", Timeout: queue.MaxJobTimeout + time.Millisecond}, "", queue.EnqueueRequest{}, ExitUsage},
		{"a negative timeout", JobsEnqueueOptions{Type: "ping", Timeout: -time.Second}, "", queue.EnqueueRequest{}, ExitUsage},
		{"a timeout under 1ms", JobsEnqueueOptions{Type: "ping", Timeout: 500 * time.Microsecond}, "", queue.EnqueueRequest{}, ExitUsage},
		{"a delay over a year", JobsEnqueueOptions{Type: "ping", Delay: queue.MaxDelay + time.Millisecond}, "", queue.EnqueueRequest{}, ExitUsage},
		{"a delay of a year", JobsEnqueueOptions{Type: "ping", Delay: queue.MaxDelay}, "",
			queue.EnqueueRequest{Type: "ping", DelayMS: queue.MaxDelay.Milliseconds()}, ExitOK},
		{"an interval over a year", JobsEnqueueOptions{Type: "ping", Interval: queue.MaxDelay + time.Second}, "", queue.EnqueueRequest{}, ExitUsage},
		{"a payload over 1 MiB from stdin", JobsEnqueueOptions{Type: "echo", Payload: "@-"}, bigJSON(daemon.MaxBody + 10), queue.EnqueueRequest{}, ExitUsage},
		{"a payload that fits alone but not in its request", JobsEnqueueOptions{Type: "echo", Payload: bigJSON(daemon.MaxBody - 10)}, "", queue.EnqueueRequest{}, ExitUsage},
		{"idempotency key", JobsEnqueueOptions{Type: "ping", IdempotencyKey: "order-7"}, "", queue.EnqueueRequest{Type: "ping", IdempotencyKey: "order-7"}, ExitOK},
		{"idempotency key of 255 bytes", JobsEnqueueOptions{Type: "ping", IdempotencyKey: strings.Repeat("~", 255)}, "",
			queue.EnqueueRequest{Type: "ping", IdempotencyKey: strings.Repeat("~", 255)}, ExitOK},
		{"idempotency key too long", JobsEnqueueOptions{Type: "ping", IdempotencyKey: strings.Repeat("k", 256)}, "", queue.EnqueueRequest{}, ExitUsage},
		{"idempotency key with a space", JobsEnqueueOptions{Type: "ping", IdempotencyKey: "a b"}, "", queue.EnqueueRequest{}, ExitUsage},
		{"idempotency key given empty", JobsEnqueueOptions{Type: "ping", keyGiven: true}, "", queue.EnqueueRequest{}, ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.opts.request(stringsReader(tt.stdin))
			code := ExitOK
			if err != nil {
				code = exitCode(err)
			}
			if code != tt.wantCode {
				t.Fatalf("exit code = %d (%v), want %d", code, err, tt.wantCode)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("request (-want +got)\n%s", diff)
			}
		})
	}
}

// bigJSON is a JSON string of n bytes, quotes included.
func bigJSON(n int) string { return `"` + strings.Repeat("x", n-2) + `"` }

// TestJobsEnqueueRejects: flags out of the queue's bounds are refused in the
// CLI, naming the flag the user typed rather than the API's field.
func TestJobsEnqueueRejects(t *testing.T) {
	file := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(file, []byte(bigJSON(daemon.MaxBody+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty.json")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const noJSON = " holds no JSON: give a JSON value (such as {} or null), or leave --payload out for a job without a payload"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"a delay of ten years", []string{"ping", "--delay", "87600h"}, "--delay must be between 0 and 8760h (365 days), got 87600h0m0s"},
		{"a negative delay", []string{"ping", "--delay", "-1s"}, "--delay must be between 0 and 8760h (365 days), got -1s"},
		{"too many retries", []string{"ping", "--max-retries", "99999999999"}, "--max-retries must be between 0 and 100, got 99999999999"},
		{"negative retries", []string{"ping", "--max-retries", "-1"}, "--max-retries must be between 0 and 100, got -1"},
		{"an interval of two years", []string{"ping", "--interval", "17520h"}, "--interval must be a whole number of seconds between 0 and 8760h (365 days), got 17520h0m0s"},
		{"a payload file over 1 MiB", []string{"echo", "--payload", "@" + file}, "--payload is too large: it is over 1048576 bytes; a job's request, payload included, must be at most 1 MiB (1048576 bytes)"},
		{"a payload near 1 MiB", []string{"echo", "--payload", bigJSON(daemon.MaxBody - 2)},
			"--payload is too large: its request would be 1048600 bytes; a job's request, payload included, must be at most 1 MiB (1048576 bytes)"},
		// q27 #5: an empty --payload was a job without one, an empty @- or
		// @FILE "not valid JSON: unexpected end of JSON input": all three
		// hold no JSON, and are refused alike.
		{"an empty payload", []string{"echo", "--payload", ""}, `--payload ""` + noJSON},
		{"an empty payload with =", []string{"echo", "--payload="}, `--payload ""` + noJSON},
		{"a blank payload", []string{"echo", "--payload", "  "}, `--payload "  "` + noJSON},
		{"an empty stdin", []string{"echo", "--payload", "@-"}, `--payload "@-" (stdin was empty)` + noJSON},
		{"an empty file", []string{"echo", "--payload", "@" + empty}, `--payload "@` + empty + `" (the file is empty)` + noJSON},
		{"an idempotency key with a space", []string{"ping", "--idempotency-key", "order 7"},
			"--idempotency-key: idempotency key has byte 0x20 at 5: want " + queue.IdempotencyKeyRule},
		{"an empty idempotency key", []string{"ping", "--idempotency-key="}, "--idempotency-key: idempotency key is 0 bytes: want " + queue.IdempotencyKeyRule},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, map[string]string{"REFRAKT_SERVER": "http://127.0.0.1:9"}, append([]string{"jobs", "enqueue"}, tt.args...)...)
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr %q", code, ExitUsage, stderr)
			}
			if diff := cmp.Diff("refrakt: "+tt.want+"\n", stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJobsListFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     *JobsListOptions
		wantCode int
	}{
		{"none", nil, &JobsListOptions{}, ExitOK},
		{"filters", []string{"--status", "dead", "--queue", "slow", "--limit", "500"}, &JobsListOptions{Status: "dead", Queue: "slow", Limit: 500}, ExitOK},
		{"unknown status", []string{"--status", "lost"}, nil, ExitUsage},
		{"zero limit", []string{"--limit", "0"}, nil, ExitUsage},
		{"limit too big", []string{"--limit", "1001"}, nil, ExitUsage},
		{"an argument", []string{"pending"}, nil, ExitUsage},
		{"empty queue", []string{"--queue", ""}, nil, ExitUsage},
		{"blank queue", []string{"--queue", " "}, nil, ExitUsage},
		{"bad queue", []string{"--queue", "bad queue"}, nil, ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkParse(t, newJobsListCmd, tt.args, tt.want, tt.wantCode)
		})
	}
}

func TestJobsRunFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     *JobsRunOptions
		wantCode int
	}{
		{"id", []string{"abc"}, &JobsRunOptions{ID: "abc"}, ExitOK},
		{"next", []string{"--next"}, &JobsRunOptions{Next: true}, ExitOK},
		{"next of a queue", []string{"--next", "--queue", "slow"}, &JobsRunOptions{Next: true, Queue: "slow"}, ExitOK},
		{"id starting with a dash", []string{"-tql6kYt3cFZ4TOR1PVd5Q"}, &JobsRunOptions{ID: "-tql6kYt3cFZ4TOR1PVd5Q"}, ExitOK},
		{"queue named like a dash id", []string{"--next", "--queue", "-tql6kYt3cFZ4TOR1PVd5Q"}, &JobsRunOptions{Next: true, Queue: "-tql6kYt3cFZ4TOR1PVd5Q"}, ExitOK},
		{"dash id and next", []string{"--next", "-tql6kYt3cFZ4TOR1PVd5Q"}, nil, ExitUsage},
		{"neither", nil, nil, ExitUsage},
		{"both", []string{"abc", "--next"}, nil, ExitUsage},
		{"queue without next", []string{"abc", "--queue", "slow"}, nil, ExitUsage},
		{"two ids", []string{"a", "b"}, nil, ExitUsage},
		{"next of an empty queue", []string{"--next", "--queue", ""}, nil, ExitUsage},
		{"next of a blank queue", []string{"--next", "--queue", "   "}, nil, ExitUsage},
		{"an empty queue without next", []string{"abc", "--queue", ""}, nil, ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkParse(t, newJobsRunCmd, tt.args, tt.want, tt.wantCode)
		})
	}
}

func TestJobsIDCommandFlags(t *testing.T) {
	type idCase struct {
		name     string
		args     []string
		wantID   string
		wantCode int
	}
	cases := []idCase{
		{"one id", []string{"abc"}, "abc", ExitOK},
		{"id starting with a dash", []string{"-tql6kYt3cFZ4TOR1PVd5Q"}, "-tql6kYt3cFZ4TOR1PVd5Q", ExitOK},
		{"id starting with two dashes", []string{"--ql6kYt3cFZ4TOR1PVd5Q"}, "--ql6kYt3cFZ4TOR1PVd5Q", ExitOK},
		{"dash id after --", []string{"--", "-tql6kYt3cFZ4TOR1PVd5Q"}, "-tql6kYt3cFZ4TOR1PVd5Q", ExitOK},
		{"no id", nil, "", ExitUsage},
		{"unknown flag", []string{"abc", "--bogus"}, "", ExitUsage},
		{"short flag that is not an id", []string{"-x"}, "", ExitUsage},
		{"two ids", []string{"a", "b"}, "", ExitUsage},
	}
	for _, tt := range cases {
		t.Run("get/"+tt.name, func(t *testing.T) {
			got, code := parseCmd(t, newJobsGetCmd, tt.args)
			checkID(t, code, tt.wantCode, tt.wantID, func() string { return got.ID })
		})
		t.Run("cancel/"+tt.name, func(t *testing.T) {
			got, code := parseCmd(t, newJobsCancelCmd, tt.args)
			checkID(t, code, tt.wantCode, tt.wantID, func() string { return got.ID })
		})
		t.Run("requeue/"+tt.name, func(t *testing.T) {
			got, code := parseCmd(t, newJobsRequeueCmd, tt.args)
			checkID(t, code, tt.wantCode, tt.wantID, func() string { return got.ID })
		})
	}
	t.Run("tick/no args", func(t *testing.T) {
		if _, code := parseCmd(t, newJobsTickCmd, nil); code != ExitOK {
			t.Errorf("exit code = %d, want 0", code)
		}
	})
	t.Run("tick/an argument", func(t *testing.T) {
		if _, code := parseCmd(t, newJobsTickCmd, []string{"now"}); code != ExitUsage {
			t.Errorf("exit code = %d, want %d", code, ExitUsage)
		}
	})
}

func TestJobsRemoveQueueFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     *JobsRemoveQueueOptions
		wantCode int
	}{
		{"a queue", []string{"junk"}, &JobsRemoveQueueOptions{Queue: "junk"}, ExitOK},
		{"none", nil, nil, ExitUsage},
		{"empty", []string{""}, nil, ExitUsage},
		{"blank", []string{"  "}, nil, ExitUsage},
		{"bad", []string{"bad queue"}, nil, ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkParse(t, newJobsRemoveQueueCmd, tt.args, tt.want, tt.wantCode)
		})
	}
}

// TestQueueRejects: every command taking a queue refuses an empty or blank
// --queue, naming the flag, rather than reading it as "left out"; and a bad
// name gets the same message from each, before any daemon is asked (none
// listens at REFRAKT_SERVER: asking it would exit 3).
func TestQueueRejects(t *testing.T) {
	const badName = `refrakt: queue "bad queue": want 1-64 letters, digits, and _ . : -` + "\n"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"enqueue, empty", []string{"jobs", "enqueue", "ping", "--queue", ""},
			`refrakt: --queue "" names no queue: give a queue name (1-64 letters, digits, and _ . : -), or leave --queue out for the default queue` + "\n"},
		{"enqueue, blank", []string{"jobs", "enqueue", "ping", "--queue", "  "},
			`refrakt: --queue "  " names no queue: give a queue name (1-64 letters, digits, and _ . : -), or leave --queue out for the default queue` + "\n"},
		{"list, empty", []string{"jobs", "list", "--queue="},
			`refrakt: --queue "" names no queue: give a queue name (1-64 letters, digits, and _ . : -), or leave --queue out for every queue` + "\n"},
		{"list, blank", []string{"jobs", "list", "--queue", " "},
			`refrakt: --queue " " names no queue: give a queue name (1-64 letters, digits, and _ . : -), or leave --queue out for every queue` + "\n"},
		{"run --next, empty", []string{"jobs", "run", "--next", "--queue", ""},
			`refrakt: --queue "" names no queue: give a queue name (1-64 letters, digits, and _ . : -), or leave --queue out for any queue` + "\n"},
		{"remove-queue, empty", []string{"jobs", "remove-queue", ""}, `refrakt: queue "": want 1-64 letters, digits, and _ . : -` + "\n"},
		{"remove-queue, blank", []string{"jobs", "remove-queue", "  "}, `refrakt: queue "  ": want 1-64 letters, digits, and _ . : -` + "\n"},
		{"enqueue, bad", []string{"jobs", "enqueue", "ping", "--queue", "bad queue"}, badName},
		{"list, bad", []string{"jobs", "list", "--queue", "bad queue"}, badName},
		{"run --next, bad", []string{"jobs", "run", "--next", "--queue", "bad queue"}, badName},
		{"remove-queue, bad", []string{"jobs", "remove-queue", "bad queue"}, badName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, map[string]string{"REFRAKT_SERVER": "http://127.0.0.1:9", "REFRAKT_TOKEN": "x"}, tt.args...)
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr %q", code, ExitUsage, stderr)
			}
			if diff := cmp.Diff(tt.want, stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

func checkID(t *testing.T, code, wantCode int, wantID string, id func() string) {
	t.Helper()
	if code != wantCode {
		t.Fatalf("exit code = %d, want %d", code, wantCode)
	}
	if code == ExitOK {
		if diff := cmp.Diff(wantID, id()); diff != "" {
			t.Errorf("id (-want +got)\n%s", diff)
		}
	}
}

// TestJobsListOffsetFlag: --offset reads a later page of one queue's jobs
// of one status; a negative one, one that takes --offset plus --limit (50
// when not given) past queue.MaxListDepth, or one without --queue or
// --status, is refused with exit 2 and one line (naming the bound), before
// any driver is reached.
func TestJobsListOffsetFlag(t *testing.T) {
	qs := []string{"--queue", "q", "--status", "pending"}
	checkParse(t, newJobsListCmd, append([]string{"--offset", "1000", "--limit", "1000"}, qs...), &JobsListOptions{Queue: "q", Status: "pending", Offset: 1000, Limit: 1000}, ExitOK)
	checkParse(t, newJobsListCmd, append([]string{"--offset", fmt.Sprint(queue.MaxListDepth - 50)}, qs...), &JobsListOptions{Queue: "q", Status: "pending", Offset: queue.MaxListDepth - 50}, ExitOK)
	checkParse(t, newJobsListCmd, []string{"--offset", "0"}, &JobsListOptions{}, ExitOK)
	env := map[string]string{"REFRAKT_SERVER": "http://127.0.0.1:9"}
	bound := fmt.Sprint(queue.MaxListDepth)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--offset", "-1"}, "refrakt: --offset must be 0 or more, got -1\n"},
		{[]string{"--offset", fmt.Sprint(queue.MaxListDepth - 49)}, "refrakt: --offset plus --limit must be at most " + bound + ", got " + fmt.Sprint(queue.MaxListDepth-49) + " and 50\n"},
		{[]string{"--offset", "99001", "--limit", "1000"}, "refrakt: --offset plus --limit must be at most " + bound + ", got 99001 and 1000\n"},
		{[]string{"--offset", "1"}, "refrakt: --offset: " + queue.PageNeedsQueueAndStatus + " (--queue and --status)\n"},
		{[]string{"--offset", "1", "--queue", "q"}, "refrakt: --offset: " + queue.PageNeedsQueueAndStatus + " (--queue and --status)\n"},
		{[]string{"--offset", "1", "--status", "dead"}, "refrakt: --offset: " + queue.PageNeedsQueueAndStatus + " (--queue and --status)\n"},
	} {
		code, _, stderr := runCLI(t, env, append([]string{"jobs", "list"}, tt.args...)...)
		if code != ExitUsage || stderr != tt.want {
			t.Errorf("jobs list %v: exit %d, stderr %q; want exit %d, %q", tt.args, code, stderr, ExitUsage, tt.want)
		}
	}
}
