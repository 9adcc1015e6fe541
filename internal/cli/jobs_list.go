package cli

import (
	"cmp"
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// JobsListOptions are the inputs of `refrakt jobs list`.
type JobsListOptions struct {
	client client

	Status string
	Queue  string
	Limit  int // 0: the server's default (50)
}

func newJobsListCmd(c client, runF func(context.Context, *JobsListOptions) error) *cobra.Command {
	opts := &JobsListOptions{client: c}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs",
		Long: "List jobs, most recently enqueued first; with --status, in the order that status\n" +
			"keeps them (pending: the order they will run; finished: latest first).",
		Example: "  refrakt jobs list\n" +
			"  refrakt jobs list --status dead --queue default\n" +
			"  refrakt jobs list --limit 500 -o json | jq -r '.[].id'",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("limit") && (opts.Limit < 1 || opts.Limit > queue.MaxListLimit) {
				return usageError{fmt.Errorf("--limit must be between 1 and %d, got %d", queue.MaxListLimit, opts.Limit)}
			}
			if opts.Status != "" && !queue.Status(opts.Status).Valid() {
				return usageError{fmt.Errorf("--status %q: want one of %v", opts.Status, queue.Statuses)}
			}
			if err := queueFlag(cmd, opts.Queue, "every queue"); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return jobsListRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Status, "status", "", "only jobs in this status: scheduled, pending, running, succeeded, failed, dead, cancelled")
	fl.StringVar(&opts.Queue, "queue", "", "only jobs of this queue")
	fl.IntVar(&opts.Limit, "limit", 0, fmt.Sprintf("at most this many jobs (default %d, at most %d)", queue.DefaultListLimit, queue.MaxListLimit))
	_ = cmd.RegisterFlagCompletionFunc("status", completeStatuses)
	return cmd
}

func jobsListRun(ctx context.Context, o *JobsListOptions) error {
	return o.client.do(ctx, func(d Driver, p *Printer) error {
		jobs, err := d.ListJobs(ctx, queue.Filter{Queue: o.Queue, Status: queue.Status(o.Status), Limit: o.Limit})
		if err != nil {
			return err
		}
		return printJobList(p, jobs, cmp.Or(o.Limit, queue.DefaultListLimit))
	})
}

// printJobList prints a listing cut at limit. A full listing on a terminal
// ends with a line saying that more may match: a table of exactly 50 rows
// read as all there is.
func printJobList(p *Printer, jobs []*queue.Job, limit int) error {
	if err := printJobs(p, jobs); err != nil {
		return err
	}
	if !p.TTY || p.JSON || len(jobs) < limit {
		return nil
	}
	more := fmt.Sprintf("--limit up to %d shows more", queue.MaxListLimit)
	if limit >= queue.MaxListLimit {
		more = "narrow it with --queue or --status"
	}
	_, err := fmt.Fprintf(p.Out, "%d shown, the limit; more may match: %s\n", len(jobs), more)
	return err
}
