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

// Horizon is how far Next looks for an occurrence, in days: 400 years, the
// Gregorian calendar's cycle (weekdays and leap days repeat every 146097
// days), so a day rule that matches no day within it matches none ever.
// Parse refuses such a rule (canFire), so Next finds every accepted
// expression's occurrence. Next steps by day with integer arithmetic and
// builds times only on matching days: a search of the whole horizon costs
// about a millisecond (TestNextWholeHorizon logs it).
const Horizon = 146097

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

// LoadZone resolves an IANA zone name; "" is UTC. A schedule must mean the
// same on every machine, so only names of the embedded database's kind
// pass: each "/"-separated part begins with a capital letter and holds
// letters, digits, "_", "-" and "+" (which refuses a path, "localtime",
// "posixrules" and the "posix/" and "right/" trees a system zoneinfo may
// add), and "Local" and "Factory" are refused. Go exposes no list of the
// embedded zip's names, and LoadLocation reads the system's zoneinfo
// first, so this rule keeps to names that both hold.
func LoadZone(name string) (*time.Location, error) {
	if name == "" || name == "UTC" {
		return time.UTC, nil
	}
	if len(name) > MaxZoneLen || !zoneName(name) {
		return nil, fmt.Errorf("timezone %q is not an IANA zone name", truncate(name))
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("timezone %q is not an IANA zone name", truncate(name))
	}
	return loc, nil
}

// zoneName applies LoadZone's rule on names.
func zoneName(name string) bool {
	if name == "Local" || name == "Factory" {
		return false
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part[0] < 'A' || part[0] > 'Z' {
			return false
		}
		for _, r := range part {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '+') {
				return false
			}
		}
	}
	return true
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
		return nil, fmt.Errorf("cron: %q never fires (no day of any year matches its day and month fields)", truncate(expr))
	}
	return s, nil
}

// canFire says whether some day matches the day and month fields: one
// 400-year cycle of days is checked, which holds every combination of
// month, day and weekday the calendar ever makes (0 0 29 2 */7 fires, a
// Sunday 29 February; 0 0 30 2 * does not).
func (s *Schedule) canFire() bool {
	y, m, d, wd := 2000, 1, 1, 6 // 2000-01-01 was a Saturday
	for range Horizon {
		if s.dayOK(m, d, wd) {
			return true
		}
		y, m, d, wd = nextDay(y, m, d, wd)
	}
	return false
}

// nextDay returns the day after y-m-d, weekday wd.
func nextDay(y, m, d, wd int) (int, int, int, int) {
	wd = (wd + 1) % 7
	if d++; d > daysIn(y, m) {
		d = 1
		if m++; m > 12 {
			m = 1
			y++
		}
	}
	return y, m, d, wd
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// Location returns the schedule's zone.
func (s *Schedule) Location() *time.Location { return s.loc }

// Next returns the first occurrence strictly after t, or the zero time
// when there is none within Horizon days (never, for a parsed schedule).
// Seconds are always 0.
func (s *Schedule) Next(t time.Time) time.Time {
	lt := t.In(s.loc)
	y, mo, d := lt.Date()
	m, wd := int(mo), int(lt.Weekday())
	for i := 0; i <= Horizon; i++ {
		if i > 0 {
			y, m, d, wd = nextDay(y, m, d, wd)
		}
		if !s.dayOK(m, d, wd) {
			continue
		}
		dy, dm, dd := y, time.Month(m), d
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
				if !c.After(t) {
					continue // an earlier instant of the same wall time is too
				}
				// Repeated by a fall-back change (of 30 min in Lord Howe,
				// 2 h in Troll): its first instant.
				for back := 3 * time.Hour; back > 0; back -= 15 * time.Minute {
					if e := c.Add(-back); e.Hour() == h && e.Minute() == mi && e.Day() == dd {
						c = e
						break
					}
				}
				if c.After(t) {
					return c
				}
			}
		}
	}
	return time.Time{}
}

// dayMatches applies the month and the day rules to day.
func (s *Schedule) dayMatches(day time.Time) bool {
	return s.dayOK(int(day.Month()), day.Day(), int(day.Weekday()))
}

// dayOK applies the month and the day rules (Vixie: when both day fields
// are restricted, either matches) to month m, day d, weekday wd.
func (s *Schedule) dayOK(m, d, wd int) bool {
	if s.month&(1<<m) == 0 {
		return false
	}
	domOK := s.dom&(1<<d) != 0
	dowOK := s.dow&(1<<wd) != 0
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
			if err != nil || n <= 0 || stepS[0] == '+' {
				return 0, fmt.Errorf("cron: %s step %q must be a positive number", f.name, truncate(stepS))
			}
			if n > f.max-f.min {
				return 0, fmt.Errorf("cron: %s step %d larger than the field's range %d-%d", f.name, n, f.min, f.max)
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
