package cli

import (
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
)

// TestEveryCommandHasAnExample walks the jobs and limits commands: each
// has an Example in its help and a one-line Short.
func TestEveryCommandHasAnExample(t *testing.T) {
	root := newRootCmd(&Factory{IO: IOStreams{Out: io.Discard, ErrOut: io.Discard}, Getenv: func(string) string { return "" }})
	var walk func(c *cobra.Command)
	seen := 0
	walk = func(c *cobra.Command) {
		seen++
		t.Run(c.CommandPath(), func(t *testing.T) {
			if c.Example == "" {
				t.Error("no Example")
			}
			if c.Short == "" {
				t.Error("no Short")
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	for _, c := range root.Commands() {
		if c.Name() == "jobs" || c.Name() == "limits" {
			walk(c)
		}
	}
	if seen != 20 { // jobs + 13, limits + 5
		t.Errorf("walked %d commands, want 20", seen)
	}
}

// TestNoColorHelpSaysWhatItDoes: jobs and limits print no colour, so their
// help says --no-color has no effect there; top's still turns colour off.
func TestNoColorHelpSaysWhatItDoes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "jobs", args: []string{"jobs", "--help"}, want: "accepted, no effect: only top uses colour (also NO_COLOR)"},
		{name: "jobs list", args: []string{"jobs", "list", "--help"}, want: "accepted, no effect: only top uses colour (also NO_COLOR)"},
		{name: "limits get", args: []string{"limits", "get", "--help"}, want: "accepted, no effect: only top uses colour (also NO_COLOR)"},
		{name: "top", args: []string{"top", "--help"}, want: "no colour (also NO_COLOR)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, _ := runCLI(t, nil, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d", code)
			}
			// The flag's line: "--no-color[=true|false]   <usage>".
			usage := ""
			for l := range strings.Lines(out) {
				if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[0], "--no-color") {
					usage = strings.Join(f[1:], " ")
				}
			}
			if diff := cmp.Diff(tt.want, usage); diff != "" {
				t.Errorf("--no-color's help (-want +got):\n%s", diff)
			}
		})
	}
}
