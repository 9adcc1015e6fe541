package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// newJobsCmd is `refrakt jobs`: the job queue, over a daemon or Redis.
func newJobsCmd(f *Factory) *cobra.Command {
	return newGroupCmd(f, &cobra.Command{
		Use:   "jobs",
		Short: "Enqueue, inspect, run, cancel and requeue jobs; list, pause and remove queues",
		Long: "Work with refrakt's job queue, over a daemon's API (--server, REFRAKT_SERVER, default\n" +
			DefaultServer + ") or straight over Redis (--redis, REFRAKT_REDIS), with the same\n" +
			"results either way. Tables on a terminal, tab-separated rows when piped, -o json for scripts.",
		Example: "  refrakt jobs enqueue ping\n" +
			"  refrakt jobs list --status pending\n" +
			"  refrakt jobs queues\n" +
			"  refrakt --redis redis://127.0.0.1:6379/0 jobs run --next",
	}, func(c client) []*cobra.Command {
		return []*cobra.Command{
			newJobsEnqueueCmd(c, nil),
			newJobsEnqueueBatchCmd(c, nil),
			newJobsListCmd(c, nil),
			newJobsGetCmd(c, nil),
			newJobsRunCmd(c, nil),
			newJobsTickCmd(c, nil),
			newJobsCancelCmd(c, nil),
			newJobsRequeueCmd(c, nil),
			newJobsRemoveQueueCmd(c, nil),
			newJobsPauseCmd(c, nil),
			newJobsResumeCmd(c, nil),
			newJobsQueuesCmd(c, nil),
			newJobsDaemonsCmd(c, nil),
		}
	})
}

// completionTimeout bounds the look-up behind a shell completion, so a
// daemon that is down never hangs the user's shell.
const completionTimeout = 2 * time.Second

// completeJobIDs completes the first argument with the ids of recent jobs in
// one of statuses (any status when none is given), described by type and
// status. It costs one list call; failures complete nothing.
func completeJobIDs(c client, statuses ...queue.Status) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		var out []cobra.Completion
		_ = c.do(ctx, func(d Driver, _ *Printer) error {
			filters := []queue.Filter{{Limit: 100}}
			if len(statuses) > 0 {
				filters = filters[:0]
				for _, s := range statuses {
					filters = append(filters, queue.Filter{Status: s, Limit: 100})
				}
			}
			for _, fl := range filters {
				jobs, err := d.ListJobs(ctx, fl)
				if err != nil {
					return err
				}
				for _, j := range jobs {
					out = append(out, cobra.CompletionWithDesc(j.ID, j.Type+" "+string(j.Status)))
				}
			}
			return nil
		})
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeStatuses completes --status.
func completeStatuses(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	out := make([]cobra.Completion, len(queue.Statuses))
	for i, s := range queue.Statuses {
		out[i] = string(s)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
