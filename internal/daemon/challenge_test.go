package daemon

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/config"
)

// TestChallengeSaysInvalidToken: a 401 for a bearer token that was presented
// but is wrong says error="invalid_token" in its challenge (RFC 6750 §3);
// one without a token keeps the bare challenge.
func TestChallengeSaysInvalidToken(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) { c.PrometheusBearerToken = "scrape-secret" })
	tests := []struct {
		name, path, token, want string
	}{
		{"dev, no token", "/api/dev/whoami", "", `Bearer realm="refrakt"`},
		{"dev, wrong token", "/api/dev/whoami", "nope", `Bearer realm="refrakt", error="invalid_token"`},
		{"obs, wrong token", "/api/obs/whoami", "nope", `Bearer realm="refrakt", error="invalid_token"`},
		{"metrics, no token", "/metrics", "", `Bearer realm="metrics"`},
		{"metrics, wrong token", "/metrics", devToken, `Bearer realm="metrics", error="invalid_token"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, s, "GET", tt.path, tt.token, "")
			if resp.StatusCode != 401 {
				t.Fatalf("status %d, want 401: %v", resp.StatusCode, body)
			}
			if diff := cmp.Diff(tt.want, resp.Header.Get("WWW-Authenticate")); diff != "" {
				t.Errorf("WWW-Authenticate (-want +got):\n%s", diff)
			}
		})
	}
}
