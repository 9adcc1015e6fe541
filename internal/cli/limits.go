package cli

import (
	"context"
	"sort"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// newLimitsCmd is `refrakt limits`: policies, overrides and buckets, over a
// daemon or Redis.
func newLimitsCmd(f *Factory) *cobra.Command {
	return newGroupCmd(f, &cobra.Command{
		Use:   "limits",
		Short: "Show rate limits, set and remove overrides, reset and ban buckets",
		Long: "Work with refrakt's rate limits, over a daemon's API (--server, REFRAKT_SERVER, default\n" +
			DefaultServer + ") or straight over Redis (--redis, REFRAKT_REDIS). An override set\n" +
			"either way is stored in the backend and enforced by every daemon on it within 1 s.\n" +
			"A target is a limit (run), a limit and scope (run:ip) or one key (run:ip:203.0.113.7).\n" +
			"Every limit also has a tenant and a global scope, in force only where an override\n" +
			"targets them: run:tenant (each tenant's requests share a bucket), run:tenant:<tenant>\n" +
			"(that tenant only), run:global (one bucket, run:global:all, for all requests).",
		Example: "  refrakt limits get\n" +
			"  refrakt limits set run:ip --capacity 100 --window 1m --ttl 1h\n" +
			"  refrakt limits set run:tenant --capacity 300 --window 1m\n" +
			"  refrakt limits reset run:ip:203.0.113.7\n" +
			"  refrakt limits ban run:ip:203.0.113.7 --for 1h",
	}, func(c client) []*cobra.Command {
		return []*cobra.Command{
			newLimitsGetCmd(c, nil),
			newLimitsSetCmd(c, nil),
			newLimitsUnsetCmd(c, nil),
			newLimitsResetCmd(c, nil),
			newLimitsBanCmd(c, nil),
		}
	})
}

// completeTargets completes the first argument with the limit names, their
// scopes (as limit:scope) and the override targets in force: one call to
// the backend; failures complete nothing.
func completeTargets(c client, withLimits bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		seen := map[string]string{}
		_ = c.do(ctx, func(d Driver, _ *Printer) error {
			v, err := d.Limits(ctx, "")
			if err != nil {
				return err
			}
			if withLimits {
				for _, l := range v.Limits {
					seen[l.Name] = "limit"
					for _, s := range l.Scopes {
						seen[l.Name+":"+s] = "limit and scope"
					}
					for _, s := range ratelimit.OnDemandScopes() {
						if _, ok := seen[l.Name+":"+string(s)]; !ok {
							seen[l.Name+":"+string(s)] = "limit and scope, in force by override"
						}
					}
				}
			}
			for _, o := range v.Overrides {
				seen[o.Target] = "override"
			}
			return nil
		})
		out := make([]cobra.Completion, 0, len(seen))
		for t, desc := range seen {
			out = append(out, cobra.CompletionWithDesc(t, desc))
		}
		sort.Strings(out)
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
