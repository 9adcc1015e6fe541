package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/refrakt/refrakt/internal/cli/termtext"
	"github.com/refrakt/refrakt/internal/cli/top"
	"github.com/refrakt/refrakt/internal/jsondepth"
)

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// isTerminal reports whether stream (an io.Reader or io.Writer) is a
// terminal; tables are for people there, tab-separated rows for pipes. A
// character device that is no terminal, such as /dev/null, is not one.
func isTerminal(stream any) bool {
	f, ok := stream.(*os.File)
	return ok && term.IsTerminal(f.Fd())
}

// Printer writes a command's result as a table (terminal), tab-separated
// rows (pipe) or JSON (-o json, a stable shape for scripts).
type Printer struct {
	Out  io.Writer
	TTY  bool
	JSON bool
	Now  func() time.Time
	// Err is where warnings go (stderr), beside what Out prints; nil drops
	// them.
	Err io.Writer
}

func (f *Factory) printer(o *ConnOptions) *Printer {
	tty := isTerminal(f.IO.Out)
	if f.ForceTTY {
		tty = true
	}
	return &Printer{Out: f.IO.Out, TTY: tty, JSON: o.Output == "json", Now: time.Now, Err: f.IO.ErrOut}
}

// Warn writes one line "refrakt: warning: <msg>" to Err: something the
// user must know that is no failure (the exit code stays 0), and that
// piped or JSON output, read by a program, would not show. msg may be a
// server's (limits set's warning), so it is escaped as Table's cells are.
func (p *Printer) Warn(msg string) {
	if p.Err != nil {
		fmt.Fprintln(p.Err, "refrakt: warning: "+termtext.Escape(msg))
	}
}

// PrintJSON writes v as indented JSON, with the characters a terminal
// acts on or that reorder text escaped even where encoding/json leaves
// them raw (C1 controls, bidi and other format characters): the same
// value, safe to cat (termtext.EscapeJSON).
//
// A document that nests deeper than maxIndentDepth (a job's payload nested
// hundreds deep) is written compact, on one line: indented, its size grows
// with the square of its depth (a 60 KB payload 9,990 deep took 1.2 GB).
func (p *Printer) PrintJSON(v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	if !jsondepth.DeeperThan(buf.Bytes(), maxIndentDepth) {
		var indented bytes.Buffer
		if err := json.Indent(&indented, buf.Bytes(), "", "  "); err != nil {
			return err
		}
		buf = indented
	}
	_, err := p.Out.Write(termtext.EscapeJSON(buf.Bytes()))
	return err
}

// maxIndentDepth is the deepest document -o json indents: a job list is
// four levels before its payloads.
const maxIndentDepth = 32

// Text output (Table, Fields, Printf, Warn) is where a server's strings reach
// the terminal, and where they are escaped (termtext.Escape): a payload,
// an error or a name cannot move the cursor, recolour or clear the screen,
// or reorder the text around it, nor break a tab-separated row in two.

// Printf writes format with args, the text of each argument escaped:
// whatever its type (a string, an error, a fmt.Stringer, a []byte, a
// []string), it is formatted by its own verb first and then escaped, so
// only format's own text (its newlines) is written as it is. args, which
// may be a caller's slice, is left as it was. Every argument is a value to
// print: a `*` width or precision taken from args is not supported.
func (p *Printer) Printf(format string, args ...any) error {
	escaped := make([]any, len(args))
	for i, a := range args {
		escaped[i] = escapedArg{a}
	}
	_, err := fmt.Fprintf(p.Out, format, escaped...)
	return err
}

// escapedArg formats its value as the verb, flags, width and precision
// say, and writes the result escaped.
type escapedArg struct{ v any }

func (a escapedArg) Format(f fmt.State, verb rune) {
	_, _ = io.WriteString(f, termtext.Escape(fmt.Sprintf(fmt.FormatString(f, verb), a.v)))
}

// field is one line of a detail view: its name and value; a JSON value
// (a payload, a result) keeps its layout and is escaped as JSON.
type field struct {
	name, value string
	json        bool
}

// Fields writes one thing's fields: "Name: value" lines aligned on a
// terminal, "name<TAB>value" lines when piped. A JSON value is escaped as
// JSON only when it is valid JSON: EscapeJSON leaves ASCII controls raw,
// which only valid JSON cannot hold outside its escapes, and a payload read
// straight from Redis (--redis) is whatever the job's hash holds.
func (p *Printer) Fields(fields []field) error {
	var b strings.Builder
	for _, f := range fields {
		v := termtext.Escape(f.value)
		if f.json && json.Valid([]byte(f.value)) {
			v = string(termtext.EscapeJSON([]byte(f.value)))
		}
		if p.TTY {
			fmt.Fprintf(&b, "%-11s %s\n", f.name+":", v)
		} else {
			fmt.Fprintf(&b, "%s\t%s\n", strings.ReplaceAll(strings.ToLower(f.name), " ", "_"), v)
		}
	}
	_, err := io.WriteString(p.Out, b.String())
	return err
}

// Table writes rows under headers: aligned with a header on a terminal,
// tab-separated without a header when piped.
func (p *Printer) Table(headers []string, rows [][]string) error {
	escaped := make([][]string, len(rows))
	for i, r := range rows {
		escaped[i] = make([]string, len(r))
		for j, c := range r {
			escaped[i][j] = termtext.Escape(c)
		}
	}
	rows = escaped
	if !p.TTY {
		for _, r := range rows {
			if _, err := fmt.Fprintln(p.Out, strings.Join(r, "\t")); err != nil {
				return err
			}
		}
		return nil
	}
	t := tablewriter.NewTable(p.Out,
		tablewriter.WithRenderer(renderer.NewBlueprint(tw.Rendition{
			Borders: tw.BorderNone,
			Symbols: tw.NewSymbols(tw.StyleNone),
			Settings: tw.Settings{
				Separators: tw.Separators{BetweenColumns: tw.Off, BetweenRows: tw.Off},
				Lines:      tw.Lines{ShowHeaderLine: tw.Off},
			},
		})),
		tablewriter.WithHeaderAlignment(tw.AlignLeft),
		tablewriter.WithRowAlignment(tw.AlignLeft),
		tablewriter.WithHeaderAutoFormat(tw.On),
	)
	t.Header(headers)
	if err := t.Bulk(rows); err != nil {
		return err
	}
	return t.Render()
}

// Since renders t relative to now for people: "3s ago", "in 2m", "-".
func Since(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d > -time.Second && d < time.Second:
		return "just now"
	case d < 0:
		return "in " + shortDuration(-d)
	}
	return shortDuration(d) + " ago"
}

func shortDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

// ageCell is an age the API serves in seconds: "3m4s" on a terminal
// (top's form), whole seconds when piped.
func (p *Printer) ageCell(sec float64) string {
	d := time.Duration(max(sec, 0) * float64(time.Second))
	if !p.TTY {
		return strconv.FormatInt(int64(d/time.Second), 10)
	}
	return top.Age(d)
}

// printNone is what a list command shows of an empty list: "No <what>."
// on a terminal, nothing when piped.
func (p *Printer) printNone(what string) error {
	if !p.TTY {
		return nil
	}
	_, err := fmt.Fprintf(p.Out, "No %s.\n", what)
	return err
}

// orEmpty is s, or an empty slice when s is nil: -o json prints [] for
// none, never null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
