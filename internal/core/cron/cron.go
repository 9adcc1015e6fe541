// Package cron parses standard 5-field cron expressions (minute hour
// day-of-month month day-of-week, with the usual @macros) and finds their
// next occurrence in a time zone. It is what a job's "cron" schedule means.
//
// Occurrences are local wall-clock times of the schedule's zone. A local
// time that does not exist (the hour a spring-forward DST change skips) is
// skipped, as robfig/cron v3 documents ("jobs scheduled during
// daylight-savings leap-ahead transitions will not be run"; Kubernetes
// CronJob and asynq's Scheduler are built on it); a local time that occurs
// twice (fall back) occurs once, at its first instant, as Vixie cron and
// cronie run it (robfig/cron would run it twice).
package cron

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxLen bounds an expression's length; MaxZoneLen a zone name's.
const (
	MaxLen     = 100
	MaxZoneLen = 64
)

// Horizon is how far Next looks for an occurrence: 9 years of days, more
// than the longest gap between two 29ths of February (8 years, 2096-2104),
// so every expression that Parse accepts fires within it.
const Horizon = 9 * 366

// Schedule is a parsed expression in its zone.
type Schedule struct {
	minute, hour, dom, month, dow uint64 // bit i set: value i matches
	// domStar and dowStar: the field began with "*". When neither did,
	// a day matching either field matches (the Vixie cron rule).
	domStar, dowStar bool
	loc              *time.Location
}

type field struct {
	name     string
	min, max int
	names    []string // names[i] is value min+i's name
}

var (
	minuteField = field{name: "minute", min: 0, max: 59}
	hourField   = field{name: "hour", min: 0, max: 23}
	domField    = field{name: "day-of-month", min: 1, max: 31}
	monthField  = field{name: "month", min: 1, max: 12,
		names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}}
	dowField = field{name: "day-of-week", min: 0, max: 7,
		names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}}
)

var macros = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

// LoadZone resolves an IANA zone name; "" is UTC. "Local" is refused: a
// schedule must mean the same on every machine.
func LoadZone(name string) (*time.Location, error) {
	if name == "" || name == "UTC" {
		return time.UTC, nil
	}
	if len(name) > MaxZoneLen || name == "Local" {
		return nil, fmt.Errorf("timezone %q is not an IANA zone name", truncate(name))
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("timezone %q is not an IANA zone name", truncate(name))
	}
	return loc, nil
}

// Parse parses expr for the zone named zone ("" is UTC). Its errors are one
// line naming the field and the value, e.g. "cron: minute 61 out of range
// 0-59". An expression that can never fire (0 0 30 2 *) is refused.
func Parse(expr, zone string) (*Schedule, error) {
	loc, err := LoadZone(zone)
	if err != nil {
		return nil, fmt.Errorf("cron: %w", err)
	}
	if len(expr) > MaxLen {
		return nil, fmt.Errorf("cron: expression longer than %d characters", MaxLen)
	}
	src := strings.TrimSpace(expr)
	if strings.HasPrefix(src, "@") {
		m, ok := macros[strings.ToLower(src)]
		if !ok {
			return nil, fmt.Errorf("cron: unknown macro %q (want @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)", src)
		}
		src = m
	}
	fs := strings.Fields(src)
	if len(fs) != 5 {
		return nil, fmt.Errorf("cron: %q has %d fields, want 5 (minute hour day-of-month month day-of-week)", truncate(expr), len(fs))
	}
	s := &Schedule{loc: loc}
	for i, f := range []struct {
		spec  field
		into  *uint64
		isStr *bool
	}{{minuteField, &s.minute, nil}, {hourField, &s.hour, nil}, {domField, &s.dom, &s.domStar},
		{monthField, &s.month, nil}, {dowField, &s.dow, &s.dowStar}} {
		bits, err := f.spec.parse(fs[i])
		if err != nil {
			return nil, err
		}
		*f.into = bits
		if f.isStr != nil {
			*f.isStr = strings.HasPrefix(fs[i], "*")
		}
	}
	if s.dow&(1<<7) != 0 { // 7 is Sunday too
		s.dow = s.dow&^(1<<7) | 1
	}
	if !s.canFire() {
		return nil, fmt.Errorf("cron: %q never fires (no month in it has that day)", truncate(expr))
	}
	return s, nil
}

// canFire says whether some day of some year matches: with the Vixie OR,
// or an unrestricted day of month, any month has a matching day; else some
// month must be long enough (February counted at 29 days) for some day.
func (s *Schedule) canFire() bool {
	if s.domStar || !s.dowStar {
		return true
	}
	longest := [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
	for m := 1; m <= 12; m++ {
		if s.month&(1<<m) != 0 && s.dom&(1<<(longest[m]+1)-1) != 0 {
			return true
		}
	}
	return false
}

// Location returns the schedule's zone.
func (s *Schedule) Location() *time.Location { return s.loc }

// Next returns the first occurrence strictly after t, or the zero time
// when there is none within Horizon days (never, for a parsed schedule).
// Seconds are always 0.
func (s *Schedule) Next(t time.Time) time.Time {
	lt := t.In(s.loc)
	y, m, d := lt.Date()
	for i := 0; i <= Horizon; i++ {
		day := time.Date(y, m, d+i, 12, 0, 0, 0, s.loc)
		if !s.dayMatches(day) {
			continue
		}
		dy, dm, dd := day.Date()
		for h := 0; h < 24; h++ {
			if s.hour&(1<<h) == 0 {
				continue
			}
			for mi := 0; mi < 60; mi++ {
				if s.minute&(1<<mi) == 0 {
					continue
				}
				c := time.Date(dy, dm, dd, h, mi, 0, 0, s.loc)
				if c.Hour() != h || c.Minute() != mi || c.Day() != dd {
					continue // skipped by a spring-forward change
				}
				if e := c.Add(-time.Hour); e.Hour() == h && e.Minute() == mi && e.Day() == dd {
					c = e // repeated by a fall-back change: its first instant
				}
				if c.After(t) {
					return c
				}
			}
		}
	}
	return time.Time{}
}

// dayMatches applies the month and the day rules (Vixie: when both day
// fields are restricted, either matches) to day.
func (s *Schedule) dayMatches(day time.Time) bool {
	if s.month&(1<<int(day.Month())) == 0 {
		return false
	}
	domOK := s.dom&(1<<day.Day()) != 0
	dowOK := s.dow&(1<<int(day.Weekday())) != 0
	if s.domStar || s.dowStar {
		return domOK && dowOK
	}
	return domOK || dowOK
}

// Matches says whether t's minute (in the schedule's zone) is one the
// expression names, ignoring DST: the check of tests and the CLI.
func (s *Schedule) Matches(t time.Time) bool {
	lt := t.In(s.loc)
	return s.minute&(1<<lt.Minute()) != 0 && s.hour&(1<<lt.Hour()) != 0 && s.dayMatches(lt)
}

// parse reads one field: a comma list of "*", "N", "N-M", each optionally
// "/STEP" ("N/STEP" runs from N to the field's maximum).
func (f field) parse(s string) (uint64, error) {
	var bits uint64
	for _, item := range strings.Split(s, ",") {
		rng, stepS, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepS)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("cron: %s step %q must be a positive number", f.name, stepS)
			}
			step = n
		}
		lo, hi := f.min, f.max
		switch {
		case rng == "*":
			if f.name == "day-of-week" {
				hi = 6
			}
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if lo, err = f.value(a); err != nil {
				return 0, err
			}
			if hi, err = f.value(b); err != nil {
				return 0, err
			}
			if hi < lo {
				return 0, fmt.Errorf("cron: %s range %q runs backwards", f.name, rng)
			}
		default:
			v, err := f.value(rng)
			if err != nil {
				return 0, err
			}
			lo, hi = v, v
			if hasStep {
				hi = f.max
			}
		}
		for v := lo; v <= hi; v += step {
			bits |= 1 << v
		}
	}
	return bits, nil
}

// value reads one number or name of the field.
func (f field) value(s string) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return f.min + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil || s == "" || s[0] == '+' || s[0] == '-' {
		what := "a number"
		if f.names != nil {
			what = "a number or name"
		}
		return 0, fmt.Errorf("cron: %s %q is not %s", f.name, truncate(s), what)
	}
	if v < f.min || v > f.max {
		return 0, fmt.Errorf("cron: %s %d out of range %d-%d", f.name, v, f.min, f.max)
	}
	return v, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
