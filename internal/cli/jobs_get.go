package cli

import (
	"context"

	"github.com/spf13/cobra"
)

// JobsGetOptions are the inputs of `refrakt jobs get`.
type JobsGetOptions struct {
	client client

	ID string
}

func newJobsGetCmd(c client, runF func(context.Context, *JobsGetOptions) error) *cobra.Command {
	opts := &JobsGetOptions{client: c}
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show one job",
		Long:  "Show one job: its status, attempts, payload, result and last error. An unknown id exits 1.",
		Example: "  refrakt jobs get 3q2-Wc8nTGeYb0y1Q3h0Ag\n" +
			"  refrakt jobs get 3q2-Wc8nTGeYb0y1Q3h0Ag -o json | jq .result",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeJobIDs(c),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return jobsGetRun(cmd.Context(), opts)
		},
	}
	acceptDashIDs(cmd)
	return cmd
}

func jobsGetRun(ctx context.Context, o *JobsGetOptions) error {
	return o.client.do(ctx, func(d Driver, p *Printer) error {
		j, err := d.GetJob(ctx, o.ID)
		if err != nil {
			return err
		}
		return printJob(p, j)
	})
}
