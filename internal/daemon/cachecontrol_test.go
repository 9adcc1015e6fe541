package daemon

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestNoStoreOnEveryAnswer: every JSON answer (success, handler error,
// the routing 404 and 405, a 429) and the metrics scrape carry
// Cache-Control: no-store, so a shared cache never serves one client's job
// state or RateLimit headers to another.
func TestNoStoreOnEveryAnswer(t *testing.T) {
	s := newTestServer(t)
	tests := []struct {
		name, method, path, token string
		status                    int
	}{
		{"healthz", "GET", "/healthz", "", 200},
		{"a job", "POST", "/run", "", 202},
		{"a handler's 404", "GET", "/run/0123456789abcdef0123456789abcdef", "", 404},
		{"unknown path", "GET", "/nope", "", 404},
		{"wrong method", "DELETE", "/run", "", 405},
		{"401", "GET", "/api/dev/whoami", "", 401},
		{"limited route", "GET", "/api/dev/rl-test", devToken, 200},
		{"metrics", "GET", "/metrics", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := ""
			if tt.method == "POST" {
				body = `{"type":"ping"}`
			}
			resp, _ := do(t, s, tt.method, tt.path, tt.token, body)
			// The status too: a row that no longer answers what it names
			// no longer checks that answer.
			type answer struct {
				Status       int
				CacheControl string
			}
			if diff := cmp.Diff(answer{tt.status, "no-store"}, answer{resp.StatusCode, resp.Header.Get("Cache-Control")}); diff != "" {
				t.Errorf("%s %s (-want +got):\n%s", tt.method, tt.path, diff)
			}
		})
	}
	// The 429 of the limiter probe (3 a minute).
	for range 4 {
		resp, _ := do(t, s, "GET", "/api/dev/rl-test", devToken, "")
		if resp.StatusCode == 429 {
			if diff := cmp.Diff("no-store", resp.Header.Get("Cache-Control")); diff != "" {
				t.Errorf("429: Cache-Control (-want +got):\n%s", diff)
			}
			return
		}
	}
	t.Error("rl-test never answered 429")
}
