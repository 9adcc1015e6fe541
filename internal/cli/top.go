package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/cli/top"
	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core"
)

// TopOptions are the inputs of `refrakt top`.
type TopOptions struct {
	IO     IOStreams
	Getenv func(string) string
	Conn   ConnOptions
	// Interval is the time between refreshes, at least top.MinInterval.
	Interval time.Duration
	// TTY is whether IO.Out is a terminal (or the Factory forces one).
	TTY bool
	// InTTY is whether IO.In is a terminal (or the Factory forces one):
	// the keys come from it.
	InTTY bool
}

// terminalEnv are the variables the terminal program reads to pick its
// colour profile and output mode; `top` hands them over from Getenv
// rather than letting the library read the process environment.
var terminalEnv = []string{
	"TERM", "TERM_PROGRAM", "COLORTERM", "NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE",
	"TTY_FORCE", "TMUX", "SSH_TTY", "WT_SESSION", "GOOGLE_CLOUD_SHELL",
}

func newTopCmd(f *Factory, runF func(context.Context, *TopOptions) error) *cobra.Command {
	opts := &TopOptions{IO: f.IO, Getenv: f.Getenv}
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Watch queues, dead jobs, rate limit buckets and overrides live",
		Long: "Show a live view of a refrakt deployment, refreshed every --interval: the daemon's\n" +
			"health, each queue's gauges and rates with sparklines, the newest dead jobs, the\n" +
			"busiest rate limit buckets and the overrides. It keeps running while the daemon is\n" +
			"down and says so. With --redis it reads Redis directly: no daemon, so no uptime,\n" +
			"readiness or workers. Keys: tab pane, ↑/↓ or j/k move, s sort, / filter, p pause,\n" +
			"r refresh, ? help, q quit; with a developer token x resets the selected bucket, R\n" +
			"requeues the selected dead job and A every dead job of its queue, each after a\n" +
			"confirmation.",
		Example: "  refrakt top\n" +
			"  refrakt top --interval 250ms\n" +
			"  refrakt top --redis redis://127.0.0.1:6379/0\n" +
			"  REFRAKT_SERVER=http://10.0.0.7:8080 REFRAKT_TOKEN=… refrakt top",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.Conn.resolve(f.Getenv); err != nil {
				return err
			}
			opts.Conn.warnExposed(f.IO.ErrOut)
			if opts.Interval < top.MinInterval {
				return usageError{fmt.Errorf("--interval %s: must be at least %s", opts.Interval, top.MinInterval)}
			}
			if opts.Conn.Output != "" {
				return usageError{errors.New("--output: top draws a screen; use `refrakt jobs list` or `refrakt limits get` for tables and JSON")}
			}
			opts.TTY = f.ForceTTY || isTerminal(f.IO.Out)
			opts.InTTY = f.ForceTTY || isTerminal(f.IO.In)
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return topRun(cmd.Context(), opts)
		},
	}
	addConnFlags(cmd, &opts.Conn)
	// top draws a screen: -o is refused (above) and not offered in its help.
	_ = cmd.PersistentFlags().MarkHidden("output")
	cmd.Flags().DurationVar(&opts.Interval, "interval", top.DefaultInterval,
		fmt.Sprintf("time between refreshes (at least %s)", top.MinInterval))
	return cmd
}

func topRun(ctx context.Context, opts *TopOptions) error {
	if !opts.TTY {
		return usageError{errors.New("top needs a terminal: its output is not one")}
	}
	if !opts.InTTY {
		return usageError{errors.New("top needs a terminal: its input is not one")}
	}
	// The header shows the source's name on every frame: a password in
	// the URL must not stay on screen, in scrollback or in a recording.
	api := opts.Conn.apiClient()
	var src top.Source = apiTopSource{top.NewHTTPSource(config.RedactURL(opts.Conn.Server), api), newAPIDriver(api)}
	if opts.Conn.Redis != "" {
		rs, err := newRedisTopSource(ctx, opts.Conn.Redis, opts.Conn.Prefix, opts.Getenv)
		if err != nil {
			return err
		}
		defer rs.Close()
		src = rs
	}
	var environ []string
	for _, k := range terminalEnv {
		if v := opts.Getenv(k); v != "" {
			environ = append(environ, k+"="+v)
		}
	}
	err := top.Run(ctx, src, top.Options{Interval: opts.Interval, NoColor: opts.Conn.NoColor},
		opts.IO.In, opts.IO.Out, environ)
	if ctx.Err() != nil {
		// Interrupted from outside (SIGINT, SIGTERM): a normal way to stop.
		return nil
	}
	return err
}

// apiTopSource is `top`'s source of a daemon: a top.HTTPSource, whose
// requeue of a queue's dead jobs goes through the API driver, so that it
// requeues as `refrakt jobs requeue --queue Q --all-dead` does.
type apiTopSource struct {
	*top.HTTPSource
	d *apiDriver
}

var (
	_ top.DeadRequeuer = apiTopSource{}
	_ top.QueuePauser  = apiTopSource{}
	_ top.BucketBanner = apiTopSource{}
)

// BanBucket bans key for d through the daemon, as `refrakt limits ban`
// does; an earlier daemon's 404 is said in words that fit top's status
// line.
func (s apiTopSource) BanBucket(ctx context.Context, key string, d time.Duration) error {
	_, err := s.d.BanKey(ctx, key, d)
	return tooOldForTop(err)
}

// SetQueuePaused pauses or resumes queue q through the daemon, as `refrakt
// jobs pause` and `resume` do; an earlier daemon's 404 is said in words
// that fit top's status line.
func (s apiTopSource) SetQueuePaused(ctx context.Context, q string, paused bool) (bool, error) {
	r, err := s.d.SetPaused(ctx, q, paused)
	return r.Changed, tooOldForTop(err)
}

// RequeueAllDead requeues every dead job of queue q through the daemon. A
// daemon of an earlier version, without the route, is said in words that
// fit top's status line.
func (s apiTopSource) RequeueAllDead(ctx context.Context, q string) (int, error) {
	v, err := requeueEveryDead(ctx, s.d, q)
	return v.Requeued, tooOldForTop(err)
}

// tooOldForTop says a daemon's 404 for a route it predates
// (earlierDaemonError) in words that fit top's status line; any other
// error is returned as it is.
func tooOldForTop(err error) error {
	if errors.As(err, new(earlierDaemonError)) {
		return core.Errorf(core.CodeNotFound, "the daemon is too old for it: upgrade it, or use top --redis")
	}
	return err
}
