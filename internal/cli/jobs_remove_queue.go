package cli

import (
	"context"

	"github.com/spf13/cobra"
)

// JobsRemoveQueueOptions are the inputs of `refrakt jobs remove-queue`.
type JobsRemoveQueueOptions struct {
	client client

	Queue string
}

// RemovedQueueView is what `jobs remove-queue -o json` prints.
type RemovedQueueView struct {
	Queue       string `json:"queue"`
	RemovedJobs int    `json:"removed_jobs"`
}

func newJobsRemoveQueueCmd(c client, runF func(context.Context, *JobsRemoveQueueOptions) error) *cobra.Command {
	opts := &JobsRemoveQueueOptions{client: c}
	cmd := &cobra.Command{
		Use:   "remove-queue QUEUE",
		Short: "Remove a queue that has no job left to run",
		Long: "Remove QUEUE with its finished jobs (succeeded, cancelled and dead) and its totals, so it\n" +
			"no longer counts against QUEUE_MAX_QUEUES and its name is free. A queue that still holds a\n" +
			"job to run (pending, scheduled, awaiting a retry, or running) exits 1 (conflict), naming\n" +
			"them: cancel them or let them finish first. An unknown queue exits 1 (not found).",
		Example: "  refrakt jobs remove-queue junk\n" +
			"  refrakt jobs remove-queue junk -o json",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Queue = args[0]
			if err := checkQueueName(opts.Queue); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return jobsRemoveQueueRun(cmd.Context(), opts)
		},
	}
	return cmd
}

func jobsRemoveQueueRun(ctx context.Context, o *JobsRemoveQueueOptions) error {
	return o.client.do(ctx, func(d Driver, p *Printer) error {
		n, err := d.RemoveQueue(ctx, o.Queue)
		if err != nil {
			return err
		}
		return printDone(p, RemovedQueueView{Queue: o.Queue, RemovedJobs: n},
			"Removed queue %s and its %d finished job(s).", o.Queue, n)
	})
}
