package cli

import (
	"io"
	"testing"

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
	if seen != 14 { // jobs + 8, limits + 4
		t.Errorf("walked %d commands, want 14", seen)
	}
}
