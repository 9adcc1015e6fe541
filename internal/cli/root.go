// Package cli is the refrakt command line: `serve` runs the daemon; `jobs`,
// `limits` and `top` are the operator's tools over the daemon's API or
// straight over Redis. Run is the only entry: nothing below it touches
// os.Args, os.Getenv or os.Exit.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/cli/termtext"
	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/version"
)

// Exit codes, decided in one place (exitCode).
const (
	ExitOK          = 0
	ExitFailed      = 1
	ExitUsage       = 2
	ExitUnreachable = 3
)

// IOStreams are the CLI's only link to the terminal.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// Factory carries what every command needs from the outside world.
type Factory struct {
	IO     IOStreams
	Getenv func(string) string
	// ForceTTY makes output look as on a terminal (for golden tests).
	ForceTTY bool
}

// Run runs the refrakt command line with args (without the program name)
// and returns the process exit code.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	f := &Factory{IO: IOStreams{In: stdin, Out: stdout, ErrOut: stderr}, Getenv: getenv}
	root := newRootCmd(f) // its streams are f.IO's
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var logged loggedError
	if !errors.As(err, &logged) {
		fmt.Fprintln(stderr, "refrakt: "+errorLine(err))
	}
	return exitCode(err)
}

func newRootCmd(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:           "refrakt",
		Short:         "Rate limits, admission control, a job queue and metrics in one binary",
		Long:          "refrakt protects a service with rate limits and admission control, runs its background jobs,\nand shows operators what is happening. `refrakt serve` runs the daemon; the other commands\nare the operator's tools for the same state.",
		SilenceUsage:  true,
		SilenceErrors: true,
		// cobra prints Version through the version template when
		// --version is given: Version holds the whole line, so that
		// --version prints what `refrakt version` prints.
		Version: versionLine(version.Get()),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	// Declared here, --version has no -v: cobra would take -v for it
	// when free, and -v means verbose to many tools.
	root.Flags().Bool("version", false, "print refrakt's version, as refrakt version does")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newServeCmd(f, nil), newVersionCmd(f), newJobsCmd(f), newLimitsCmd(f), newTopCmd(f, nil))
	// The completion scripts are written where the root writes when the
	// completion command is made: set it first.
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	strictCompletion(root)
	return root
}

// strictCompletion makes cobra's `completion` command behave as the other
// nouns do: alone it prints its help (exit 0), and an argument that is not
// one of its shells is a usage error (exit 2) rather than its help with
// exit 0.
func strictCompletion(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		var shells []string
		for _, sub := range c.Commands() {
			shells = append(shells, sub.Name())
		}
		c.Example = "  refrakt completion bash > /etc/bash_completion.d/refrakt\n" +
			"  source <(refrakt completion zsh)"
		c.Args = func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("completion: unsupported shell %q (want one of %s)", args[0], strings.Join(shells, ", "))}
			}
			return nil
		}
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
}

// usageError marks a mistake in how a command was called (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// loggedError is an error its command has written to its log already
// (serve under LOG_FORMAT=json): Run gives its exit code without printing
// it again.
type loggedError struct{ err error }

func (e loggedError) Error() string { return e.err.Error() }
func (e loggedError) Unwrap() error { return e.err }

// unreachableError marks a daemon or Redis that could not be reached (exit 3).
type unreachableError struct {
	addr string
	err  error
}

func (e unreachableError) Error() string {
	return config.RedactIn(fmt.Sprintf("cannot reach %s: %v", config.RedactURL(e.addr), e.err), e.addr)
}
func (e unreachableError) Unwrap() error { return e.err }

// exitCode is the one table from errors to exit codes.
func exitCode(err error) int {
	var (
		usage       usageError
		unreachable unreachableError
		redirect    redirectError
		withheld    listenerOwnerError
		cfg         *config.Error
	)
	switch {
	case errors.As(err, &usage), errors.As(err, &cfg):
		return ExitUsage
	case errors.As(err, &unreachable), errors.As(err, &redirect), errors.As(err, &withheld):
		return ExitUnreachable
	case isCobraUsage(err):
		return ExitUsage
	}
	switch core.ErrorCode(err) {
	case core.CodeInvalid, core.CodeTooLarge: // a 413 is input too big to send
		return ExitUsage
	case core.CodeUnavailable:
		return ExitUnreachable
	}
	return ExitFailed
}

// isCobraUsage recognises cobra's own argument and command errors, which it
// returns as plain errors.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "received ", "unknown flag", "unknown shorthand flag", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.HasPrefix(msg, p) || strings.Contains(msg, " "+p) {
			return true
		}
	}
	return false
}

func errorText(err error) string {
	var lines batchLinesError
	if errors.As(err, &lines) {
		return lines.msg // its cause's text, told in input lines
	}
	var ce *core.Error
	if errors.As(err, &ce) && ce.Message != "" {
		msg := ce.Message
		var hint hintError
		if errors.As(ce.Err, &hint) {
			msg += string(hint)
		}
		var outage daemonOutageError
		if errors.As(err, &outage) {
			msg = outage.Error()
		}
		return msg
	}
	return err.Error()
}

// errorLine is what the user is told of err: one line, the text of Run's
// "refrakt: …" line.
// Its first line only, escaped as text output is (termtext): a daemon's or
// a proxy's message reaches the terminal through it.
func errorLine(err error) string { return termtext.Escape(oneLine(errorText(err))) }

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
