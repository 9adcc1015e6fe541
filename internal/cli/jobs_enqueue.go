package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// JobsEnqueueOptions are the inputs of `refrakt jobs enqueue`.
type JobsEnqueueOptions struct {
	client client

	Type string
	// Payload is JSON, "@file" to read it from a file, or "@-" for stdin.
	Payload    string
	Queue      string
	MaxRetries *int // nil: the queue's default
	Interval   time.Duration
	Delay      time.Duration
}

func newJobsEnqueueCmd(c client, runF func(context.Context, *JobsEnqueueOptions) error) *cobra.Command {
	opts := &JobsEnqueueOptions{client: c}
	var maxRetries int
	cmd := &cobra.Command{
		Use:   "enqueue TYPE",
		Short: "Enqueue a job",
		Long: "Enqueue a job of TYPE (built in: ping, echo, sleep, fail) with source \"cli\".\n" +
			"An unknown type or a payload the type refuses exits 2 and stores nothing.\n" +
			"When piped, prints only the new job's id.",
		Example: "  refrakt jobs enqueue ping\n" +
			"  refrakt jobs enqueue sleep --payload '{\"ms\":250}' --queue slow\n" +
			"  refrakt jobs enqueue echo --payload @body.json --max-retries 0\n" +
			"  refrakt jobs enqueue ping --interval 1m --delay 10s\n" +
			"  id=$(refrakt jobs enqueue ping) && refrakt jobs get \"$id\"",
		Args: cobra.ExactArgs(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return queue.NewRegistry().Types(), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Type = args[0]
			if cmd.Flags().Changed("max-retries") {
				opts.MaxRetries = &maxRetries
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return jobsEnqueueRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Payload, "payload", "", "the job's payload: JSON, @FILE, or @- for stdin")
	fl.StringVar(&opts.Queue, "queue", "", "queue name (default \"default\")")
	fl.IntVar(&maxRetries, "max-retries", 0, "retries after a failure before the job is dead (default 3)")
	fl.DurationVar(&opts.Interval, "interval", 0, "run again this long after each success (whole seconds)")
	fl.DurationVar(&opts.Delay, "delay", 0, "schedule the first run this much later")
	return cmd
}

// request validates the flags and builds the enqueue request.
func (o *JobsEnqueueOptions) request(stdin io.Reader) (queue.EnqueueRequest, error) {
	req := queue.EnqueueRequest{Type: o.Type, Queue: o.Queue, MaxRetries: o.MaxRetries}
	if o.Payload != "" {
		raw := []byte(o.Payload)
		if name, ok := strings.CutPrefix(o.Payload, "@"); ok {
			var err error
			if name == "-" {
				raw, err = io.ReadAll(stdin)
			} else {
				raw, err = os.ReadFile(name)
			}
			if err != nil {
				return req, usageError{fmt.Errorf("--payload: %v", err)}
			}
		}
		if !json.Valid(raw) {
			var v any
			err := json.Unmarshal(raw, &v)
			return req, usageError{fmt.Errorf("--payload is not valid JSON: %v", err)}
		}
		req.Payload = json.RawMessage(strings.TrimSpace(string(raw)))
	}
	if o.MaxRetries != nil && *o.MaxRetries < 0 {
		return req, usageError{fmt.Errorf("--max-retries must not be negative, got %d", *o.MaxRetries)}
	}
	if o.Interval < 0 || o.Interval%time.Second != 0 {
		return req, usageError{fmt.Errorf("--interval must be a whole number of seconds, at least 0, got %s", o.Interval)}
	}
	if o.Delay < 0 {
		return req, usageError{fmt.Errorf("--delay must not be negative, got %s", o.Delay)}
	}
	req.IntervalSeconds = int(o.Interval / time.Second)
	req.DelayMS = o.Delay.Milliseconds()
	return req, nil
}

func jobsEnqueueRun(ctx context.Context, o *JobsEnqueueOptions) error {
	req, err := o.request(o.client.f.IO.In)
	if err != nil {
		return err
	}
	return o.client.do(ctx, func(d Driver, p *Printer) error {
		j, err := d.Enqueue(ctx, req)
		if err != nil {
			return err
		}
		return printEnqueued(p, j)
	})
}
