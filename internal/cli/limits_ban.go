package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// LimitsBanOptions are the inputs of `refrakt limits ban`.
type LimitsBanOptions struct {
	client client

	Key string
	For time.Duration
}

// maxBanFlag is the longest --for: the API's 30 days, as a Go duration.
const maxBanFlag = ratelimit.MaxManualBan

func newLimitsBanCmd(c client, runF func(context.Context, *LimitsBanOptions) error) *cobra.Command {
	opts := &LimitsBanOptions{client: c}
	cmd := &cobra.Command{
		Use:   "ban KEY --for D",
		Short: "Ban one bucket key now, for a while",
		Long: "Ban one bucket, named by its full key <limit>:<scope>:<identity>, for D (whole seconds,\n" +
			"1s to 720h): its requests are refused with 429 and Retry-After until then, on every\n" +
			"daemon of the backend, as a ban the client earned by its own 429s. Its tokens and strikes\n" +
			"stay as they are; a longer ban it already has is kept. A key of the global scope\n" +
			"(limit:global:all, every client's bucket) is never banned.\n" +
			"`refrakt limits reset KEY` lifts the ban.",
		Example: "  refrakt limits ban run:ip:203.0.113.7 --for 1h\n" +
			"  refrakt limits ban run:user:mallory --for 24h\n" +
			"  refrakt limits ban run:ip:2001:db8::1 --for 30m   # keyed as its /64",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Key = args[0]
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return limitsBanRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().DurationVar(&opts.For, "for", 0, "how long, whole seconds, 1s to 720h (required)")
	_ = cmd.MarkFlagRequired("for")
	return cmd
}

func (o *LimitsBanOptions) validate() error {
	if o.For < time.Second || o.For > maxBanFlag || o.For%time.Second != 0 {
		return usageError{fmt.Errorf("--for must be a whole number of seconds from 1s to 720h, got %s", o.For)}
	}
	return nil
}

func limitsBanRun(ctx context.Context, o *LimitsBanOptions) error {
	return o.client.do(ctx, func(d Driver, p *Printer) error {
		v, err := d.BanKey(ctx, o.Key, o.For)
		if err != nil {
			return err
		}
		if v.Warning != "" {
			p.Warn(v.Warning)
		}
		if p.JSON {
			return p.PrintJSON(v)
		}
		// Printed piped too: the ban's end is the answer, not a mere "done";
		// to the second, rounded up, as the daemon's 429s say it.
		until := v.BannedUntil.UTC()
		if t := until.Truncate(time.Second); t.Before(until) {
			until = t.Add(time.Second)
		}
		return p.Printf("%s banned until %s\n", v.Banned, until.Format(time.RFC3339))
	})
}
