package cron_test

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/cron"
)

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, expr, zone, want string }{
		{"minute out of range", "61 * * * *", "", "cron: minute 61 out of range 0-59"},
		{"hour out of range", "0 24 * * *", "", "cron: hour 24 out of range 0-23"},
		{"day of month zero", "0 0 0 * *", "", "cron: day-of-month 0 out of range 1-31"},
		{"month 13", "0 0 1 13 *", "", "cron: month 13 out of range 1-12"},
		{"day of week 8", "0 0 * * 8", "", "cron: day-of-week 8 out of range 0-7"},
		{"bad name", "0 0 * * funday", "", `cron: day-of-week "funday" is not a number or name`},
		{"not a number", "x * * * *", "", `cron: minute "x" is not a number`},
		{"negative", "-1 * * * *", "", `cron: minute "" is not a number`},
		{"zero step", "*/0 * * * *", "", `cron: minute step "0" must be a positive number`},
		{"backwards", "0 5-2 * * *", "", `cron: hour range "5-2" runs backwards`},
		{"four fields", "* * * *", "", `cron: "* * * *" has 4 fields, want 5 (minute hour day-of-month month day-of-week)`},
		{"six fields", "0 * * * * *", "", `cron: "0 * * * * *" has 6 fields, want 5 (minute hour day-of-month month day-of-week)`},
		{"unknown macro", "@fortnightly", "", `cron: unknown macro "@fortnightly" (want @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)`},
		{"february 30", "0 0 30 2 *", "", `cron: "0 0 30 2 *" never fires (no day of any year matches its day and month fields)`},
		{"april 31", "0 0 31 4 *", "", `cron: "0 0 31 4 *" never fires (no day of any year matches its day and month fields)`},
		{"bad zone", "0 0 * * *", "Mars/Olympus", `cron: timezone "Mars/Olympus" is not an IANA zone name`},
		{"local zone", "0 0 * * *", "Local", `cron: timezone "Local" is not an IANA zone name`},
		{"too long", strings.Repeat("1,", 60) + "1 * * * *", "", "cron: expression longer than 100 characters"},
		{"empty", "", "", `cron: "" has 0 fields, want 5 (minute hour day-of-month month day-of-week)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cron.Parse(tc.expr, tc.zone)
			if err == nil {
				t.Fatalf("Parse(%q, %q) = nil error, want %q", tc.expr, tc.zone, tc.want)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

// next returns the n occurrences after from, as RFC 3339 strings in zone.
func next(t *testing.T, expr, zone, from string, n int) []string {
	t.Helper()
	s, err := cron.Parse(expr, zone)
	if err != nil {
		t.Fatalf("Parse(%q, %q): %v", expr, zone, err)
	}
	at, err := time.Parse(time.RFC3339, from)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for range n {
		at = s.Next(at)
		out = append(out, at.In(s.Location()).Format(time.RFC3339))
	}
	return out
}

func TestNext(t *testing.T) {
	for _, tc := range []struct {
		name, expr, zone, from string
		want                   []string
	}{
		{"every minute, strictly after", "* * * * *", "", "2026-03-01T10:00:00Z",
			[]string{"2026-03-01T10:01:00Z", "2026-03-01T10:02:00Z"}},
		{"mid-minute rounds up", "* * * * *", "", "2026-03-01T10:00:30Z", []string{"2026-03-01T10:01:00Z"}},
		{"every 15 minutes", "*/15 * * * *", "", "2026-03-01T10:50:00Z",
			[]string{"2026-03-01T11:00:00Z", "2026-03-01T11:15:00Z", "2026-03-01T11:30:00Z"}},
		{"step within a range", "10-50/20 * * * *", "", "2026-03-01T10:00:00Z",
			[]string{"2026-03-01T10:10:00Z", "2026-03-01T10:30:00Z", "2026-03-01T10:50:00Z", "2026-03-01T11:10:00Z"}},
		{"N/step runs to the end", "0 20/2 * * *", "", "2026-03-01T19:00:00Z",
			[]string{"2026-03-01T20:00:00Z", "2026-03-01T22:00:00Z", "2026-03-02T20:00:00Z"}},
		{"list", "0 0 1,15 * *", "", "2026-03-02T00:00:00Z",
			[]string{"2026-03-15T00:00:00Z", "2026-04-01T00:00:00Z"}},
		{"weekdays at :15", "15 * * * mon-fri", "", "2026-03-06T23:00:00Z", // a Friday
			[]string{"2026-03-06T23:15:00Z", "2026-03-09T00:15:00Z"}},
		{"names any case", "0 0 1 JAN,Jul *", "", "2026-03-01T00:00:00Z",
			[]string{"2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"}},
		{"sunday is 0 and 7", "0 0 * * 7", "", "2026-03-02T00:00:00Z", // a Monday
			[]string{"2026-03-08T00:00:00Z", "2026-03-15T00:00:00Z"}},
		{"month end: only months with a 31st", "0 0 31 * *", "", "2026-01-31T00:00:00Z",
			[]string{"2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z"}},
		{"leap day", "0 0 29 2 *", "", "2024-02-29T00:00:00Z",
			[]string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
		{"leap day across 2100, not a leap year", "0 0 29 2 *", "", "2096-03-01T00:00:00Z",
			[]string{"2104-02-29T00:00:00Z"}},
		{"Vixie: day of month OR day of week", "0 0 13 * fri", "", "2026-03-01T00:00:00Z",
			[]string{"2026-03-06T00:00:00Z", "2026-03-13T00:00:00Z", "2026-03-20T00:00:00Z", "2026-03-27T00:00:00Z", "2026-04-03T00:00:00Z", "2026-04-10T00:00:00Z", "2026-04-13T00:00:00Z"}},
		{"a starred day of week is AND", "0 0 13 * */1", "", "2026-03-01T00:00:00Z",
			[]string{"2026-03-13T00:00:00Z", "2026-04-13T00:00:00Z"}},
		{"@hourly", "@hourly", "", "2026-03-01T10:59:59Z", []string{"2026-03-01T11:00:00Z"}},
		{"@daily", "@daily", "", "2026-03-01T10:00:00Z", []string{"2026-03-02T00:00:00Z"}},
		{"@midnight", "@MIDNIGHT", "", "2026-03-01T10:00:00Z", []string{"2026-03-02T00:00:00Z"}},
		{"@weekly", "@weekly", "", "2026-03-02T10:00:00Z", []string{"2026-03-08T00:00:00Z"}},
		{"@monthly", "@monthly", "", "2026-03-02T10:00:00Z", []string{"2026-04-01T00:00:00Z"}},
		{"@yearly", "@yearly", "", "2026-03-02T10:00:00Z", []string{"2027-01-01T00:00:00Z"}},
		{"@annually", "@annually", "", "2026-03-02T10:00:00Z", []string{"2027-01-01T00:00:00Z"}},
		{"in a zone", "0 3 * * *", "Europe/Paris", "2026-01-10T01:59:00Z",
			[]string{"2026-01-10T03:00:00+01:00", "2026-01-11T03:00:00+01:00"}},

		// DST, spring forward: Paris skips 02:00-02:59 on 2026-03-29, New
		// York on 2026-03-08; the skipped local times are skipped.
		{"Paris spring forward skips 02:30", "30 2 * * *", "Europe/Paris", "2026-03-28T12:00:00Z",
			[]string{"2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"}},
		{"Paris spring forward, hourly", "30 * * * *", "Europe/Paris", "2026-03-29T01:00:00+01:00",
			[]string{"2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00"}},
		{"Paris 03:00 the day of the change", "0 3 * * *", "Europe/Paris", "2026-03-28T12:00:00Z",
			[]string{"2026-03-29T03:00:00+02:00", "2026-03-30T03:00:00+02:00"}},
		{"New York spring forward skips 02:30", "30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z",
			[]string{"2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"}},
		// DST, fall back: Paris repeats 02:00-02:59 on 2026-10-25, New
		// York 01:00-01:59 on 2026-11-01; a repeated local time runs once,
		// at its first instant.
		{"Paris fall back runs 02:30 once", "30 2 * * *", "Europe/Paris", "2026-10-24T12:00:00Z",
			[]string{"2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"}},
		{"Paris fall back, hourly", "30 * * * *", "Europe/Paris", "2026-10-25T01:45:00+02:00",
			[]string{"2026-10-25T02:30:00+02:00", "2026-10-25T03:30:00+01:00"}},
		{"Paris fall back, after the first 02:30", "30 2 * * *", "Europe/Paris", "2026-10-25T02:40:00+02:00",
			[]string{"2026-10-26T02:30:00+01:00"}},
		{"New York fall back runs 01:30 once", "30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z",
			[]string{"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"}},
		{"New York fall back, every 20 minutes", "*/20 1 * * *", "America/New_York", "2026-11-01T00:50:00-04:00",
			[]string{"2026-11-01T01:00:00-04:00", "2026-11-01T01:20:00-04:00", "2026-11-01T01:40:00-04:00", "2026-11-02T01:00:00-05:00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, next(t, tc.expr, tc.zone, tc.from, len(tc.want))); diff != "" {
				t.Errorf("next of %q in %q from %s (-want +got):\n%s", tc.expr, tc.zone, tc.from, diff)
			}
		})
	}
}

// randomExpr builds a valid expression from random fields.
func randomExpr(r *rand.Rand) string {
	part := func(lo, hi int, star bool) string {
		switch r.IntN(6) {
		case 0:
			if star {
				return "*"
			}
			return "*/" + itoa(1+r.IntN(hi-lo))
		case 1:
			return "*/" + itoa(1+r.IntN(hi-lo))
		case 2:
			return itoa(lo + r.IntN(hi-lo+1))
		case 3:
			a := lo + r.IntN(hi-lo+1)
			b := a + r.IntN(hi-a+1)
			return itoa(a) + "-" + itoa(b)
		case 4:
			a := lo + r.IntN(hi-lo+1)
			b := a + r.IntN(hi-a+1)
			return itoa(a) + "-" + itoa(b) + "/" + itoa(1+r.IntN(5))
		default:
			return itoa(lo+r.IntN(hi-lo+1)) + "," + itoa(lo+r.IntN(hi-lo+1))
		}
	}
	return strings.Join([]string{part(0, 59, true), part(0, 23, true), part(1, 28, true), part(1, 12, true), part(0, 7, true)}, " ")
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestNextProperty: for random expressions and start times, next(t) is
// after t, matches, and no matching minute lies strictly between (minute
// by minute over a bounded span; a minute whose local time is the second
// instance of a repeated one is not an occurrence, by the fall-back rule).
func TestNextProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(39, 39))
	zones := []string{"UTC", "Europe/Paris", "America/New_York"}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	checked := 0
	for i := 0; i < 400; i++ {
		expr, zone := randomExpr(r), zones[r.IntN(len(zones))]
		s, err := cron.Parse(expr, zone)
		if err != nil {
			t.Fatalf("Parse(%q): %v", expr, err)
		}
		from := base.Add(time.Duration(r.Int64N(int64(2 * 365 * 24 * time.Hour)))).Truncate(time.Second)
		n := s.Next(from)
		if n.IsZero() || !n.After(from) {
			t.Fatalf("%q in %s: Next(%s) = %s, want after it", expr, zone, from, n)
		}
		if !s.Matches(n) || n.Second() != 0 {
			t.Fatalf("%q in %s: Next(%s) = %s does not match", expr, zone, from, n)
		}
		if n.Sub(from) > 45*24*time.Hour {
			continue // too far to walk: the table covers sparse schedules
		}
		checked++
		for m := from.Truncate(time.Minute).Add(time.Minute); m.Before(n); m = m.Add(time.Minute) {
			if !m.After(from) || !s.Matches(m) {
				continue
			}
			lt, et := m.In(s.Location()), m.Add(-time.Hour).In(s.Location())
			if et.Day() == lt.Day() && et.Hour() == lt.Hour() && et.Minute() == lt.Minute() {
				continue // the second instance of a repeated local time
			}
			t.Fatalf("%q in %s: Next(%s) = %s, but %s matches before it", expr, zone, from, n, m)
		}
	}
	if checked < 100 {
		t.Fatalf("only %d cases walked: widen the span", checked)
	}
}
