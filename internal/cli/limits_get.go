package cli

import (
	"context"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/daemon"
)

// LimitsGetOptions are the inputs of `refrakt limits get`.
type LimitsGetOptions struct {
	client client

	Target string // "": everything
}

func newLimitsGetCmd(c client, runF func(context.Context, *LimitsGetOptions) error) *cobra.Command {
	opts := &LimitsGetOptions{client: c}
	cmd := &cobra.Command{
		Use:   "get [TARGET]",
		Short: "Show the limits with their policies, then the overrides",
		Long: "Show every limit with its policy (burst, rate per window, scopes), then the overrides in\n" +
			"force with their mode, expiry and origin. With TARGET, only its limit and the overrides\n" +
			"that cover it or lie under it (for run:ip: run, run:ip and run:ip:<any key>; for one key,\n" +
			"its own override and those of its limit and scope). Besides the scopes listed, every\n" +
			"limit has a tenant and a global scope, in force only where an override targets them\n" +
			"(run:tenant, run:tenant:<tenant>, run:global).\n\n" +
			"When TARGET is one key (run:ip:203.0.113.7), its bucket too, as the key's next request\n" +
			"would find it, read without spending or changing anything: the policy in force (and the\n" +
			"override it comes from), what that request meets (fresh, allowed, limited,\n" +
			"shadow_limited, banned; not_in_force for a tenant or global key no override puts in\n" +
			"force), tokens left of the capacity after penalties, strikes, the ban's end, the wait\n" +
			"until a request passes and until the bucket is full, and when the key was last seen.\n" +
			"The policy is the standard tier's unless an override applies.",
		Example: "  refrakt limits get\n" +
			"  refrakt limits get run:ip\n" +
			"  refrakt limits get run:ip:203.0.113.7     # why does this client get 429s?\n" +
			"  refrakt limits get -o json | jq '.overrides[].target'",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeTargets(c, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Target = args[0]
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return limitsGetRun(cmd.Context(), opts)
		},
	}
	return cmd
}

func limitsGetRun(ctx context.Context, o *LimitsGetOptions) error {
	return o.client.do(ctx, func(d Driver, p *Printer) error {
		v, err := d.Limits(ctx, o.Target)
		if err != nil {
			return err
		}
		if o.Target != "" {
			if v, err = filterLimits(v, o.Target); err != nil {
				return err
			}
		}
		var bucket *daemon.KeyStateJSON
		if o.Target != "" && ratelimit.IsKey(o.Target) {
			ks, err := d.KeyState(ctx, o.Target)
			switch {
			case err != nil && olderDaemon(err):
				p.Warn("the daemon does not show a key's bucket (GET /api/obs/rate-limits?key=): it is older than this refrakt")
			case err != nil:
				return err
			default:
				bucket = &ks.Bucket
				if ks.Degraded {
					p.Warn("the rate-limit backend is failing: the bucket is the daemon's local store's, which decides meanwhile")
				}
			}
		}
		if !v.Enabled && !p.TTY {
			// A terminal's listing says it in its first line; piped rows
			// and JSON ("enabled": false) are read by programs.
			p.Warn("rate limiting is off (RATE_LIMIT_ENABLED=false): nothing listed is enforced")
		}
		return printLimitsBucket(p, v, bucket)
	})
}

// olderDaemon reports whether err is a daemon's refusal of the key
// parameter of GET /api/obs/rate-limits: it predates it.
func olderDaemon(err error) bool {
	return core.ErrorCode(err) == core.CodeInvalid && strings.Contains(core.ErrorMessage(err), `unknown query parameter "key"`)
}

// filterLimits keeps target's limit and the overrides related to target:
// those whose target is target, a prefix of it (they cover it) or under it
// (ratelimit.Related; for a tenant or global target, not the limit's own,
// which does not apply there: ratelimit.RelatedOnDemand). The drivers ask
// their backend for those only; this checks the target and keeps the
// output the same whatever they return (a daemon older than
// GET /api/dev/rate-limits/config?target= answers all).
func filterLimits(v LimitsView, target string) (LimitsView, error) {
	parts := strings.SplitN(target, ":", 3)
	out := LimitsView{Enabled: v.Enabled, Limits: []LimitView{}, Overrides: []OverrideView{}}
	for _, l := range v.Limits {
		if l.Name == parts[0] {
			out.Limits = append(out.Limits, l)
		}
	}
	if len(out.Limits) == 0 {
		return out, core.Errorf(core.CodeInvalid, "unknown limit %q in target %q", parts[0], target)
	}
	onDemand := len(parts) > 1 && !slices.Contains(out.Limits[0].Scopes, parts[1])
	if onDemand && !ratelimit.IsOnDemand(ratelimit.Scope(parts[1])) {
		return out, core.Errorf(core.CodeInvalid, "limit %q has no scope %q (target %q)", parts[0], parts[1], target)
	}
	// As overrides are stored; an identity that is not one is refused (a
	// daemon older than its own check answers an empty listing for it).
	target, err := ratelimit.NormalizeTarget(target)
	if err != nil {
		return out, err
	}
	for _, o := range v.Overrides {
		if ratelimit.RelatedOnDemand(o.Target, target, onDemand) {
			out.Overrides = append(out.Overrides, o)
		}
	}
	return out, nil
}
