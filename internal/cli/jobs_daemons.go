package cli

import (
	"context"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/core/presence"
	"github.com/refrakt/refrakt/internal/core/queue"
)

// JobsDaemonsOptions are the inputs of `refrakt jobs daemons`.
type JobsDaemonsOptions struct {
	client client
}

// newJobsDaemonsCmd is `refrakt jobs daemons`. It lives under jobs, not
// beside it: the question it answers is who works the queues (workers,
// busy, stopping), and jobs already carries the connection to a daemon or
// to Redis (--server, --redis) that it needs.
func newJobsDaemonsCmd(c client, runF func(context.Context, *JobsDaemonsOptions) error) *cobra.Command {
	opts := &JobsDaemonsOptions{client: c}
	cmd := &cobra.Command{
		Use:   "daemons",
		Short: "List the daemons alive, with their version, status, workers and busy workers",
		Long: "List the daemons alive on the backend, from the heartbeat each writes every 5 s: its id\n" +
			"(host:pid:random), host, pid, version, status (running, or stopping once its stop began), time\n" +
			"since it started (UP), since its last heartbeat (SEEN), WORKER_CONCURRENCY (WORKERS, 0 in manual\n" +
			"mode) and the handlers running now (BUSY); when some daemon works a set of queues (WORKER_QUEUES),\n" +
			"a last column QUEUES gives each daemon's set and order (all: every queue). A daemon stopped gracefully leaves the list at once;\n" +
			"a killed one within 15 s. Daemons of versions before heartbeats are not listed. Over a daemon\n" +
			"it reads GET /api/obs/daemons (an operator token is enough); over --redis the same records.",
		Example: "  refrakt jobs daemons\n" +
			"  refrakt --redis redis://127.0.0.1:6379/0 jobs daemons -o json\n" +
			"  refrakt jobs daemons | awk -F'\\t' '$5 == \"stopping\" {print $1}'",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return jobsDaemonsRun(cmd.Context(), opts)
		},
	}
	return cmd
}

func jobsDaemonsRun(ctx context.Context, o *JobsDaemonsOptions) error {
	return o.client.do(ctx, func(d Driver, p *Printer) error {
		l, err := d.Daemons(ctx)
		if err != nil {
			return err
		}
		return printDaemons(p, l)
	})
}

// daemonColumns are the columns of `jobs daemons`.
var daemonColumns = []string{"id", "host", "pid", "version", "status", "up", "seen", "workers", "busy"}

// printDaemons shows the daemons: a table on a terminal ("No daemons."
// when none is listed), tab-separated rows when piped (UP and SEEN in whole
// seconds), and the API's answer with -o json.
func printDaemons(p *Printer, l presence.List) error {
	if p.JSON {
		l.Daemons = orEmpty(l.Daemons)
		return p.PrintJSON(l)
	}
	if len(l.Daemons) == 0 {
		return p.printNone("daemons")
	}
	// QUEUES, last, only when some daemon works a set of queues
	// (WORKER_QUEUES): the rows of daemons that all work every queue stay
	// as they were, for the scripts that read them.
	columns := daemonColumns
	if slices.ContainsFunc(l.Daemons, func(d presence.Daemon) bool { return len(d.Queues) > 0 }) {
		columns = append(slices.Clip(columns), "queues")
	}
	rows := make([][]string, len(l.Daemons))
	for i, d := range l.Daemons {
		rows[i] = []string{d.ID, d.Host, strconv.Itoa(d.PID), d.Version, d.Status, p.ageCell(d.UpSeconds), p.ageCell(d.SeenSeconds),
			strconv.Itoa(d.Workers), strconv.FormatInt(d.Busy, 10)}
		if len(columns) > len(daemonColumns) {
			rows[i] = append(rows[i], queuesCell(d.Record))
		}
	}
	return p.Table(columns, rows)
}

// queuesCell is a daemon's QUEUES: its WORKER_QUEUES and, with more than
// one queue, its order ("critical,default,low (strict)"); "all" for a
// daemon that works every queue (or of a release before WORKER_QUEUES).
func queuesCell(r presence.Record) string {
	s := queue.FormatWorkerQueues(r.Queues)
	if len(r.Queues) > 1 && r.QueueOrder != "" {
		s += " (" + r.QueueOrder + ")"
	}
	return s
}
