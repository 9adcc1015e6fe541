package cli

import (
	"bytes"
	"os"
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
