package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// LimitsSetOptions are the inputs of `refrakt limits set`.
type LimitsSetOptions struct {
	client client

	Target   string
	Capacity int
	Window   time.Duration
	TTL      time.Duration // 0: until unset
	Shadow   bool

	// ttlGiven is whether --ttl was on the command line: a TTL given must
	// be at least 1s, as the API's ttl_seconds (0 there is not "never").
	ttlGiven bool
}

func newLimitsSetCmd(c client, runF func(context.Context, *LimitsSetOptions) error) *cobra.Command {
	opts := &LimitsSetOptions{client: c}
	cmd := &cobra.Command{
		Use:   "set TARGET --capacity N --window D [--ttl D] [--shadow]",
		Short: "Override the policy of a limit, a limit's scope or one key",
		Long: "Set an override: CAPACITY tokens of burst, refilled CAPACITY per WINDOW, for TARGET (a\n" +
			"limit, limit:scope or limit:scope:identity); the most specific override of a bucket wins.\n" +
			"A bucket keeps what it has already spent. With --ttl the override ends by itself; with\n" +
			"--shadow it is computed and counted but never denies. Every daemon on the backend\n" +
			"enforces it within 1 s.\n\n" +
			"An override of limit:tenant or limit:tenant:<tenant> puts the limit's tenant scope in force\n" +
			"(for every tenant, or that one): the requests of a tenant share a bucket, on top of the\n" +
			"limit's other scopes. One of limit:global gives all the limit's requests one bucket,\n" +
			"limit:global:all, which refuses without strikes or bans. Unset it and the scope is gone.",
		Example: "  refrakt limits set run --capacity 100 --window 1m\n" +
			"  refrakt limits set run:ip:203.0.113.7 --capacity 1 --window 1h --ttl 24h\n" +
			"  refrakt limits set assistant:user --capacity 5 --window 1m --shadow\n" +
			"  refrakt limits set run:tenant --capacity 300 --window 1m\n" +
			"  refrakt limits set run:global --capacity 1000 --window 1m",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeTargets(c, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Target = args[0]
			opts.ttlGiven = cmd.Flags().Changed("ttl")
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return limitsSetRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&opts.Capacity, "capacity", 0, "burst, and tokens refilled per window (required, 1 to 1073741824)")
	fl.DurationVar(&opts.Window, "window", 0, "refill window, whole seconds, 1s to 8760h (required)")
	fl.DurationVar(&opts.TTL, "ttl", 0, "remove the override after this long, whole seconds from 1s (default: never)")
	fl.BoolVar(&opts.Shadow, "shadow", false, "count what the override would deny, but never deny")
	_ = cmd.MarkFlagRequired("capacity")
	_ = cmd.MarkFlagRequired("window")
	return cmd
}

func (o *LimitsSetOptions) validate() error {
	switch {
	case o.Capacity <= 0 || o.Capacity > ratelimit.MaxCapacity:
		return usageError{fmt.Errorf("--capacity must be between 1 and %d, got %d", ratelimit.MaxCapacity, o.Capacity)}
	case o.Window < time.Second || o.Window > ratelimit.MaxWindow || o.Window%time.Second != 0:
		return usageError{fmt.Errorf("--window must be a whole number of seconds from 1s to %s, got %s", ratelimit.MaxWindow, o.Window)}
	case o.TTL < 0 || o.TTL > ratelimit.MaxOverrideTTL || o.TTL%time.Second != 0,
		o.ttlGiven && o.TTL < time.Second:
		return usageError{fmt.Errorf("--ttl must be a whole number of seconds from 1s to %s, got %s (leave --ttl out for an override that never expires)", ratelimit.MaxOverrideTTL, o.TTL)}
	}
	return nil
}

func (o *LimitsSetOptions) request() OverrideRequest {
	r := OverrideRequest{Target: o.Target, Capacity: o.Capacity, WindowSeconds: int(o.Window / time.Second), TTLSeconds: int(o.TTL / time.Second), Origin: "cli"}
	if o.Shadow {
		r.Mode = ratelimit.ModeShadow
	}
	return r
}

func limitsSetRun(ctx context.Context, o *LimitsSetOptions) error {
	return o.client.do(ctx, func(d Driver, p *Printer) error {
		ov, err := d.SetOverride(ctx, o.request())
		if err != nil {
			return err
		}
		if ov.Warning != "" {
			p.Warn(ov.Warning)
		}
		return printOverride(p, ov)
	})
}
