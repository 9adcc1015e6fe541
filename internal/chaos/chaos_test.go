package chaos

import (
	"os"
	"testing"
	"time"
)

// TestChaos runs a short chaos session (two daemons, one round of faults)
// in `make test`. With REFRAKT_CHAOS=full it runs the long one that
// scripts/chaos.sh asks for: three daemons, three rounds.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: skipped with -short")
	}
	o := Options{Daemons: 2, Jobs: 120, Rounds: 1, Lease: 2 * time.Second, Concurrency: 4, Rate: 12, Settle: 40 * time.Second}
	if os.Getenv("REFRAKT_CHAOS") == "full" {
		o = Options{Daemons: 3, Jobs: 900, Rounds: 3, Lease: 2 * time.Second, Concurrency: 4, Rate: 25, Settle: 60 * time.Second}
	}
	checkReport(t, Run(t, o))
}

// checkReport logs a run's summary line and fails the test on each of its
// failures.
func checkReport(t *testing.T, r interface {
	Line() string
	Failures() []string
}) {
	t.Helper()
	t.Log(r.Line())
	for _, f := range r.Failures() {
		t.Error(f)
	}
}
