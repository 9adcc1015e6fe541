package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/daemon"
)

// ServeOptions are the inputs of `refrakt serve`.
type ServeOptions struct {
	IO     IOStreams
	Getenv func(string) string
	// Flags holds the flags given on the command line, by name.
	Flags map[string]string
}

// rawFlag keeps a flag's text so config.Load parses flags and environment
// variables with the same rules and errors.
type rawFlag struct {
	value string
	kind  string // the setting's Kind, shown in the help
}

func (f *rawFlag) String() string     { return f.value }
func (f *rawFlag) Set(v string) error { f.value = v; return nil }
func (f *rawFlag) Type() string {
	if f.kind == "" {
		return "string"
	}
	return f.kind
}
func (f *rawFlag) IsBoolFlag() bool { return f.kind == "bool" }

func newServeCmd(f *Factory, runF func(context.Context, *ServeOptions) error) *cobra.Command {
	opts := &ServeOptions{IO: f.IO, Getenv: f.Getenv}
	settings := config.Settings()
	var help strings.Builder
	help.WriteString("Run the refrakt daemon: the HTTP API, rate limits, admission control, the job\nqueue's workers and metrics. Every setting is a flag and an environment variable;\na flag wins over its variable, a variable over the default. A flag is in the\ncommand line, which ps shows to every user of the machine: give a Redis URL with\na password and the tokens as env vars (QUEUE_URL, REFRAKT_DEVELOPER_TOKEN,\nREFRAKT_OPERATOR_TOKEN, PROMETHEUS_BEARER_TOKEN); serve warns of such a flag.\n\nSettings (flag, env var, default):\n")
	for _, s := range settings {
		def := s.Default
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(&help, "  --%-34s %-32s %s\n", s.Flag, s.Env, def)
	}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the refrakt daemon",
		Long:  help.String(),
		Example: "  refrakt serve\n" +
			"  refrakt serve --addr 127.0.0.1:0 --workers 8\n" +
			"  QUEUE_URL=redis://127.0.0.1:6379/0 refrakt serve",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Flags = map[string]string{}
			cmd.Flags().Visit(func(fl *pflag.Flag) { opts.Flags[fl.Name] = fl.Value.String() })
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return serveRun(cmd.Context(), opts)
		},
	}
	for _, s := range settings {
		fl := cmd.Flags().VarPF(&rawFlag{kind: s.Kind}, s.Flag, "", fmt.Sprintf("%s (env %s, default %s)", s.Usage, s.Env, orQuotes(s.Default)))
		if s.Kind == "bool" {
			fl.NoOptDefVal = "true"
		}
	}
	return cmd
}

func orQuotes(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

func serveRun(ctx context.Context, opts *ServeOptions) error {
	cfg, err := config.Load(opts.Getenv, opts.Flags)
	if err != nil {
		return err
	}
	log := newLogger(opts.IO.ErrOut, cfg)
	warnSecretFlags(log, opts.Flags)
	// A daemon whose log reader went away (`serve | head`, a log shipper
	// restarting) would be killed by SIGPIPE at its next line, with no
	// graceful stop: its writes fail instead.
	signal.Ignore(syscall.SIGPIPE)
	done := make(chan struct{})
	defer close(done)
	err = daemon.Run(ctx, cfg, daemon.RunOptions{Logger: log, Getenv: opts.Getenv, Environ: os.Environ, Forced: secondSignal(done)})
	if err != nil && cfg.LogFormat == "json" {
		// A log shipper reading JSON lines would drop or mangle Run's
		// plain "refrakt: …" line, the one that says why the daemon
		// stopped: it is the log's last record instead.
		log.Error("serve failed", "err", errorLine(err), "exit_code", exitCode(err))
		return loggedError{err}
	}
	return err
}

// warnSecretFlags logs a warning for each flag of flags (by name, as given
// on the command line) that carries a secret: a flag is in the command
// line, which ps shows to every user of the machine (sec31 NIT 6). It
// names the flag and its variable, never the value.
func warnSecretFlags(log *slog.Logger, flags map[string]string) {
	for _, s := range config.Settings() {
		if v, ok := flags[s.Flag]; ok && s.CarriesSecret(v) {
			log.Warn("a flag carries a secret, which other users of this machine see in ps; prefer its environment variable",
				"flag", "--"+s.Flag, "env", s.Env)
		}
	}
}

// StopSignals are the signals that end a command (main's context) and stop
// a daemon gracefully: SIGINT, SIGTERM, and SIGHUP (a terminal or an ssh
// session closing) unless the process started with it ignored (`nohup
// refrakt serve &`, a supervisor): watching a signal undoes its being
// ignored, and such a daemon must outlive its terminal.
func StopSignals() []os.Signal {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	return sigs
}

// secondSignal returns a channel closed when a second stop signal comes
// (one of StopSignals: the first ended the command's context), until done
// is closed.
func secondSignal(done <-chan struct{}) <-chan struct{} {
	forced := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, StopSignals()...)
	go func() {
		defer signal.Stop(sigs)
		for n := 0; ; {
			select {
			case <-sigs:
				if n++; n == 2 {
					close(forced)
					return
				}
			case <-done:
				return
			}
		}
	}()
	return forced
}

// newLogger builds the daemon's structured logger on w.
func newLogger(w io.Writer, cfg config.Config) *slog.Logger {
	level, _ := config.ParseLevel(cfg.LogLevel)
	hopts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, hopts))
	}
	return slog.New(slog.NewTextHandler(w, hopts))
}
