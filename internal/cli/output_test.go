package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestTableOnTerminalAndPipe(t *testing.T) {
	rows := [][]string{{"j1", "pending", "3s ago"}, {"job-two", "dead", "-"}}
	var tty, pipe bytes.Buffer
	if err := (&Printer{Out: &tty, TTY: true}).Table([]string{"id", "status", "enqueued"}, rows); err != nil {
		t.Fatal(err)
	}
	if err := (&Printer{Out: &pipe}).Table([]string{"id", "status", "enqueued"}, rows); err != nil {
		t.Fatal(err)
	}
	wantTTY := " ID       STATUS   ENQUEUED \n j1       pending  3s ago   \n job-two  dead     -        \n"
	if diff := cmp.Diff(wantTTY, tty.String()); diff != "" {
		t.Errorf("terminal table (-want +got)\n%s", diff)
	}
	if diff := cmp.Diff("j1\tpending\t3s ago\njob-two\tdead\t-\n", pipe.String()); diff != "" {
		t.Errorf("piped rows (-want +got)\n%s", diff)
	}
}

func TestSince(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		t    time.Time
		want string
	}{
		{"zero", time.Time{}, "-"},
		{"now", now, "just now"},
		{"seconds", now.Add(-3 * time.Second), "3s ago"},
		{"minutes", now.Add(-125 * time.Second), "2m ago"},
		{"future", now.Add(2 * time.Minute), "in 2m"},
		{"days", now.Add(-72 * time.Hour), "3d ago"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Since(tt.t, now)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// TestIsTerminal: only a terminal is one. /dev/null is a character device
// but no terminal: `refrakt top </dev/null` must not take it for one.
func TestIsTerminal(t *testing.T) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, stream := range map[string]any{"/dev/null": null, "a pipe's read end": r, "a pipe's write end": w, "a buffer": &bytes.Buffer{}} {
		if isTerminal(stream) {
			t.Errorf("%s taken for a terminal", name)
		}
	}
}

// TestDeepDocumentWrittenCompact (review sec28 MEDIUM 4, verifier ver28
// N4): -o json indents a document, two spaces a level, so a payload nested
// thousands deep grew with the square of its depth (a developer's 4 KB
// payload nested 2,000 deep printed 16 MB). A document nesting deeper than
// maxIndentDepth is written compact, on one line, the same JSON value; a
// shallower one stays indented.
func TestDeepDocumentWrittenCompact(t *testing.T) {
	const depth = 2000
	payload := json.RawMessage(strings.Repeat("[", depth) + strings.Repeat("]", depth))
	deep := map[string]any{"id": "j1", "payload": payload}
	var buf bytes.Buffer
	if err := (&Printer{Out: &buf}).PrintJSON(deep); err != nil {
		t.Fatal(err)
	}
	if n := buf.Len(); n > 3*len(payload) {
		t.Errorf("%d bytes for a %d-byte payload: want it compact", n, len(payload))
	}
	if strings.Count(buf.String(), "\n") != 1 || !json.Valid(buf.Bytes()) {
		t.Errorf("deep document %.80q…: want one line of valid JSON", buf.String())
	}
	buf.Reset()
	shallow := map[string]any{"id": "j1", "payload": json.RawMessage(`{"a":[1,2]}`)}
	if err := (&Printer{Out: &buf}).PrintJSON(shallow); err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"id\": \"j1\",\n  \"payload\": {\n    \"a\": [\n      1,\n      2\n    ]\n  }\n}\n"
	if buf.String() != want {
		t.Errorf("shallow document %q, want it indented: %q", buf.String(), want)
	}
}
