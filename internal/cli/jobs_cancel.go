package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// JobsCancelOptions are the inputs of `refrakt jobs cancel`.
type JobsCancelOptions struct {
	client client

	ID string
}

func newJobsCancelCmd(c client, runF func(context.Context, *JobsCancelOptions) error) *cobra.Command {
	opts := &JobsCancelOptions{client: c}
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a job that has not finished",
		Long: "Cancel a scheduled, pending, failed or running job. A running job is stopped at once\n" +
			"when cancelled through the daemon that runs it, else at its runner's next lease renewal\n" +
			"(within a third of JOB_LEASE), and its result is dropped. A finished job exits 1 (conflict).",
		Example:           "  refrakt jobs cancel 3q2-Wc8nTGeYb0y1Q3h0Ag",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeJobIDs(c, queue.StatusPending, queue.StatusScheduled, queue.StatusFailed, queue.StatusRunning),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return jobsCancelRun(cmd.Context(), opts)
		},
	}
	acceptDashIDs(cmd)
	return cmd
}

func jobsCancelRun(ctx context.Context, o *JobsCancelOptions) error {
	return o.client.do(ctx, func(d Driver, p *Printer) error {
		j, err := d.CancelJob(ctx, o.ID)
		if err != nil {
			return err
		}
		return printJob(p, j)
	})
}
