package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The output of the limits commands. With -o json, `limits get` prints
// {"limits":[…],"overrides":[…]} (LimitView, OverrideView) and `limits set`
// the override it stored. On a terminal: a table of limits, then one of
// overrides. Piped: one tab-separated row per limit and override, the first
// column saying which ("limit" or "override"), windows in seconds, times in
// RFC 3339. A limit's row: limit, name, scopes, burst, rate, window,
// premium burst, premium rate; an override's: override, target, capacity,
// window, mode, expires, origin, created.

var (
	limitColumns    = []string{"limit", "scopes", "burst", "rate", "window", "premium burst", "premium rate"}
	overrideColumns = []string{"target", "capacity", "window", "mode", "expires", "origin", "created"}
)

func printLimits(p *Printer, v LimitsView) error {
	if p.JSON {
		return p.PrintJSON(v)
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
		return p.Table(nil, rows)
	}
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
