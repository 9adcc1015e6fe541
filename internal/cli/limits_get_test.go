package cli

import (
	"testing"

	"github.com/refrakt/refrakt/internal/core"
)

// TestFilterLimitsChecksIdentity: the CLI's own filter refuses a key whose
// identity is not one, whatever a driver answered (a daemon older than its
// own check answers such a target with an empty listing), and takes the
// scopes every limit has by override.
func TestFilterLimitsChecksIdentity(t *testing.T) {
	v := fixtureLimits()
	for _, target := range []string{"run:ip:bad", "run:global:everyone", "rl-test:user", "nope"} {
		if _, err := filterLimits(v, target); core.ErrorCode(err) != core.CodeInvalid {
			t.Errorf("filterLimits(%q): err %v, want invalid", target, err)
		}
	}
	for _, target := range []string{"run:tenant", "run:tenant:acme", "secure-ping:global:all", "run:ip:::ffff:203.0.113.7"} {
		if _, err := filterLimits(v, target); err != nil {
			t.Errorf("filterLimits(%q): %v", target, err)
		}
	}
	got, err := filterLimits(v, "run:ip:::ffff:203.0.113.7")
	if err != nil || len(got.Overrides) != 2 {
		t.Errorf("filterLimits of the key in another spelling: %+v, %v; want run:ip and run:ip:203.0.113.7", got.Overrides, err)
	}
}
