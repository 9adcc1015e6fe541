package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// LimitsUnsetOptions are the inputs of `refrakt limits unset`.
type LimitsUnsetOptions struct {
	client client

	Target string
}

func newLimitsUnsetCmd(c client, runF func(context.Context, *LimitsUnsetOptions) error) *cobra.Command {
	opts := &LimitsUnsetOptions{client: c}
	cmd := &cobra.Command{
		Use:   "unset TARGET",
		Short: "Remove an override",
		Long: "Remove the override of TARGET; its buckets go back to the limit's policy (or to a\n" +
			"less specific override). A target without an override exits 1.",
		Example:           "  refrakt limits unset run:ip",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeTargets(c, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Target = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return limitsUnsetRun(cmd.Context(), opts)
		},
	}
	return cmd
}

func limitsUnsetRun(ctx context.Context, o *LimitsUnsetOptions) error {
	return o.client.do(ctx, func(d Driver, p *Printer) error {
		if err := d.DeleteOverride(ctx, o.Target); err != nil {
			return err
		}
		// The target as it was stored (run:ip:1.2.3.4 for
		// run:ip:::ffff:1.2.3.4): what `limits get` listed.
		target := ratelimit.CanonicalTarget(o.Target)
		return printDone(p, map[string]any{"target": target, "removed": true}, "Removed the override of %s.", target)
	})
}

// printDone confirms an action: the JSON object v with -o json, the
// sentence on a terminal, nothing when piped (the exit code says it).
func printDone(p *Printer, v any, format string, args ...any) error {
	switch {
	case p.JSON:
		return p.PrintJSON(v)
	case p.TTY:
		return p.Printf(format+"\n", args...)
	}
	return nil
}
