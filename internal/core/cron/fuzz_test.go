package cron_test

import (
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/cron"
)

// FuzzParse: Parse never panics; an expression it takes has, from any
// start, a next occurrence strictly after it that matches, at a whole
// minute (Parse refuses what never fires).
func FuzzParse(f *testing.F) {
	for _, s := range []string{"* * * * *", "*/15 1-5 1,15 jan-mar mon-fri", "0 0 29 2 *", "0 0 13 * fri",
		"@hourly", "10-50/10 */2 * * 7", "5/15 * * * *", "0 0 31 4 *", "0 0 29 2 */7", "0 0 31 12 */7", "1-5/9223372036854775807 * * * *", "*/60 * * * *", "*/+5 * * * *", "61 * * * *", "* * * *", ""} {
		f.Add(s, "Europe/Paris", int64(1_700_000_000))
	}
	f.Fuzz(func(t *testing.T, expr, zone string, at int64) {
		if zone != "" && zone != "Europe/Paris" && zone != "America/New_York" {
			zone = "" // zone names are LoadLocation's; the fuzzer explores expressions
		}
		s, err := cron.Parse(expr, zone)
		if err != nil {
			return
		}
		from := time.Unix(at%(200*365*24*3600), 0) // within 1770-2170
		next := s.Next(from)
		if next.IsZero() || !next.After(from) || !s.Matches(next) || next.Second() != 0 {
			t.Fatalf("Parse(%q, %q).Next(%s) = %s: want a matching minute after it", expr, zone, from, next)
		}
	})
}
