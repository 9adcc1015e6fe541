package cli

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// published is the LimitSet the daemons publish for RATE_LIMITS v.
func published(t *testing.T, v string) ratelimit.LimitSet {
	t.Helper()
	ls, err := ratelimit.ParseLimits(v)
	if err != nil {
		t.Fatal(err)
	}
	set := ratelimit.LimitSet{Enabled: true}
	for _, l := range ls {
		set.Limits = append(set.Limits, ratelimit.TieredLimit{Limit: l})
	}
	return set
}

func mustLimits(t *testing.T, v string) []ratelimit.Limit {
	t.Helper()
	ls, err := ratelimit.ParseLimits(v)
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func limitNames(ls []ratelimit.Limit) []string {
	out := []string{}
	for _, l := range ls {
		out = append(out, fmt.Sprintf("%s=%d/%s %v", l.Name, l.Policy.Burst, l.Policy.Window, l.Scopes))
	}
	return out
}

// TestWithPublishedLimits: for a name both have, the daemons' published
// policy wins, with one warning line when it differs; a name in either is
// known; a merged set failing the check keeps the daemons' limits and says so.
func TestWithPublishedLimits(t *testing.T) {
	var many []string
	for i := range ratelimit.MaxCustomLimits {
		many = append(many, fmt.Sprintf("p%d=1/1s", i))
	}
	for _, c := range []struct {
		name, own, pub string
		want           []string
		warn           string // a substring of the one warning line, or "" for none
	}{
		{"published policy wins", "api=3/1m", "api=4/1m scopes=ip,user",
			[]string{"api=4/1m0s [ip user]"}, "differs from what the daemons on this Redis published for api: the daemons' policy is used"},
		{"the same policy: no warning", "api=4/1m", "api=4/1m",
			[]string{"api=4/1m0s [ip]"}, ""},
		{"a name in either is known", "mine=2/1s", "api=4/1m",
			[]string{"api=4/1m0s [ip]", "mine=2/1s [ip]"}, ""},
		{"too many together: the daemons' kept", "mine=2/1s", strings.Join(many, ";"),
			nil, "together fail the limiter's check: only the daemons' limits are known here"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, warnings := withPublishedLimits(mustLimits(t, c.own), published(t, c.pub), 3)
			if c.want != nil {
				if diff := cmp.Diff(c.want, limitNames(got)); diff != "" {
					t.Errorf("limits (-want +got):\n%s", diff)
				}
			} else if len(got) != ratelimit.MaxCustomLimits || got[0].Name != "p0" {
				t.Errorf("got %d limits starting %v, want the daemons' %d", len(got), limitNames(got[:1]), ratelimit.MaxCustomLimits)
			}
			switch {
			case c.warn == "" && len(warnings) != 0:
				t.Errorf("warnings %q, want none", warnings)
			case c.warn != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], c.warn) || strings.Contains(warnings[0], "\n")):
				t.Errorf("warnings %q, want one line holding %q", warnings, c.warn)
			}
		})
	}
}
