package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/refrakt/refrakt/internal/daemon"
)

// The output of the limits commands. With -o json, `limits get` prints
// {"limits":[…],"overrides":[…]} (LimitView, OverrideView) and `limits set`
// the override it stored. On a terminal: a table of limits, then one of
// overrides. Piped: one tab-separated row per limit and override, the first
// column saying which ("limit" or "override"), windows in seconds, times in
// RFC 3339. A limit's row: limit, name, scopes, burst, rate, window,
// premium burst, premium rate; an override's: override, target, capacity,
// window, mode, expires, origin, created. `limits get KEY` adds the key's
// bucket (printLimitsBucket).

var (
	limitColumns    = []string{"limit", "scopes", "burst", "rate", "window", "premium burst", "premium rate"}
	overrideColumns = []string{"target", "capacity", "window", "mode", "expires", "origin", "created"}
)

func printLimits(p *Printer, v LimitsView) error { return printLimitsBucket(p, v, nil) }

// limitsWithBucket is `limits get KEY -o json`: the listing, and the key's
// bucket.
type limitsWithBucket struct {
	LimitsView
	Bucket *daemon.KeyStateJSON `json:"bucket,omitempty"`
}

// printLimitsBucket is printLimits, then, when b is not nil, one key's
// bucket: a table of one row on a terminal, a row starting "bucket" when
// piped (key, state, remaining, capacity, strikes, banned until, retry
// after, reset after, last seen, burst, rate, window, mode, override), and
// "bucket" in the JSON.
func printLimitsBucket(p *Printer, v LimitsView, b *daemon.KeyStateJSON) error {
	if p.JSON {
		if b == nil {
			return p.PrintJSON(v)
		}
		return p.PrintJSON(limitsWithBucket{v, b})
	}
	now := p.Now()
	if !p.TTY {
		var rows [][]string
		for _, l := range v.Limits {
			rows = append(rows, append([]string{"limit"}, limitRow(p, l)...))
		}
		for _, o := range v.Overrides {
			rows = append(rows, append([]string{"override"}, overrideRow(p, o, now)...))
		}
		if b != nil {
			rows = append(rows, bucketPipedRow(p, b, now))
		}
		return p.Table(nil, rows)
	}
	if err := printLimitsTTY(p, v, now); err != nil || b == nil {
		return err
	}
	fmt.Fprintln(p.Out)
	return p.Table(bucketColumns, [][]string{bucketRow(p, b, now)})
}

var bucketColumns = []string{"bucket", "state", "tokens", "strikes", "banned until", "retry in", "full in", "last seen", "policy", "override"}

// bucketRow is b on a terminal: tokens as left/capacity, waits and times
// relative to now, the policy as burst and rate per window.
func bucketRow(p *Printer, b *daemon.KeyStateJSON, now time.Time) []string {
	if b.Policy == nil {
		return []string{b.Key, b.State, "-", "-", "-", "-", "-", "-", "-", "-"}
	}
	wait := func(s float64) string {
		if s <= 0 {
			return "-"
		}
		return shortDuration(time.Duration(s * float64(time.Second)))
	}
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return Since(*t, now)
	}
	policy := strconv.Itoa(b.Policy.Rate) + "/" + p.window(b.Policy.WindowSeconds)
	if b.Policy.Burst != b.Policy.Rate {
		policy = "burst " + strconv.Itoa(b.Policy.Burst) + ", " + policy
	}
	if b.Policy.Mode == "shadow" {
		policy += " shadow"
	}
	override := "-"
	if b.Policy.Override != nil {
		override = *b.Policy.Override
	}
	return []string{b.Key, b.State, strconv.Itoa(b.Remaining) + "/" + strconv.Itoa(b.Capacity), strconv.Itoa(b.Strikes),
		at(b.BannedUntil), wait(b.RetryAfterSeconds), wait(b.ResetAfterSeconds), at(b.LastSeen), policy, override}
}

// bucketPipedRow is b as a piped row: times in RFC 3339, waits and the
// window in seconds, an unset field empty.
func bucketPipedRow(p *Printer, b *daemon.KeyStateJSON, now time.Time) []string {
	at := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return p.timeCell(*t, now)
	}
	secs := func(s float64) string { return strconv.FormatFloat(s, 'f', -1, 64) }
	row := []string{"bucket", b.Key, b.State, strconv.Itoa(b.Remaining), strconv.Itoa(b.Capacity), strconv.Itoa(b.Strikes),
		at(b.BannedUntil), secs(b.RetryAfterSeconds), secs(b.ResetAfterSeconds), at(b.LastSeen)}
	if b.Policy == nil {
		return append(row, "", "", "", "", "")
	}
	override := ""
	if b.Policy.Override != nil {
		override = *b.Policy.Override
	}
	return append(row, strconv.Itoa(b.Policy.Burst), strconv.Itoa(b.Policy.Rate), p.window(b.Policy.WindowSeconds), b.Policy.Mode, override)
}

// printLimitsTTY is the terminal's listing: the limits, then the overrides.
func printLimitsTTY(p *Printer, v LimitsView, now time.Time) error {
	if !v.Enabled {
		fmt.Fprintln(p.Out, "Rate limiting is off (RATE_LIMIT_ENABLED=false): nothing below is enforced.")
	}
	if len(v.Limits) > 0 {
		rows := make([][]string, len(v.Limits))
		for i, l := range v.Limits {
			rows[i] = limitRow(p, l)
		}
		if err := p.Table(limitColumns, rows); err != nil {
			return err
		}
		fmt.Fprintln(p.Out)
	}
	if len(v.Overrides) == 0 {
		_, err := fmt.Fprintln(p.Out, "No overrides.")
		return err
	}
	return printOverrides(p, v.Overrides)
}

func printOverrides(p *Printer, list []OverrideView) error {
	if p.JSON {
		return p.PrintJSON(list)
	}
	now := p.Now()
	rows := make([][]string, len(list))
	for i, o := range list {
		rows[i] = overrideRow(p, o, now)
	}
	return p.Table(overrideColumns, rows)
}

// printOverride shows the override `limits set` stored.
func printOverride(p *Printer, o OverrideView) error {
	if p.JSON {
		return p.PrintJSON(o)
	}
	return printOverrides(p, []OverrideView{o})
}

func limitRow(p *Printer, l LimitView) []string {
	return []string{l.Name, strings.Join(l.Scopes, ","), strconv.Itoa(l.Burst), strconv.Itoa(l.Rate), p.window(l.WindowSeconds),
		strconv.Itoa(l.PremiumBurst), strconv.Itoa(l.PremiumRate)}
}

func overrideRow(p *Printer, o OverrideView, now time.Time) []string {
	mode := o.Mode
	if mode == "" {
		mode = "enforce"
	}
	expires := "never"
	if o.ExpiresAt != nil {
		expires = p.timeCell(*o.ExpiresAt, now)
	} else if !p.TTY {
		expires = ""
	}
	var created time.Time
	if o.CreatedAt != nil {
		created = *o.CreatedAt
	}
	return []string{o.Target, strconv.Itoa(o.Capacity), p.window(o.WindowSeconds), mode, expires, dashIfTTY(p, o.Origin), p.timeCell(created, now)}
}

// window renders a window: "1m" on a terminal, seconds when piped.
func (p *Printer) window(seconds float64) string {
	if !p.TTY {
		return strconv.FormatFloat(seconds, 'f', -1, 64)
	}
	return shortWindow(time.Duration(seconds * float64(time.Second)))
}

func dashIfTTY(p *Printer, s string) string {
	if p.TTY {
		return dash(s)
	}
	return s
}
