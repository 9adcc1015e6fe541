package cli

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// JobsRunOptions are the inputs of `refrakt jobs run`.
type JobsRunOptions struct {
	client client

	ID    string
	Next  bool
	Queue string // with Next: only this queue
}

func newJobsRunCmd(c client, runF func(context.Context, *JobsRunOptions) error) *cobra.Command {
	opts := &JobsRunOptions{client: c}
	cmd := &cobra.Command{
		Use:   "run ID | --next [--queue Q]",
		Short: "Run a job now and show it finished",
		Long: "Run one job now and wait for it: job ID (pending, scheduled or failed; whatever its\n" +
			"run_at), or with --next the oldest pending job (of --queue). This is how jobs move in\n" +
			"manual mode (serve --workers 0). Over a daemon the daemon runs it; with --redis this\n" +
			"process runs the handler. A job that fails is still shown (exit 0): see its status.\n" +
			"Nothing pending for --next exits 1.",
		Example: "  refrakt jobs run 3q2-Wc8nTGeYb0y1Q3h0Ag\n" +
			"  refrakt jobs run --next\n" +
			"  refrakt jobs run --next --queue slow -o json",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeJobIDs(c, queue.StatusPending, queue.StatusScheduled, queue.StatusFailed),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.ID = args[0]
			}
			switch {
			case opts.Next && opts.ID != "":
				return usageError{errors.New("give a job ID or --next, not both")}
			case !opts.Next && opts.ID == "":
				return usageError{errors.New("give a job ID or --next")}
			case !opts.Next && cmd.Flags().Changed("queue"):
				return usageError{errors.New("--queue goes with --next")}
			}
			if err := queueFlag(cmd, opts.Queue, "any queue"); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return jobsRunRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Next, "next", false, "run the oldest pending job")
	cmd.Flags().StringVar(&opts.Queue, "queue", "", "with --next: take it from this queue only")
	acceptDashIDs(cmd)
	return cmd
}

func jobsRunRun(ctx context.Context, o *JobsRunOptions) error {
	return o.client.do(ctx, func(d Driver, p *Printer) error {
		var j *queue.Job
		var err error
		if o.Next {
			j, err = d.RunNext(ctx, o.Queue)
		} else {
			j, err = d.RunJob(ctx, o.ID)
		}
		if err != nil {
			return err
		}
		return printJob(p, j)
	})
}
