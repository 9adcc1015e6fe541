package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// JobsRequeueOptions are the inputs of `refrakt jobs requeue`.
type JobsRequeueOptions struct {
	client client

	ID string
}

func newJobsRequeueCmd(c client, runF func(context.Context, *JobsRequeueOptions) error) *cobra.Command {
	opts := &JobsRequeueOptions{client: c}
	cmd := &cobra.Command{
		Use:   "requeue ID",
		Short: "Put a dead or cancelled job back in line",
		Long: "Move a dead or cancelled job back to pending with its retries reset; its attempt count\n" +
			"is kept. Any other status exits 1 (conflict).",
		Example: "  refrakt jobs requeue 3q2-Wc8nTGeYb0y1Q3h0Ag\n" +
			"  refrakt jobs list --status dead -o json | jq -r '.[].id' | xargs -n1 refrakt jobs requeue",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeJobIDs(c, queue.StatusDead, queue.StatusCancelled),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return jobsRequeueRun(cmd.Context(), opts)
		},
	}
	acceptDashIDs(cmd)
	return cmd
}

func jobsRequeueRun(ctx context.Context, o *JobsRequeueOptions) error {
	return o.client.do(ctx, func(d Driver, p *Printer) error {
		j, err := d.RequeueJob(ctx, o.ID)
		if err != nil {
			return err
		}
		return printJob(p, j)
	})
}
