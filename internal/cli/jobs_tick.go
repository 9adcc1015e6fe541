package cli

import (
	"context"

	"github.com/spf13/cobra"
)

// JobsTickOptions are the inputs of `refrakt jobs tick`.
type JobsTickOptions struct {
	client client
}

func newJobsTickCmd(c client, runF func(context.Context, *JobsTickOptions) error) *cobra.Command {
	opts := &JobsTickOptions{client: c}
	cmd := &cobra.Command{
		Use:   "tick",
		Short: "Promote due jobs and recover expired leases now",
		Long: "Do one tick of the queue now, in every queue: due scheduled jobs and failed jobs whose\n" +
			"retry is due become pending; running jobs whose lease expired go back to pending (or\n" +
			"dead on their last retry: named on a terminal and in -o json's dead_jobs). Daemons do\n" +
			"this every TICK_INTERVAL; in manual mode it is yours.",
		Example: "  refrakt jobs tick\n" +
			"  refrakt jobs tick -o json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return jobsTickRun(cmd.Context(), opts)
		},
	}
	return cmd
}

func jobsTickRun(ctx context.Context, o *JobsTickOptions) error {
	return o.client.do(ctx, func(d Driver, p *Printer) error {
		r, err := d.Tick(ctx)
		if err != nil {
			// Jobs the tick made dead before it failed are named all
			// the same (over --redis, nothing else records them).
			if len(r.Dead) > 0 {
				_ = printTick(p, r)
			}
			return err
		}
		return printTick(p, r)
	})
}
