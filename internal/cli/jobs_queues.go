package cli

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// JobsQueuesOptions are the inputs of `refrakt jobs queues`.
type JobsQueuesOptions struct {
	client client

	Queue string // "": every queue
}

// QueueStatsView is one row of `jobs queues -o json`: a queue's gauges and
// totals exactly as GET /api/obs/jobs serves them in its "queues".
type QueueStatsView = queue.Stats

func newJobsQueuesCmd(c client, runF func(context.Context, *JobsQueuesOptions) error) *cobra.Command {
	opts := &JobsQueuesOptions{client: c}
	cmd := &cobra.Command{
		Use:   "queues",
		Short: "List the queues with their depth, oldest pending job, pause and totals",
		Long: "List every queue, by name: its jobs pending, running, scheduled, awaiting a retry and dead,\n" +
			"the age of its oldest pending job (- when none is pending), whether it is paused, and its\n" +
			"totals of jobs enqueued, succeeded and failed since it was made. --queue Q shows Q alone;\n" +
			"an unknown Q exits 1 (not found). Over a daemon it reads GET /api/obs/jobs, so an\n" +
			"operator token is enough; over --redis the same gauges, read by the same code.",
		Example: "  refrakt jobs queues\n" +
			"  refrakt jobs queues --queue emails -o json\n" +
			"  refrakt jobs queues | awk -F'\\t' '$2 > 1000 {print $1}'",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := queueFlag(cmd, opts.Queue, "every queue"); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return jobsQueuesRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Queue, "queue", "", "only this queue")
	return cmd
}

func jobsQueuesRun(ctx context.Context, o *JobsQueuesOptions) error {
	return o.client.do(ctx, func(d Driver, p *Printer) error {
		stats, err := d.QueueStats(ctx)
		if err != nil {
			return err
		}
		stats, err = pickQueues(stats, o.Queue)
		if err != nil {
			return err
		}
		return printQueues(p, stats)
	})
}

// pickQueues sorts stats by queue name and, when q is given, keeps q
// alone: an error not_found, as pause and remove-queue say it, when no
// queue has that name.
func pickQueues(stats []queue.Stats, q string) ([]queue.Stats, error) {
	stats = slices.Clone(stats)
	slices.SortFunc(stats, func(a, b queue.Stats) int { return strings.Compare(a.Queue, b.Queue) })
	if q == "" {
		return stats, nil
	}
	i := slices.IndexFunc(stats, func(s queue.Stats) bool { return s.Queue == q })
	if i < 0 {
		return nil, queue.QueueNotFoundError(q)
	}
	return stats[i : i+1], nil
}

// queueColumns are the columns of `jobs queues`.
var queueColumns = []string{"queue", "pending", "running", "scheduled", "retry", "dead", "oldest", "paused",
	"enqueued", "succeeded", "failed"}

// printQueues shows the queues: a table on a terminal ("No queues." when
// there is none), tab-separated rows when piped (the oldest pending age in
// whole seconds, empty when none is pending; paused "yes" or empty), and
// the API's queue objects with -o json.
func printQueues(p *Printer, stats []queue.Stats) error {
	if p.JSON {
		return p.PrintJSON(orEmpty(stats))
	}
	if len(stats) == 0 {
		return p.printNone("queues")
	}
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	rows := make([][]string, len(stats))
	for i, s := range stats {
		var paused string
		if s.Paused {
			paused = "yes"
		}
		rows[i] = []string{s.Queue, n(s.Pending), n(s.Running), n(s.Scheduled), n(s.Retry), n(s.Dead),
			p.oldestCell(s), paused, n(s.Enqueued), n(s.Succeeded), n(s.Failed)}
	}
	return p.Table(queueColumns, rows)
}

// oldestCell is the age of a queue's oldest pending job: "3m4s" on a
// terminal, whole seconds when piped; "-" and empty when none is pending.
// It is read from the seconds the API serves (the JSON carries no
// time.Duration), so both drivers print the same.
func (p *Printer) oldestCell(s queue.Stats) string {
	if s.Pending == 0 {
		if p.TTY {
			return "-"
		}
		return ""
	}
	return p.ageCell(s.OldestPendingSec)
}
