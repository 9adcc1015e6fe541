package cron

import (
	"testing"
	"time"
)

// TestNextWholeHorizon: a day rule that never matches (30 February, kept
// from Parse by canFire) walks Next's whole 400-year horizon and gives the
// zero time; its cost is logged (about a millisecond here), not asserted.
func TestNextWholeHorizon(t *testing.T) {
	s, err := Parse("0 0 30 * *", "Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	s.month = 1 << 2 // February only: what Parse refuses
	if s.canFire() {
		t.Fatal("canFire: a 30 February fires")
	}
	start := time.Now()
	got := s.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t.Logf("Next over %d days: %s", Horizon, time.Since(start))
	if !got.IsZero() {
		t.Fatalf("Next = %s, want the zero time", got)
	}
}
