package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/cron"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/daemon"
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
	Timeout    time.Duration // 0: the runner's JOB_TIMEOUT
	// Cron is a calendar schedule ("0 3 * * *"), in Timezone ("": UTC).
	Cron     string
	Timezone string
	// IdempotencyKey makes the enqueue safe to repeat: "" for none.
	IdempotencyKey string
	keyGiven       bool // --idempotency-key given, if empty
}

func newJobsEnqueueCmd(c client, runF func(context.Context, *JobsEnqueueOptions) error) *cobra.Command {
	opts := &JobsEnqueueOptions{client: c}
	var maxRetries int
	cmd := &cobra.Command{
		Use:   "enqueue TYPE",
		Short: "Enqueue a job",
		Long: "Enqueue a job of TYPE (built in: ping, echo, sleep, fail) with source \"cli\".\n" +
			"fail always fails; with --payload '{\"retry\":false}' it fails not to be retried: dead at once.\n" +
			"An unknown type or a payload the type refuses exits 2 and stores nothing, as does a\n" +
			"payload too large for the API (its request must be at most 1 MiB), over either driver.\n" +
			"A --payload with no JSON in it (empty, blank, or an empty @FILE or @-) exits 2:\n" +
			"leave --payload out for a job without a payload.\n" +
			"When piped, prints only the new job's id.\n" +
			"With --idempotency-key K, running the same command again (within JOB_IDEMPOTENCY_TTL:\n" +
			"the daemon's, or over --redis this shell's) enqueues nothing: it says that the key's job already existed and\n" +
			"prints that job (exit 0); the key with another type, payload, queue or option exits 1.\n" +
			"With --cron, the job runs on a calendar: at the first time the expression names after now\n" +
			"(minute hour day-of-month month day-of-week, or @hourly, @daily, @weekly, @monthly, @yearly),\n" +
			"in --timezone (an IANA name, default UTC), and again at the next one after each success.\n" +
			"--cron excludes --interval and --delay.",
		Example: "  refrakt jobs enqueue ping\n" +
			"  refrakt jobs enqueue sleep --payload '{\"ms\":250}' --queue slow\n" +
			"  refrakt jobs enqueue echo --payload @body.json --max-retries 0\n" +
			"  refrakt jobs enqueue ping --interval 1m --delay 10s\n" +
			"  refrakt jobs enqueue ping --cron '0 3 * * *' --timezone Europe/Paris\n" +
			"  refrakt jobs enqueue ping --cron '15 * * * mon-fri'\n" +
			"  refrakt jobs enqueue sleep --payload '{\"ms\":5000}' --timeout 2s\n" +
			"  refrakt jobs enqueue fail --payload '{\"retry\":false}' --max-retries 5\n" +
			"  refrakt jobs enqueue echo --payload '{\"order\":7}' --idempotency-key order-7\n" +
			"  id=$(refrakt jobs enqueue ping) && refrakt jobs get \"$id\"",
		Args: cobra.ExactArgs(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return queue.NewRegistry().Types(), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Type = args[0]
			if err := queueFlag(cmd, opts.Queue, "the default queue"); err != nil {
				return err
			}
			// An empty --payload names no payload, as an empty --queue names
			// no queue: refused like an empty @FILE or @-, not read as left
			// out.
			if cmd.Flags().Changed("payload") && opts.Payload == "" {
				return noPayload(`""`)
			}
			if cmd.Flags().Changed("max-retries") {
				opts.MaxRetries = &maxRetries
			}
			opts.keyGiven = cmd.Flags().Changed("idempotency-key")
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return jobsEnqueueRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Payload, "payload", "", "the job's payload: JSON, @FILE, or @- for stdin")
	fl.StringVar(&opts.Queue, "queue", "", "queue name (default \"default\")")
	fl.IntVar(&maxRetries, "max-retries", 0, "retries after a failure before the job is dead, 0-100 (default 3)")
	fl.DurationVar(&opts.Interval, "interval", 0, "run again this long after each success (whole seconds, at most 8760h)")
	fl.StringVar(&opts.Cron, "cron", "", "run on this calendar schedule: a 5-field cron expression or @daily etc. (see README, Schedules)")
	fl.StringVar(&opts.Timezone, "timezone", "", "the --cron schedule's zone, an IANA name such as Europe/Paris (default UTC)")
	fl.DurationVar(&opts.Delay, "delay", 0, "schedule the first run this much later (at most 8760h)")
	fl.DurationVar(&opts.Timeout, "timeout", 0, "cut each run short after this long, the attempt failed (1ms to 168h; default: the daemon's JOB_TIMEOUT)")
	fl.StringVar(&opts.IdempotencyKey, "idempotency-key", "", "enqueue at most once per key and queue: the same command again answers the key's job ("+queue.IdempotencyKeyRule+")")
	return cmd
}

// request validates the flags and builds the enqueue request. Bounds are the
// queue's own (queue.MaxRetriesLimit, MaxInterval, MaxDelay), checked here
// to name the flags rather than the API's fields.
func (o *JobsEnqueueOptions) request(stdin io.Reader) (queue.EnqueueRequest, error) {
	req := queue.EnqueueRequest{Type: o.Type, Queue: o.Queue, MaxRetries: o.MaxRetries}
	if o.Payload != "" {
		raw, err := readPayload(o.Payload, stdin)
		if err != nil {
			return req, err
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			what := fmt.Sprintf("%q", o.Payload)
			switch {
			case o.Payload == "@-":
				what += " (stdin was empty)"
			case strings.HasPrefix(o.Payload, "@"):
				what += " (the file is empty)"
			}
			return req, noPayload(what)
		}
		if !json.Valid(raw) {
			var v any
			err := json.Unmarshal(raw, &v)
			return req, usageError{fmt.Errorf("--payload is not valid JSON: %v", err)}
		}
		req.Payload = json.RawMessage(strings.TrimSpace(string(raw)))
	}
	if o.MaxRetries != nil && (*o.MaxRetries < 0 || *o.MaxRetries > queue.MaxRetriesLimit) {
		return req, usageError{fmt.Errorf("--max-retries must be between 0 and %d, got %d", queue.MaxRetriesLimit, *o.MaxRetries)}
	}
	if maxInterval := queue.MaxInterval * time.Second; o.Interval < 0 || o.Interval%time.Second != 0 || o.Interval > maxInterval {
		return req, usageError{fmt.Errorf("--interval must be a whole number of seconds between 0 and %s (365 days), got %s", shortWindow(maxInterval), o.Interval)}
	}
	if o.Delay < 0 || o.Delay > queue.MaxDelay {
		return req, usageError{fmt.Errorf("--delay must be between 0 and %s (365 days), got %s", shortWindow(queue.MaxDelay), o.Delay)}
	}
	req.IntervalSeconds = int(o.Interval / time.Second)
	req.DelayMS = o.Delay.Milliseconds()
	if o.Timeout != 0 && (o.Timeout < queue.MinJobTimeout || o.Timeout > queue.MaxJobTimeout || o.Timeout%time.Millisecond != 0) {
		return req, usageError{fmt.Errorf("--timeout must be a whole number of milliseconds between 1ms and %s (7 days), got %s", shortWindow(queue.MaxJobTimeout), o.Timeout)}
	}
	req.TimeoutMS = o.Timeout.Milliseconds()
	if err := o.schedule(&req); err != nil {
		return req, err
	}
	if o.IdempotencyKey != "" || o.keyGiven {
		if err := queue.CheckIdempotencyKey(o.IdempotencyKey); err != nil {
			return req, usageError{fmt.Errorf("--idempotency-key: %s", core.ErrorMessage(err))}
		}
		req.IdempotencyKey = o.IdempotencyKey
	}
	// The request as the API driver sends it: the payload must fit in the
	// API's body limit, over either driver, so that a job the API would
	// refuse is not stored over Redis either.
	if len(req.Payload) > 0 {
		body, err := json.Marshal(req)
		if err != nil {
			return req, usageError{fmt.Errorf("--payload: %v", err)}
		}
		if len(body) > daemon.MaxBody {
			return req, payloadTooLarge(fmt.Sprintf("its request would be %d bytes", len(body)))
		}
	}
	return req, nil
}

// schedule checks --cron and --timezone and sets them on req, naming the
// flags (the queue's own checks name the API's fields).
func (o *JobsEnqueueOptions) schedule(req *queue.EnqueueRequest) error {
	switch {
	case o.Cron == "" && o.Timezone != "":
		return usageError{fmt.Errorf("--timezone is only for a --cron schedule: add --cron")}
	case o.Cron == "":
		return nil
	case o.Interval != 0:
		return usageError{fmt.Errorf("--cron and --interval are two schedules: give one")}
	case o.Delay != 0:
		return usageError{fmt.Errorf("--cron decides the first run: drop --delay")}
	}
	if _, err := cron.LoadZone(o.Timezone); err != nil {
		return usageError{fmt.Errorf("--timezone: %v", err)}
	}
	if _, err := cron.Parse(o.Cron, o.Timezone); err != nil {
		return usageError{fmt.Errorf("--%v", err)}
	}
	req.Cron, req.Timezone = o.Cron, o.Timezone
	return nil
}

// readPayload reads --payload: the JSON itself, @FILE or @- (stdin). It
// reads at most one byte more than a request may hold, so a huge file is
// refused without being read whole.
func readPayload(arg string, stdin io.Reader) ([]byte, error) {
	name, ok := strings.CutPrefix(arg, "@")
	if !ok {
		return []byte(arg), nil
	}
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, usageError{fmt.Errorf("--payload: %v", err)}
		}
		defer f.Close()
		r = f
	}
	raw, err := io.ReadAll(io.LimitReader(r, daemon.MaxBody+1))
	if err != nil {
		return nil, usageError{fmt.Errorf("--payload: %v", err)}
	}
	if len(raw) > daemon.MaxBody {
		return nil, payloadTooLarge(fmt.Sprintf("it is over %d bytes", daemon.MaxBody))
	}
	return raw, nil
}

// noPayload refuses a --payload (what: the argument, and where it read
// nothing) that holds no JSON at all.
func noPayload(what string) error {
	return usageError{fmt.Errorf("--payload %s holds no JSON: give a JSON value (such as {} or null), or leave --payload out for a job without a payload", what)}
}

// payloadTooLarge says why a payload cannot be sent, and what fits.
func payloadTooLarge(what string) error {
	return usageError{fmt.Errorf("--payload is too large: %s; a job's request, payload included, must be at most 1 MiB (%d bytes)", what, daemon.MaxBody)}
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
