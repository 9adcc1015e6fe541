package ratelimit

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits of the user's own (RATE_LIMITS): named policies that a proxy in
// front of the user's service asks the daemon to decide (its decision
// route), beside the built-in limits of refrakt's own routes. They are
// data like the built-ins: overrides, penalties, bans, both stores, the
// snapshot and the metrics treat them alike.

// MaxCustomLimits bounds RATE_LIMITS: every limit is a value of the limit
// label of the decision metrics (times its scopes and three outcomes), and
// the limiter finds a limit by a scan of them all.
const MaxCustomLimits = 64

// MaxLimitName bounds a limit's name: it starts every bucket key, and
// appears in URLs, metric labels and headers.
const MaxLimitName = 32

// customScopes are the scopes a limit of RATE_LIMITS may apply always. The
// global scope is not one: its one bucket is shared by every client, so a
// strike would refuse them all; it is put in force by an override of
// NAME:global, as on every limit.
var customScopes = []Scope{ScopeIP, ScopeUser, ScopeTenant, ScopeUserTenant}

// builtinNames are the names of the built-in limits, which RATE_LIMITS
// cannot take.
var builtinNames = []string{LimitRun, LimitAssistant, LimitTenantMeta, LimitRLTest, LimitSecurePing}

// IsBuiltin reports whether name is a built-in limit's.
func IsBuiltin(name string) bool { return slices.Contains(builtinNames, name) }

// ParseLimits reads a RATE_LIMITS value: entries separated by ';', each
// NAME=RATE/WINDOW followed by optional space-separated burst=N and
// scopes=S1,S2, e.g. "api=100/1m burst=200 scopes=ip,user; search=10/1s".
// Burst defaults to RATE, scopes to ip. Blank entries are skipped and not
// counted; a blank value is no limit. Its error names the entry by number
// (from 1) and text. The checks that need the premium multiplier are
// CheckCustomLimits's.
func ParseLimits(s string) ([]Limit, error) {
	var out []Limit
	n := 0
	for raw := range strings.SplitSeq(s, ";") {
		entry := strings.TrimSpace(raw)
		if entry == "" {
			continue
		}
		n++
		lim, err := parseLimit(entry)
		if err != nil {
			return nil, fmt.Errorf("entry %d %q: %w", n, entry, err)
		}
		if slices.ContainsFunc(out, func(l Limit) bool { return l.Name == lim.Name }) {
			return nil, fmt.Errorf("entry %d %q: limit %q is given twice", n, entry, lim.Name)
		}
		out = append(out, lim)
		if len(out) > MaxCustomLimits {
			return nil, fmt.Errorf("entry %d %q: at most %d limits", n, entry, MaxCustomLimits)
		}
	}
	return out, nil
}

// ErrUnknownLimit is the cause of the limiter's error for a limit name it
// does not have (a decision's, a target's): errors.Is finds it where the
// name may be another daemon's limit of its own (the CLI's --redis
// driver says where it looked).
var ErrUnknownLimit = errors.New("unknown limit")

// wholeNumber reads digits alone: strconv.Atoi would take "+1" too.
func wholeNumber(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.Atoi(s)
}

// parseLimit reads one entry of RATE_LIMITS.
func parseLimit(entry string) (Limit, error) {
	fields := strings.Fields(entry)
	name, policy, ok := strings.Cut(fields[0], "=")
	if !ok {
		return Limit{}, fmt.Errorf("want NAME=RATE/WINDOW first, e.g. api=100/1m")
	}
	if err := CheckLimitName(name); err != nil {
		return Limit{}, err
	}
	rateText, windowText, ok := strings.Cut(policy, "/")
	if !ok {
		return Limit{}, fmt.Errorf("want NAME=RATE/WINDOW, e.g. %s=100/1m", name)
	}
	rate, err := wholeNumber(rateText)
	if err != nil || rate < 1 || rate > MaxCapacity {
		return Limit{}, fmt.Errorf("rate %q must be a whole number from 1 to %d", rateText, MaxCapacity)
	}
	window, err := time.ParseDuration(windowText)
	if err != nil || window < time.Second || window > MaxWindow || window%time.Second != 0 {
		return Limit{}, fmt.Errorf("window %q must be a duration of whole seconds from 1s to %s (e.g. 1s, 1m, 1h)", windowText, MaxWindow)
	}
	lim := Limit{Name: name, Scopes: []Scope{ScopeIP}, Policy: Policy{Burst: rate, Rate: rate, Window: window}}
	seen := map[string]bool{}
	for _, f := range fields[1:] {
		key, value, _ := strings.Cut(f, "=")
		if seen[key] {
			return Limit{}, fmt.Errorf("%s is given twice", key)
		}
		seen[key] = true
		switch key {
		case "burst":
			b, err := wholeNumber(value)
			if err != nil || b < 1 || b > MaxCapacity {
				return Limit{}, fmt.Errorf("burst %q must be a whole number from 1 to %d", value, MaxCapacity)
			}
			lim.Policy.Burst = b
		case "scopes":
			if lim.Scopes, err = parseScopes(value); err != nil {
				return Limit{}, err
			}
		default:
			return Limit{}, fmt.Errorf("unknown option %q: want burst=N or scopes=S1,S2", f)
		}
	}
	return lim, nil
}

// parseScopes reads scopes=S1,S2.
func parseScopes(v string) ([]Scope, error) {
	var out []Scope
	for part := range strings.SplitSeq(v, ",") {
		sc := Scope(part)
		switch {
		case sc == ScopeGlobal:
			return nil, fmt.Errorf("scope global is for overrides only (set one of NAME:global): its one bucket is every client's")
		case !slices.Contains(customScopes, sc):
			return nil, fmt.Errorf("unknown scope %q: want ip, user, tenant or user_tenant", part)
		case slices.Contains(out, sc):
			return nil, fmt.Errorf("scope %s is given twice", sc)
		}
		out = append(out, sc)
	}
	return out, nil
}

// CheckLimitName refuses a name a limit of RATE_LIMITS cannot take: 1 to
// MaxLimitName bytes, a lower-case letter, then lower-case letters, digits,
// '-' and '_' (it is the first part of a key NAME:SCOPE:ID, a path segment
// of the decision route and a metric label), and no built-in limit's.
func CheckLimitName(name string) error {
	if IsBuiltin(name) {
		return fmt.Errorf("%q is a built-in limit's name", name)
	}
	if !validLimitName(name) {
		return fmt.Errorf("name %q must be 1 to %d characters: a lower-case letter, then lower-case letters, digits, - and _", name, MaxLimitName)
	}
	return nil
}

func validLimitName(name string) bool {
	if name == "" || len(name) > MaxLimitName || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// CustomProblem is a limit of RATE_LIMITS the limiter cannot take: its
// entry's number (from 1) and why.
type CustomProblem struct {
	Entry int
	Name  string
	Why   string
}

// CheckCustomLimits checks limits (ParseLimits's) as the limiter takes
// them, with the premium multiplier m (within its bounds): names, scopes,
// policy bounds, and rates a bucket refills exactly in both tiers
// (Policy.RefillShortfall, as for the built-ins' settings). multiplier names
// the premium multiplier's setting in the message.
func CheckCustomLimits(limits []Limit, m float64, multiplier string) *CustomProblem {
	if len(limits) > MaxCustomLimits {
		return &CustomProblem{Entry: MaxCustomLimits + 1, Name: limits[MaxCustomLimits].Name, Why: fmt.Sprintf("at most %d limits", MaxCustomLimits)}
	}
	for i, l := range limits {
		p := &CustomProblem{Entry: i + 1, Name: l.Name}
		if err := CheckLimitName(l.Name); err != nil {
			p.Why = err.Error()
			return p
		}
		if slices.ContainsFunc(limits[:i], func(o Limit) bool { return o.Name == l.Name }) {
			p.Why = fmt.Sprintf("limit %q is given twice", l.Name)
			return p
		}
		if len(l.Scopes) == 0 || slices.ContainsFunc(l.Scopes, func(sc Scope) bool { return !slices.Contains(customScopes, sc) }) {
			p.Why = "scopes must be some of ip, user, tenant, user_tenant"
			return p
		}
		pol := l.Policy
		switch {
		case pol.Rate < 1 || pol.Rate > MaxCapacity || pol.Burst < 1 || pol.Burst > MaxCapacity:
			p.Why = fmt.Sprintf("rate and burst must be from 1 to %d", MaxCapacity)
			return p
		case pol.Window < time.Second || pol.Window > MaxWindow || pol.Window%time.Second != 0:
			p.Why = fmt.Sprintf("window must be whole seconds from 1s to %s", MaxWindow)
			return p
		}
		if why := pol.RefillShortfall(); why != "" {
			p.Why = fmt.Sprintf("%d per %s %s", pol.Rate, formatWindow(pol.Window), why)
			return p
		}
		if m >= 1 && m <= MaxPremiumMultiplier {
			if why := pol.Premium(m).RefillShortfall(); why != "" {
				p.Why = fmt.Sprintf("%d per %s × %s %g (the premium tier's rate) %s", pol.Rate, formatWindow(pol.Window), multiplier, m, why)
				return p
			}
		}
	}
	return nil
}

// FormatLimits is limits as RATE_LIMITS writes them, every option spelled
// out: what the start-up line shows.
func FormatLimits(limits []Limit) string {
	parts := make([]string, len(limits))
	for i, l := range limits {
		scopes := make([]string, len(l.Scopes))
		for j, sc := range l.Scopes {
			scopes[j] = string(sc)
		}
		parts[i] = fmt.Sprintf("%s=%d/%s burst=%d scopes=%s", l.Name, l.Policy.Rate, formatWindow(l.Policy.Window), l.Policy.Burst, strings.Join(scopes, ","))
	}
	return strings.Join(parts, "; ")
}

// formatWindow is d as RATE_LIMITS takes it, without Go's zero units
// ("1m", not "1m0s").
func formatWindow(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
