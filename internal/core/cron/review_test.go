package cron_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/cron"
)

// TestParseRefusesInOneLine: steps beyond the field's range (or beyond an
// int) and a signed step are refused with one line, never a panic.
func TestParseRefusesInOneLine(t *testing.T) {
	for _, tc := range []struct{ name, expr, want string }{
		{"step overflows", "1-5/9223372036854775807 * * * *", "cron: minute step 9223372036854775807 larger than the field's range 0-59"},
		{"step beyond int", "*/99999999999999999999 * * * *", `cron: minute step "99999999999999999999" must be a positive number`},
		{"step over the range", "*/60 * * * *", "cron: minute step 60 larger than the field's range 0-59"},
		{"month step over the range", "0 0 1 */12 *", "cron: month step 12 larger than the field's range 1-12"},
		{"weekday step over the range", "0 0 * * */8", "cron: day-of-week step 8 larger than the field's range 0-7"},
		{"signed step", "*/+5 * * * *", `cron: minute step "+5" must be a positive number`},
		{"february 31 on sundays", "0 0 31 2 */7", `cron: "0 0 31 2 */7" never fires (no day of any year matches its day and month fields)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cron.Parse(tc.expr, "")
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want %q", tc.expr, tc.want)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNextLongGaps: an expression whose days come years apart (the Vixie
// AND of a "*"-prefixed weekday) is accepted and Next finds its next day,
// as a day-by-day walk does.
func TestNextLongGaps(t *testing.T) {
	for _, tc := range []struct{ expr, from string }{
		{"0 0 29 2 */7", "2004-03-01T00:00:00Z"},  // Sunday 29 Feb: 2004, then 2032
		{"0 0 29 2 */7", "2033-03-01T00:00:00Z"},  // then 2060
		{"0 0 31 12 */7", "2035-01-01T00:00:00Z"}, // Sunday 31 Dec
		{"0 0 29 2 1", "2033-03-01T00:00:00Z"},
		{"0 0 */28 2 */7", "2033-03-01T00:00:00Z"},
	} {
		s, err := cron.Parse(tc.expr, "")
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.expr, err)
		}
		from, _ := time.Parse(time.RFC3339, tc.from)
		want := time.Time{}
		for d := from.Truncate(24 * time.Hour).Add(24 * time.Hour); d.Year() < from.Year()+400; d = d.Add(24 * time.Hour) {
			if s.Matches(d) {
				want = d
				break
			}
		}
		if got := s.Next(from); want.IsZero() || !got.Equal(want) {
			t.Errorf("%q: Next(%s) = %s, want %s", tc.expr, tc.from, got, want)
		}
	}
}

// TestLoadZoneNames: only names of the embedded database's kind pass, so
// a zone means the same on every machine.
func TestLoadZoneNames(t *testing.T) {
	for _, z := range []string{"Europe/Paris", "America/Argentina/Buenos_Aires", "America/Port-au-Prince", "Etc/GMT+5", "EST5EDT", "Australia/Lord_Howe", "Antarctica/Troll", "UTC", ""} {
		if _, err := cron.LoadZone(z); err != nil {
			t.Errorf("LoadZone(%q): %v", z, err)
		}
	}
	for _, z := range []string{"posix/Europe/Paris", "right/UTC", "posixrules", "Factory", "localtime", "Local", "utc", "europe/paris",
		"../../etc/passwd", "/etc/localtime", "Europe//Paris", "Europe/Paris/", "zone1970.tab", "Europe/Paris\x00"} {
		if _, err := cron.LoadZone(z); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("LoadZone(%q) = %v, want a one-line error", z, err)
		}
	}
}

// wall is t's local date and time to the minute.
func wall(t time.Time) [5]int {
	return [5]int{t.Year(), int(t.Month()), t.Day(), t.Hour(), t.Minute()}
}

// TestNextRepeatedTimeOddShifts: where a fall-back change repeats 30 min
// (Lord Howe) or 2 h (Troll) of local time, a repeated time runs once, at
// its first instant, as a minute-by-minute walk finds.
func TestNextRepeatedTimeOddShifts(t *testing.T) {
	for _, tc := range []struct{ zone, from string }{
		{"Australia/Lord_Howe", "2026-04-04T00:00:00Z"}, // back 30 min on 5 April (15:00 UTC on the 4th)
		{"Antarctica/Troll", "2026-10-24T12:00:00Z"},    // back 2 h on 25 October (01:00 UTC)
	} {
		for _, expr := range []string{"*/30 * * * *", "*/15 * * * *", "7,45 1,2 * * *", "* * * * *"} {
			s, err := cron.Parse(expr, tc.zone)
			if err != nil {
				t.Fatal(err)
			}
			loc := s.Location()
			from, _ := time.Parse(time.RFC3339, tc.from)
			end := from.Add(36 * time.Hour)
			got := s.Next(from)
			for u := from.Add(time.Minute); u.Before(end); u = u.Add(time.Minute) {
				lt := u.In(loc)
				if !s.Matches(u) {
					continue
				}
				first := true
				for back := 15 * time.Minute; back <= 3*time.Hour; back += 15 * time.Minute {
					if wall(u.Add(-back).In(loc)) == wall(lt) {
						first = false
					}
				}
				if !first {
					continue
				}
				if !got.Equal(u) {
					t.Fatalf("%q in %s: occurrence %s, Next gave %s", expr, tc.zone, u.In(loc), got.In(loc))
				}
				got = s.Next(got)
			}
		}
	}
}
