package chaos

import (
	"os"
	"testing"
	"time"
)

// TestSoakShort runs 15 s of steady mixed load in every `make test`.
func TestSoakShort(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: skipped with -short")
	}
	checkReport(t, RunSoak(t, SoakOptions{Duration: 15 * time.Second, Clients: 8}))
}

// TestSoak is the long soak: 60 s when REFRAKT_SOAK=1, or
// REFRAKT_SOAK_DURATION (a Go duration) when set, as scripts/soak.sh does.
func TestSoak(t *testing.T) {
	d := time.Duration(0)
	if os.Getenv("REFRAKT_SOAK") == "1" {
		d = 60 * time.Second
	}
	if v := os.Getenv("REFRAKT_SOAK_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 {
			t.Fatalf("REFRAKT_SOAK_DURATION=%q: want a positive Go duration such as 10m", v)
		}
	}
	if d == 0 {
		t.Skip("the long soak runs with REFRAKT_SOAK=1 (60 s) or REFRAKT_SOAK_DURATION; TestSoakShort always runs")
	}
	checkReport(t, RunSoak(t, SoakOptions{Duration: d, Clients: 16}))
}
