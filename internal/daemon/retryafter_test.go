package daemon

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/redistest"
)

// TestEveryOutage503HasRetryAfter: with Redis down, every route that answers
// 503 (the snapshot among them) says when to retry, as the job and limit
// routes always did: writeError adds Retry-After: 1 to a 503 that has none.
func TestEveryOutage503HasRetryAfter(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	s, _ := newRedisServer(t, r)
	r.Stop()
	seen := map[string]bool{}
	for pattern, who := range authTable {
		if who == whoMetrics {
			continue
		}
		method, path, body := sampleRequest(pattern)
		rec := raw(t, s, method, path, devToken, body)
		if rec.Code != 503 {
			continue
		}
		seen[pattern] = true
		if diff := cmp.Diff("1", rec.Header().Get("Retry-After")); diff != "" {
			t.Errorf("%s with Redis down: 503 %s; Retry-After (-want +got):\n%s", pattern, rec.Body, diff)
		}
	}
	if !seen["GET /api/obs/snapshot"] {
		t.Errorf("the snapshot did not answer 503 with Redis down (503s: %v)", seen)
	}
}
