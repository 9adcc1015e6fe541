package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/redistest"
)

// hostile are characters a terminal acts on or that reorder or hide text:
// ESC, DEL, the 8-bit CSI, a right-to-left override, a bidi isolate, a
// zero-width space.
var hostile = []string{"\x1b", "\x7f", "\u009b", "\u202e", "\u2067", "\u200b"}

// checkEscaped fails unless out holds none of hostile raw and each of
// wants.
func checkEscaped(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, h := range hostile {
		if strings.Contains(out, h) {
			t.Errorf("%s: %q written raw:\n%q", what, h, out)
		}
	}
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: no %s in\n%q", what, w, out)
		}
	}
}

// TestE2EServerTextEscaped: an anonymous payload with raw C1 and bidi
// controls (valid JSON, so the daemon takes it) is written by `jobs get`
// and `jobs run` with those characters escaped as \u escapes; -o json
// escapes them too and stays the same JSON value.
func TestE2EServerTextEscaped(t *testing.T) {
	d := startDaemon(t, nil, "--workers", "0")
	payload := "\"A\u009b31mRED\u202eevil\\u001b[2J\x7f\u2067\u200b\""
	resp, body := d.Call(http.MethodPost, "/run", `{"type":"echo","payload":`+payload+`}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /run: %s %s", resp.Status, body)
	}
	var j queue.Job
	if err := json.Unmarshal(body, &j); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"REFRAKT_SERVER": d.URL, "REFRAKT_TOKEN": d.Token, "XDG_STATE_HOME": t.TempDir()}
	wants := []string{`\u009b31mRED`, `\u202eevil`, `\u001b[2J`, `\u007f`, `\u2067`, `\u200b`}

	checkEscaped(t, "jobs run", mustCLI(t, env, "jobs", "run", j.ID), wants...)
	checkEscaped(t, "jobs get", mustCLI(t, env, "jobs", "get", j.ID), wants...)
	out := mustCLI(t, env, "jobs", "get", j.ID, "-o", "json")
	checkEscaped(t, "jobs get -o json", out, wants...)
	var got queue.Job
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	var want, gotValue string
	_ = json.Unmarshal([]byte(payload), &want)
	_ = json.Unmarshal(got.Result, &gotValue)
	if diff := cmp.Diff(want, gotValue); diff != "" {
		t.Errorf("-o json result (-want +got):\n%s", diff)
	}
}

// TestPrinterEscapesServerText: every text output mode escapes what a
// server sent, wherever it lands: table cells (jobs, limits), the
// Field: value view, the sentences of enqueue and tick; a JSON value keeps
// its layout; -o json is the same value.
func TestPrinterEscapesServerText(t *testing.T) {
	bad := "x\x1b[2J\u009b\u202e\u2067\u200b\x7f\ty\nz"
	job := &queue.Job{ID: "id" + bad, Queue: "q" + bad, Type: "t" + bad, Status: queue.StatusDead, LastError: "e" + bad,
		Payload:    json.RawMessage("{\n  \"p\": \"" + strings.NewReplacer("\x1b", `\u001b`, "\t", `\t`, "\n", `\n`).Replace(bad) + "\"\n}"),
		EnqueuedAt: goldenNow, RunAt: goldenNow}
	limits := LimitsView{Enabled: true, Overrides: []OverrideView{{Target: "run:ip:" + bad, Capacity: 1, WindowSeconds: 60, Origin: "o" + bad}}}
	prints := map[string]func(*Printer) error{
		"jobs get":  func(p *Printer) error { return printJob(p, job) },
		"jobs list": func(p *Printer) error { return printJobs(p, []*queue.Job{job}) },
		"enqueue":   func(p *Printer) error { return printEnqueued(p, job) },
		"tick": func(p *Printer) error {
			return printTick(p, TickView{Dead: []queue.DeadJob{{ID: job.ID, Queue: job.Queue, Type: job.Type}}})
		},
		"limits get": func(p *Printer) error { return printLimits(p, limits) },
		"limits unset": func(p *Printer) error {
			return printDone(p, nil, "Removed the override of %s.", limits.Overrides[0].Target)
		},
	}
	for name, print := range prints {
		for _, mode := range []string{"tty", "pipe", "json"} {
			// Piped, these print no text of the server's (unset nothing,
			// tick its counts); unset's JSON is no text either.
			if (name == "limits unset" && mode != "tty") || (name == "tick" && mode == "pipe") {
				continue
			}
			t.Run(name+"_"+mode, func(t *testing.T) {
				var buf bytes.Buffer
				p := printers(&buf)[mode]
				p.Now = func() time.Time { return goldenNow }
				if err := print(p); err != nil {
					t.Fatal(err)
				}
				out := buf.String()
				checkEscaped(t, name, out, `\u001b[2J`, `\u009b`, `\u202e`)
				if mode == "json" && !json.Valid(buf.Bytes()) {
					t.Errorf("not JSON:\n%s", out)
				}
				if mode != "json" && (strings.Contains(out, "x\ty") || strings.Contains(out, "y\nz")) {
					t.Errorf("a tab or a newline of the server's written raw:\n%q", out)
				}
			})
		}
	}
}

// TestE2ERedisPayloadEscaped (code28 LOW 3): a payload read straight from
// Redis (--redis) is whatever the job's hash holds, not checked JSON;
// `jobs get` escapes one that is no JSON as text, ESC and all.
func TestE2ERedisPayloadEscaped(t *testing.T) {
	r := redistest.Start(t)
	state := t.TempDir()
	env := map[string]string{"REFRAKT_REDIS": r.URL(), "REFRAKT_PREFIX": "esc:", "XDG_STATE_HOME": state, "HOME": state}
	j := jobJSON(t, env, "jobs", "enqueue", "ping", "--queue", "q")
	if _, err := redistest.Do(r.Addr(), "HSET", "esc:q:{q}:j:"+j.ID, "payload", "\"\x1b[2J\u009b\u202eboom\x7f"); err != nil {
		t.Fatal(err)
	}
	checkEscaped(t, "jobs get --redis", mustCLI(t, env, "jobs", "get", j.ID), `\u001b[2J\u009b\u202eboom\u007f`)
}

// TestPrinterEscapesInvalidJSON (code28 LOW 3): a JSON field that is not
// valid JSON is escaped as text, on a terminal and piped.
func TestPrinterEscapesInvalidJSON(t *testing.T) {
	job := &queue.Job{ID: "j1", Queue: "q", Type: "t", Status: queue.StatusPending,
		Payload: json.RawMessage("\"\x1b[2J\u009b\u202eboom\x7f"), EnqueuedAt: goldenNow, RunAt: goldenNow}
	for _, mode := range []string{"tty", "pipe"} {
		var buf bytes.Buffer
		if err := printJob(printers(&buf)[mode], job); err != nil {
			t.Fatal(err)
		}
		checkEscaped(t, "jobs get "+mode, buf.String(), `\u001b[2J\u009b\u202eboom\u007f`)
	}
}

// TestPrinterWarnEscapes (code28 LOW 3): a warning is a server's text
// (limits set's) and is escaped.
func TestPrinterWarnEscapes(t *testing.T) {
	var buf bytes.Buffer
	(&Printer{Out: io.Discard, Err: &buf}).Warn("w\x1b[2J\u009b\u202e\x7f")
	checkEscaped(t, "warning", buf.String(), `w\u001b[2J\u009b\u202e\u007f`)
	if strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("warning %q, want one line", buf.String())
	}
}

type stringer string

func (s stringer) String() string { return string(s) }

// TestPrinterPrintfEscapesEveryArgument (code28 LOW 3, NIT 11): Printf
// escapes the formatted text of every argument, not only strings (an
// error, a fmt.Stringer, a []byte, a []string), keeps the verbs' widths
// and format's own newline, and leaves the caller's slice as it was.
func TestPrinterPrintfEscapesEveryArgument(t *testing.T) {
	bad := "\x1b[2J\u009b\u202e"
	args := []any{"s" + bad, errors.New("e" + bad), stringer("f" + bad), []byte("b" + bad), []string{"l" + bad}, 7}
	before := slices.Clone(args)
	var buf bytes.Buffer
	if err := (&Printer{Out: &buf}).Printf("%s|%v|%s|%s|%v|%3d\n", args...); err != nil {
		t.Fatal(err)
	}
	e := `\u001b[2J\u009b\u202e`
	want := "s" + e + "|e" + e + "|f" + e + "|b" + e + "|[l" + e + "]|  7\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(fmt.Sprint(before...), fmt.Sprint(args...)); diff != "" {
		t.Errorf("the caller's args changed (-before +after):\n%s", diff)
	}
}
