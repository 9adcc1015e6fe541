package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// LimitsResetOptions are the inputs of `refrakt limits reset`.
type LimitsResetOptions struct {
	client client

	Key string
}

func newLimitsResetCmd(c client, runF func(context.Context, *LimitsResetOptions) error) *cobra.Command {
	opts := &LimitsResetOptions{client: c}
	cmd := &cobra.Command{
		Use:   "reset KEY",
		Short: "Clear a bucket, its strikes and its ban",
		Long: "Reset one bucket, named by its full key <limit>:<scope>:<identity>: its tokens are full\n" +
			"again, its strikes and any ban are gone, one it earned by its 429s or one an operator\n" +
			"set (refrakt limits ban), on every daemon of the backend. A key that was never used is\n" +
			"fine (exit 0).",
		Example: "  refrakt limits reset run:ip:203.0.113.7\n" +
			"  refrakt limits reset secure-ping:user_tenant:u1:t1",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Key = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return limitsResetRun(cmd.Context(), opts)
		},
	}
	return cmd
}

func limitsResetRun(ctx context.Context, o *LimitsResetOptions) error {
	return o.client.do(ctx, func(d Driver, p *Printer) error {
		if err := d.ResetKey(ctx, o.Key); err != nil {
			return err
		}
		key := ratelimit.CanonicalTarget(o.Key) // the bucket's own key
		return printDone(p, map[string]any{"key": key, "reset": true}, "Reset %s: tokens full, strikes and ban cleared.", key)
	})
}
