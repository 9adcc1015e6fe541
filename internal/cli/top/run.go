package top

import (
	"context"
	"errors"
	"io"
	"strings"

	tea "charm.land/bubbletea/v2"
)

// Run runs `top` on the terminal behind in and out until the user quits
// (nil) or ctx ends. environ is the process environment: the colour
// profile (NO_COLOR, TERM) is taken from it, not from the real one.
func Run(ctx context.Context, src Source, opts Options, in io.Reader, out io.Writer, environ []string) error {
	opts.NoColor = opts.NoColor || noColor(environ)
	p := tea.NewProgram(New(ctx, src, opts),
		tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out), tea.WithEnvironment(environ))
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// noColor reports whether environ asks for no colour: NO_COLOR set and not
// empty (no-color.org).
func noColor(environ []string) bool {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "NO_COLOR="); ok && v != "" {
			return true
		}
	}
	return false
}
