package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/cli/top"
	"github.com/refrakt/refrakt/internal/core/queue"
)

// JobsPauseOptions are the inputs of `refrakt jobs pause` and
// `refrakt jobs resume`.
type JobsPauseOptions struct {
	client client

	Queue  string
	Paused bool // pause (true) or resume
}

// PausedQueueView is what `jobs pause -o json` and `jobs resume -o json`
// print: the daemon's answer, the same over Redis.
type PausedQueueView = queue.PauseResult

func newJobsPauseCmd(c client, runF func(context.Context, *JobsPauseOptions) error) *cobra.Command {
	return newSetPausedCmd(c, true, runF, &cobra.Command{
		Use:   "pause QUEUE",
		Short: "Stop the workers from starting a queue's jobs, until resumed",
		Long: "Pause QUEUE: no worker of any daemon starts its jobs (nor does `jobs run --next`) until\n" +
			"`refrakt jobs resume QUEUE`. Nothing is lost or refused: enqueues still go in (admission\n" +
			"control refuses POST /run by its usual bounds as the backlog grows), due scheduled jobs and\n" +
			"retries still become pending, running jobs finish, and `jobs run ID` still runs a job by\n" +
			"id. The pause is kept in the backend, for every daemon, until resumed. Pausing a paused\n" +
			"queue is no error. An unknown queue exits 1 (not found).",
		Example: "  refrakt jobs pause emails\n" +
			"  refrakt jobs pause emails -o json",
	})
}

func newJobsResumeCmd(c client, runF func(context.Context, *JobsPauseOptions) error) *cobra.Command {
	return newSetPausedCmd(c, false, runF, &cobra.Command{
		Use:   "resume QUEUE",
		Short: "Let the workers start a paused queue's jobs again",
		Long: "Resume QUEUE, paused by `refrakt jobs pause`: the workers start its pending jobs at once,\n" +
			"oldest first. Resuming a queue that is not paused is no error. An unknown queue exits 1\n" +
			"(not found).",
		Example: "  refrakt jobs resume emails\n" +
			"  refrakt --redis redis://127.0.0.1:6379/0 jobs resume emails",
	})
}

// newSetPausedCmd completes cmd, pause's or resume's, with what they share.
func newSetPausedCmd(c client, paused bool, runF func(context.Context, *JobsPauseOptions) error, cmd *cobra.Command) *cobra.Command {
	opts := &JobsPauseOptions{client: c, Paused: paused}
	cmd.Args = cobra.ExactArgs(1)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		opts.Queue = args[0]
		if err := checkQueueName(opts.Queue); err != nil {
			return err
		}
		if runF != nil {
			return runF(cmd.Context(), opts)
		}
		return jobsSetPausedRun(cmd.Context(), opts)
	}
	return cmd
}

func jobsSetPausedRun(ctx context.Context, o *JobsPauseOptions) error {
	return o.client.do(ctx, func(d Driver, p *Printer) error {
		r, err := d.SetPaused(ctx, o.Queue, o.Paused)
		if err != nil {
			return err
		}
		if p.JSON {
			return p.PrintJSON(r)
		}
		// On a terminal and piped alike: a script may read it.
		return p.Printf("%s\n", top.PausedQueue(r.Queue, r.Paused, r.Changed))
	})
}
