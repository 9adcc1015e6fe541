package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// testCustomLimit: a limit of RATE_LIMITS decides as a built-in of the
// same policy and scopes does (run's: burst 10, 30 per minute, ip and
// user), step for step through a burst, refusals, strikes, a ban and
// refill, in both tiers; and concurrent callers of a custom limit never
// pass more than its burst.
func testCustomLimit(t *testing.T, newStore NewStore) {
	custom, err := ratelimit.ParseLimits("api=30/1m burst=10 scopes=ip,user; solo=60/1h scopes=user_tenant")
	if err != nil {
		t.Fatal(err)
	}
	for _, premium := range []bool{false, true} {
		clock := NewClock()
		l := NewLimiter(t, newStore(t, clock), clock, func(c *ratelimit.Config) { c.Custom = custom })
		ctx := context.Background()
		for step := range 40 {
			var got [2]Outcome
			for i, limit := range []string{"run", "api"} {
				d, err := l.Allow(ctx, ratelimit.Request{Limit: limit, IP: "203.0.113.60", User: "u1", Premium: premium})
				if err != nil {
					t.Fatal(err)
				}
				if d.Limit != limit {
					t.Fatalf("decided by %q, want %q", d.Limit, limit)
				}
				got[i] = OutcomeOf(d, clock.Now())
			}
			if diff := cmp.Diff(got[0], got[1]); diff != "" {
				t.Fatalf("premium %v, step %d: api decides unlike run (-run +api):\n%s", premium, step, diff)
			}
			if step%3 == 2 {
				clock.Advance(1500 * time.Millisecond)
			}
		}
	}

	clock := NewClock() // frozen: no refill
	l := NewLimiter(t, newStore(t, clock), clock, func(c *ratelimit.Config) { c.Custom = custom })
	req := ratelimit.Request{Limit: "solo", IP: "203.0.113.61", User: "u2", Tenant: "t2"}
	if got := Admitted(t, 64, 4, func(int) *ratelimit.Limiter { return l }, req); got != 60 {
		t.Errorf("64 goroutines × 4 requests admitted %d, want exactly solo's burst, 60", got)
	}
}
