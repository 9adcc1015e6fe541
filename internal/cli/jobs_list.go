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
	Offset int // skip this many of the listing: the next page
}

func newJobsListCmd(c client, runF func(context.Context, *JobsListOptions) error) *cobra.Command {
	opts := &JobsListOptions{client: c}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs",
		Long: "List jobs, most recently enqueued first; with --status, in the order that status\n" +
			"keeps them (pending: the order they will run; finished: latest first).\n" +
			"--offset N skips the listing's first N jobs, for the next page: it pages one\n" +
			"queue's jobs of one status (give --queue and --status). Pages follow each other\n" +
			"exactly while none of their jobs moves; a job that starts, finishes or is\n" +
			"enqueued between two pages shifts the next one.",
		Example: "  refrakt jobs list\n" +
			"  refrakt jobs list --status dead --queue default\n" +
			"  refrakt jobs list --limit 500 -o json | jq -r '.[].id'\n" +
			"  refrakt jobs list --queue default --status pending --limit 1000 --offset 1000",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("limit") && (opts.Limit < 1 || opts.Limit > queue.MaxListLimit) {
				return usageError{fmt.Errorf("--limit must be between 1 and %d, got %d", queue.MaxListLimit, opts.Limit)}
			}
			if opts.Offset < 0 {
				return usageError{fmt.Errorf("--offset must be 0 or more, got %d", opts.Offset)}
			}
			if limit := cmp.Or(opts.Limit, queue.DefaultListLimit); opts.Offset > queue.MaxListDepth-limit {
				return usageError{fmt.Errorf("--offset plus --limit must be at most %d, got %d and %d", queue.MaxListDepth, opts.Offset, limit)}
			}
			if opts.Offset > 0 && (opts.Queue == "" || opts.Status == "") {
				return usageError{fmt.Errorf("--offset: %s (--queue and --status)", queue.PageNeedsQueueAndStatus)}
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
	fl.IntVar(&opts.Offset, "offset", 0, fmt.Sprintf("skip the listing's first N jobs: the next page (--offset plus --limit at most %d)", queue.MaxListDepth))
	_ = cmd.RegisterFlagCompletionFunc("status", completeStatuses)
	return cmd
}

func jobsListRun(ctx context.Context, o *JobsListOptions) error {
	return o.client.do(ctx, func(d Driver, p *Printer) error {
		jobs, err := d.ListJobs(ctx, queue.Filter{Queue: o.Queue, Status: queue.Status(o.Status), Limit: o.Limit, Offset: o.Offset})
		if err != nil {
			return err
		}
		return printJobList(p, jobs, o.Offset, cmp.Or(o.Limit, queue.DefaultListLimit), o.Queue != "" && o.Status != "")
	})
}

// printJobList prints a page of a listing, from offset, cut at limit. A
// full page on a terminal ends with a line saying that more may match (a
// table of exactly 50 rows read as all there is) and how to see it: the
// next page's --offset, while it lies within queue.MaxListDepth, for a
// listing that can be paged (one queue and one status).
func printJobList(p *Printer, jobs []*queue.Job, offset, limit int, pageable bool) error {
	if err := printJobs(p, jobs); err != nil {
		return err
	}
	if !p.TTY || p.JSON || len(jobs) < limit {
		return nil
	}
	next := offset + len(jobs)
	var more string
	switch {
	case !pageable && limit < queue.MaxListLimit:
		more = fmt.Sprintf("--limit up to %d shows more; with --queue and --status, --offset pages it", queue.MaxListLimit)
	case !pageable:
		more = "narrow it with --queue and --status, which --offset then pages"
	case next+limit > queue.MaxListDepth:
		more = fmt.Sprintf("--offset plus --limit goes up to %d", queue.MaxListDepth)
	case limit < queue.MaxListLimit:
		more = fmt.Sprintf("--limit up to %d shows more, --offset %d the next page", queue.MaxListLimit, next)
	default:
		more = fmt.Sprintf("--offset %d shows the next page", next)
	}
	_, err := fmt.Fprintf(p.Out, "%d shown, the limit; more may match: %s\n", len(jobs), more)
	return err
}
