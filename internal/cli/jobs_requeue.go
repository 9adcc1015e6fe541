package cli

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/cli/top"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/daemon"
)

// JobsRequeueOptions are the inputs of `refrakt jobs requeue`.
type JobsRequeueOptions struct {
	client client

	ID string
	// AllDead, with Queue, requeues every dead job of Queue instead of ID.
	AllDead bool
	Queue   string
}

// RequeuedDeadView is what `jobs requeue --queue Q --all-dead -o json`
// prints: the API's answer, summed over the calls one run makes, with the
// cut they shared.
type RequeuedDeadView = daemon.RequeuedDead

func newJobsRequeueCmd(c client, runF func(context.Context, *JobsRequeueOptions) error) *cobra.Command {
	opts := &JobsRequeueOptions{client: c}
	cmd := &cobra.Command{
		Use:   "requeue ID | --queue Q --all-dead",
		Short: "Put a dead or cancelled job, or every dead job of a queue, back in line",
		Long: "Move a dead or cancelled job back to pending with its retries reset; its attempt count\n" +
			"is kept. Any other status exits 1 (conflict).\n\n" +
			"With --queue Q --all-dead, move every dead job of queue Q that died before the command\n" +
			"started back to pending the same way, oldest death first, and print how many. A job that\n" +
			"dies again meanwhile is left dead, so the command always ends. An unknown queue exits 1\n" +
			"(not found); a queue with no dead job prints 0. A daemon of an earlier version has no\n" +
			"such route (exit 1): use --redis, or upgrade the daemon.",
		Example: "  refrakt jobs requeue 3q2-Wc8nTGeYb0y1Q3h0Ag\n" +
			"  refrakt jobs requeue --queue emails --all-dead\n" +
			"  refrakt jobs requeue --queue emails --all-dead -o json | jq -r '.ids[]'",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeJobIDs(c, queue.StatusDead, queue.StatusCancelled),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.ID = args[0]
			}
			queueGiven := cmd.Flags().Changed("queue")
			switch {
			case opts.AllDead && opts.ID != "":
				return usageError{errors.New("give a job ID or --queue Q --all-dead, not both")}
			case opts.AllDead && !queueGiven:
				return usageError{errors.New("--all-dead needs --queue Q: the queue whose dead jobs to requeue")}
			case queueGiven && !opts.AllDead:
				return usageError{errors.New("--queue goes with --all-dead (a job ID names its own queue)")}
			case !opts.AllDead && opts.ID == "":
				return usageError{errors.New("give a job ID, or --queue Q --all-dead")}
			}
			if err := queueFlag(cmd, opts.Queue, "no queue"); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return jobsRequeueRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.AllDead, "all-dead", false, "requeue every dead job of --queue")
	cmd.Flags().StringVar(&opts.Queue, "queue", "", "with --all-dead: the queue whose dead jobs to requeue")
	acceptDashIDs(cmd)
	return cmd
}

func jobsRequeueRun(ctx context.Context, o *JobsRequeueOptions) error {
	return o.client.do(ctx, func(d Driver, p *Printer) error {
		if o.AllDead {
			return requeueAllDead(ctx, d, p, o.Queue)
		}
		j, err := d.RequeueJob(ctx, o.ID)
		if err != nil {
			return err
		}
		return printJob(p, j)
	})
}

// requeueAllDead requeues the dead jobs of queue q (requeueEveryDead) and
// says how many in one line, or as JSON.
func requeueAllDead(ctx context.Context, d Driver, p *Printer, q string) error {
	v, err := requeueEveryDead(ctx, d, q)
	if err != nil && len(v.IDs) == 0 {
		return err
	}
	// On an error, what moved stays moved (over --redis, a failing call's
	// moves too; through a daemon, those of the calls before it): say so,
	// above the error line.
	var perr error
	if p.JSON {
		perr = p.PrintJSON(v)
	} else {
		perr = printRequeuedDead(p, v.Requeued, q)
	}
	if err != nil {
		return err
	}
	return perr
}

// requeueEveryDead requeues the dead jobs of queue q, as many calls as it
// takes: the first one's cut (the jobs that died before it) is passed to
// the others, so that a job dying again meanwhile is not taken twice, until
// none that died by then is left (or a call moves none: another client took
// them, or a clock stepped back). It serves `jobs requeue --all-dead` and
// `top`'s A alike. On an error, the view holds the jobs moved before it.
func requeueEveryDead(ctx context.Context, d Driver, q string) (RequeuedDeadView, error) {
	v := RequeuedDeadView{Queue: q, IDs: []string{}}
	var before time.Time
	for {
		r, err := d.RequeueDead(ctx, q, before, queue.MaxRequeueDead)
		v.IDs = append(v.IDs, r.IDs...)
		if !r.Cut.IsZero() {
			before = r.Cut
		}
		v.Requeued, v.Before = len(v.IDs), before.UnixMilli()
		if err != nil {
			return v, err
		}
		v.Remaining = r.Remaining
		if r.Remaining == 0 || len(r.IDs) == 0 {
			return v, nil
		}
	}
}

// printRequeuedDead prints the one line of `jobs requeue --all-dead`, on a
// terminal and piped alike (a script reads the count).
func printRequeuedDead(p *Printer, n int, q string) error {
	return p.Printf("%s\n", top.RequeuedDead(n, q))
}
